"""Contact and do-not-call imports from CSV, into a real SQLite file: good rows stored, bad ones
reported by line and column, numbers in E.164, DNC numbers stored blocked, and files that are not
contact lists refused without touching what is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.campaign.importer import import_contacts, import_dnc
from callcenter.campaign.model import CampaignSpec
from callcenter.campaign.store import CampaignStore, CampaignStoreError, UnknownCampaignError, create_tables
from callcenter.storage import make_engine

SPEC = CampaignSpec(name="renewals", queue="sales", caller_id="+14155550100")


@pytest.fixture
def store(tmp_path: Path) -> CampaignStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'callcenter.db'}")
    create_tables(engine)
    store = CampaignStore(engine)
    store.create(SPEC)
    yield store
    engine.dispose()


def stored(store: CampaignStore, name: str = "renewals") -> list[tuple[str, str | None, str]]:
    return [(c.number, c.name, c.status) for c in store.contacts(store.get(name).id)]


def problems(report) -> list[str]:
    return [f"{p.line}: {p.column}: {p.message}" for p in report.errors]


def test_a_spreadsheet_export_with_bom_blank_lines_and_extra_columns(store: CampaignStore, tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes("\ufeffNumber,Name,customer_id,Plan,Note\r\n"
                     "(415) 555-0101,Ann Lee,C-1,gold,\r\n"
                     "\r\n"
                     "+1 415 555 0102,Bob,,silver,\"two\r\nlines\"\r\n"
                     "415.555.0103,,,,\r\n".encode("utf-8"))
    report = import_contacts(store, "renewals", path)
    assert (report.imported, report.dnc, report.errors, report.ok) == (3, 0, (), True)
    assert report.summary() == f"{path}: imported 3 contact(s)"
    ann, bob, third = store.contacts(store.get("renewals").id)
    assert (ann.number, ann.name, ann.customer_id, ann.data, ann.row) == (
        "+14155550101", "Ann Lee", "C-1", {"plan": "gold", "note": ""}, 2)
    assert (bob.number, bob.data["note"], bob.row) == ("+14155550102", "two\r\nlines", 4)
    assert (third.number, third.name, third.customer_id, third.row) == ("+14155550103", None, None, 6)


def test_bad_rows_are_reported_and_good_rows_stored(store: CampaignStore) -> None:
    report = import_contacts(store, "renewals", "number,name\n"
                             "4155550101,Ann\n"
                             "12ab,Bad\n"
                             ",Nobody\n"
                             "+1 415 555 0101,Ann again\n"
                             "4155550102,Too,many\n"
                             "+1 000,Short\n"
                             "4155550103,Cy\n")
    assert problems(report) == [
        "3: number: '12ab' is not a phone number: unexpected character 'a'",
        "4: number: missing number",
        "5: number: duplicate of line 2 (both are +14155550101)",
        "6: (row): 3 field(s) where the header has 2",
        "7: number: '+1 000' is not a valid number for region US",
    ]
    assert (report.imported, report.refused, report.ok) == (2, 5, False)
    assert report.summary() == "<csv>: imported 2 contact(s); 5 row(s) refused"
    assert stored(store) == [("+14155550101", "Ann", "pending"), ("+14155550103", "Cy", "pending")]


def test_numbers_already_in_the_campaign_are_refused_on_a_second_import(store: CampaignStore) -> None:
    import_contacts(store, "renewals", "number\n4155550101\n4155550102\n")
    again = import_contacts(store, "renewals", "number\n4155550102\n\n4155550104\n")
    assert problems(again) == ["2: number: +14155550102 is already in campaign 'renewals' (imported from line 3)"]
    assert again.imported == 1
    assert [n for n, _, _ in stored(store)] == ["+14155550101", "+14155550102", "+14155550104"]


def test_numbers_on_the_dnc_list_are_stored_blocked_and_counted(store: CampaignStore) -> None:
    store.dnc_add("+14155550102", "asked")
    report = import_contacts(store, "renewals", "number\n4155550101\n4155550102\n")
    assert (report.imported, report.dnc, report.ok) == (1, 1, True)
    assert "1 more on the do-not-call list" in report.summary()
    assert stored(store) == [("+14155550101", None, "pending"), ("+14155550102", None, "dnc")]
    assert store.progress(store.get("renewals").id)["by_status"]["dnc"] == 1


def test_numbers_without_a_country_code_use_the_campaign_region_or_the_one_given(store: CampaignStore) -> None:
    store.create(SPEC.model_copy(update={"name": "paris", "default_region": "FR"}))
    assert import_contacts(store, "paris", "number\n01 23 45 67 89\n").ok
    assert import_contacts(store, "paris", "number\n020 7946 0958\n", region="GB").ok
    assert [n for n, _, _ in stored(store, "paris")] == ["+33123456789", "+442079460958"]
    with pytest.raises(ValueError, match="'ZZ' is not a region"):
        import_contacts(store, "paris", "number\n0101\n", region="ZZ")


@pytest.mark.parametrize(("content", "expected"), [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe", "1: (file): not UTF-8 text: invalid start byte"),
    ("name: renewals\nqueue: sales\n".encode(), "1: (file): no 'number' column in the header line 'name: renewals'"),
    (b"number,name\n4155550101,\x00Ann\n", "2: (file): not a text file (it contains NUL bytes)"),
    (b"", "1: (file): the file is empty; expected a header with a 'number' column"),
    (b"\n\n", "1: (file): the file is empty; expected a header with a 'number' column"),
    (b"number,name\n4155550101,Ann\n4155550102,\"Bob\" Jr\n", "3: (file): not readable as CSV: ',' expected after '\"'"),
    (b"number,name,Number\n", "1: (file): column 'number' given twice"),
    (b"number,,x\n", "1: (file): column 2 of the header has no name"),
])
def test_a_file_that_is_not_a_contact_list_imports_nothing(store: CampaignStore, tmp_path: Path,
                                                           content: bytes, expected: str) -> None:
    import_contacts(store, "renewals", "number\n4155550199\n")
    path = tmp_path / "not-contacts.csv"
    path.write_bytes(content)
    report = import_contacts(store, "renewals", path)
    [problem] = problems(report)
    assert problem.startswith(expected)
    assert (report.imported, report.dnc) == (0, 0)
    assert report.summary() == f"{path}: nothing imported: the file cannot be read as a contact list"
    assert stored(store) == [("+14155550199", None, "pending")]  # what was there is untouched


def test_imports_into_unknown_or_finished_campaigns_are_refused(store: CampaignStore) -> None:
    with pytest.raises(UnknownCampaignError, match="no campaign 'nope'"):
        import_contacts(store, "nope", "number\n4155550101\n")
    store.set_state("renewals", "stopped")
    with pytest.raises(CampaignStoreError, match="campaign 'renewals' is stopped: it takes no more contacts"):
        import_contacts(store, "renewals", "number\n4155550101\n")


def test_rows_with_too_long_fields_are_refused(store: CampaignStore) -> None:
    report = import_contacts(store, "renewals", f"number,name,customer_id\n4155550101,{'x' * 201},\n"
                                                f"4155550102,Bo,{'9' * 65}\n4155550103,Cy,9\n")
    assert problems(report) == ["2: name: longer than 200 characters", "3: customer_id: longer than 64 characters"]
    assert stored(store) == [("+14155550103", "Cy", "pending")]


# ------------------------------------------------------------------------------ do not call
def test_dnc_one_number_per_line_with_comments_blank_lines_and_bad_numbers(store: CampaignStore) -> None:
    store.dnc_add("+14155550103", "earlier")
    report = import_dnc(store, "# complaints, March\n(415) 555-0101\n\n+1 415 555 0102\nnot a number\n"
                               "4155550101\n4155550103\n", "US", reason="complaint")
    assert problems(report) == ["5: number: 'not a number' is not a phone number: unexpected character 'n'"]
    assert (report.added, report.already_listed) == (2, 1)
    assert report.summary() == "<csv>: added 2 number(s) to the do-not-call list, 1 already on it; 1 line(s) refused"
    assert [(e.number, e.reason) for e in store.dnc_list()] == [
        ("+14155550101", "complaint"), ("+14155550102", "complaint"), ("+14155550103", "earlier")]


def test_dnc_csv_with_number_and_reason_columns(store: CampaignStore, tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_bytes(b"\xef\xbb\xbfReason,Number\nasked,01 23 45 67 89\n,+14155550101\nx,y,z\n")
    report = import_dnc(store, path, "FR", reason="bulk")
    assert problems(report) == ["4: (row): 3 field(s) where the header has 2"]
    assert [(e.number, e.reason) for e in store.dnc_list()] == [("+14155550101", "bulk"), ("+33123456789", "asked")]


def test_a_dnc_file_that_is_not_text_adds_nothing(store: CampaignStore) -> None:
    report = import_dnc(store, b"\xff\xfe\x00\x01", "US")
    assert problems(report) == ["1: (file): not UTF-8 text: invalid start byte (a binary file, or saved in another "
                                "encoding?)"]
    assert report.summary() == "<csv>: nothing added: the file cannot be read as a list of numbers"
    assert store.dnc_list() == []
