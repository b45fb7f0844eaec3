"""CSV import into the CRM: a good file is stored whole; a file with any problem stores nothing and
reports every problem as file:line: column: message (duplicates in the file and in the CRM too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.config import PROJECT_DIR
from callcenter.crm.importer import import_customers_csv
from callcenter.crm.store import CrmStore
from tests.unit.test_crm_store import migrated_store, row_counts

DEMO_CUSTOMERS = PROJECT_DIR / "callcenter" / "demo" / "customers.csv"
HEADER = "name,phones,accounts,tier,language,notes\n"


@pytest.fixture
def store(tmp_path: Path) -> CrmStore:
    return migrated_store(tmp_path)


def write_csv(tmp_path: Path, text: str, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(report) -> list[str]:
    return [str(problem) for problem in report.problems]


def test_the_demo_customers_import(store: CrmStore) -> None:
    report = import_customers_csv(store, DEMO_CUSTOMERS)
    assert problems_of(report) == []
    assert (report.ok, report.imported) == (True, 6)
    li_wei = store.lookup_by_number("13800138000")
    assert (li_wei.name, li_wei.tier, li_wei.language, li_wei.accounts) == ("Li Wei", "vip", "zh", ("12345678",))
    alice = store.lookup_by_account("87654321")
    assert (alice.name, alice.tier, alice.language, alice.phones) == ("Alice Smith", "regular", "en",
                                                                        ("+442079460958",))


def test_a_good_file_imports_every_field(store: CrmStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER + (
        'Zhang Min,13912345678; 010-62345678 ,20240001,gold,zh,"Office line, Beijing"\n'
        "\n"                                                    # blank lines are skipped
        "Bob Jones,+1 212 555 0100,,,,\n"))                    # tier defaults to regular
    report = import_customers_csv(store, path)
    assert report.ok and report.summary() == (
        f"{path}: imported 2 customer(s) with 3 phone number(s) and 1 account(s)")
    zhang = store.lookup_by_number("+861062345678")
    assert (zhang.name, zhang.phones, zhang.accounts, zhang.tier, zhang.language, zhang.notes) == (
        "Zhang Min", ("+861062345678", "+8613912345678"), ("20240001",), "gold", "zh", "Office line, Beijing")
    bob = store.lookup_by_number("+12125550100")
    assert (bob.tier, bob.language, bob.accounts, bob.notes) == ("regular", None, (), "")


def test_columns_may_come_in_any_order_and_only_name_is_required(store: CrmStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "phones,name\n13800138000,Li Wei\n")
    assert import_customers_csv(store, path).imported == 1
    assert store.lookup_by_number("13800138000").name == "Li Wei"


def test_every_bad_row_is_reported_and_nothing_is_imported(store: CrmStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER + (
        "Li Wei,13800138000,12345678,vip,zh,fine\n"            # line 2: good, but not imported either
        ",12ab,12-34,platinum,EN,\n"                           # line 3: five problems
        '"Multi\nline",13900139000,,,,\n'                      # lines 4-5: good, a quoted line break
        "Wang Fang,123;+44 20 7946,,,,\n"                      # line 6: two bad phones
        "Too,Many,Fields,here,,,\n"))                          # line 7: seven fields
    report = import_customers_csv(store, path)
    assert problems_of(report) == [
        f"{path}:3: name: a customer needs a name",
        f"{path}:3: phones: '12ab' is not a phone number: unexpected character 'a'",
        f"{path}:3: accounts: '12-34' is not an account number (4 to 20 digits)",
        f"{path}:3: tier: 'platinum' is not a tier (one of: vip, gold, regular)",
        f"{path}:3: language: 'EN' is not a two-letter lower-case language code such as 'en'",
        f"{path}:6: phones: '123' is not a valid number for region CN",
        f"{path}:6: phones: '+44 20 7946' is not a valid number for region GB",
        f"{path}:7: (row): 7 field(s) where the header has 6",
    ]
    assert (report.ok, report.imported) == (False, 0)
    assert report.summary() == f"{path}: 8 problem(s); nothing imported"
    assert row_counts(store)["crm_customers"] == 0


def test_numbers_repeated_in_the_file_are_reported_after_normalisation(store: CrmStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER + (
        "Li Wei,13800138000,12345678,,,\n"
        "Li Wei again,+86 138 0013 8000,12345678,,,\n"
        "Wang Fang,13700001234;0086 13700001234,,,,\n"))
    assert problems_of(import_customers_csv(store, path)) == [
        f"{path}:3: phones: phone +8613800138000 is also on line 2",
        f"{path}:3: accounts: account 12345678 is also on line 2",
        f"{path}:4: phones: phone +8613700001234 is given twice",
    ]
    assert row_counts(store)["crm_customers"] == 0


def test_numbers_the_crm_already_has_are_reported(store: CrmStore, tmp_path: Path) -> None:
    li_wei = store.add_customer("Li Wei", phones=["13800138000"], accounts=["12345678"])
    path = write_csv(tmp_path, HEADER + (
        "Wang Fang,13700001234,20240002,,,\n"
        "Li Wei,+8613800138000,12345678,,,\n"))
    report = import_customers_csv(store, path)
    assert problems_of(report) == [
        f"{path}:3: phones: phone +8613800138000 already belongs to customer {li_wei} (Li Wei)",
        f"{path}:3: accounts: account 12345678 already belongs to customer {li_wei} (Li Wei)",
    ]
    assert row_counts(store)["crm_customers"] == 1
    assert store.lookup_by_number("13700001234") is None


@pytest.mark.parametrize(("text", "problems"), [
    ("", ["1: (file): the file is empty; expected a header: name,phones,accounts,tier,language,notes"]),
    ("name,phone\nLi Wei,13800138000\n",
     ["1: phone: unknown column (expected: name, phones, accounts, tier, language, notes)"]),
    ("phones,phones\n", ["1: phones: column given twice", "1: name: required column missing"]),
])
def test_a_bad_header_is_reported(store: CrmStore, tmp_path: Path, text: str, problems: list[str]) -> None:
    path = write_csv(tmp_path, text)
    assert problems_of(import_customers_csv(store, path)) == [f"{path}:{p}" for p in problems]


def test_a_file_that_is_not_utf8_is_reported(store: CrmStore, tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(HEADER.encode() + "李伟,13800138000,,,,\n".encode("gbk"))
    assert problems_of(import_customers_csv(store, path)) == [
        f"{path}:2: (file): not UTF-8 text: invalid start byte (saved in another encoding?)"]
    assert row_counts(store)["crm_customers"] == 0
