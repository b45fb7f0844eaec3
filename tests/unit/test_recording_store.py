"""The recordings index and its files, on a real SQLite file and real WAV files: indexing (length
read from the file, unfinished files left for later, one row per id), search and paging, safe
paths, and the retention purge (file and row go together; a file that stays keeps its row)."""

from __future__ import annotations

import asyncio
import logging
import wave
from dataclasses import replace
from pathlib import Path

import pytest

from callcenter.audit import AuditLog
from callcenter.recording.model import DAY, RecordingsSettings, RetentionPolicy
from callcenter.recording.service import RecordingPathError, RecordingService, read_wav
from callcenter.recording.store import RecordingStore, create_tables
from callcenter.storage import make_engine

NOW = 1_750_000_000.0
RATE = 8000


def write_wav(path: Path, seconds: float) -> Path:
    """A finished WAV like MixMonitor's: 8 kHz, 16-bit, mono (silence)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(RATE)
        audio.writeframes(b"\x00\x00" * round(seconds * RATE))
    return path


def call_facts(age_days: float = 0.0, *, agent_id: str = "1001", queue: str | None = "support",
               customer: str | None = "+8613800138000", customer_name: str | None = "Wang Fang",
               direction: str | None = "inbound", length: float = 60.0) -> dict:
    started = NOW - age_days * DAY
    return {"agent_id": agent_id, "queue": queue, "customer": customer, "customer_name": customer_name,
            "direction": direction, "started_at": started, "ended_at": started + length}


class Setup:
    def __init__(self, tmp_path: Path, settings: RecordingsSettings):
        self.dir = tmp_path / "recordings"
        self.dir.mkdir()
        self.engine = make_engine(f"sqlite:///{tmp_path / 'cc.db'}")
        create_tables(self.engine)
        self.store = RecordingStore(self.engine)
        self.audit = AuditLog(self.engine, clock=lambda: NOW)
        self.service = RecordingService(self.store, self.dir, settings, self.audit, clock=lambda: NOW)

    def recorded(self, call_id: str, seconds: float = 60.0, **facts) -> dict:
        write_wav(self.dir / f"{call_id}.wav", seconds)
        indexed = self.service.index_call(call_id, **call_facts(**facts))
        assert indexed is not None
        return indexed


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path, RecordingsSettings(retention=RetentionPolicy(default_days=90,
                                                                        queues={"sales": 30, "legal": None})))


# ---- indexing ------------------------------------------------------------------------------------
def test_a_calls_file_is_indexed_with_its_length_read_from_the_file(setup: Setup):
    write_wav(setup.dir / "1700000000.42.wav", 12.5)
    row = setup.service.index_call("1700000000.42", pci_spans=[(3.0, 5.5), (11.0, None)], **call_facts())
    assert row["duration"] == 12.5
    assert row["file"] == "1700000000.42.wav"
    assert row["size_bytes"] == (setup.dir / "1700000000.42.wav").stat().st_size == 44 + 12.5 * RATE * 2
    assert row["pci_spans"] == [[3.0, 5.5], [11.0, 12.5]]
    assert row["indexed_at"] == NOW
    stored = setup.store.get("1700000000.42")
    assert stored.to_json() == row and stored.agent_id == "1001" and stored.customer_name == "Wang Fang"


def test_indexing_the_same_call_twice_keeps_one_row_with_the_latest_facts(setup: Setup):
    setup.recorded("c1", agent_id="1001")
    write_wav(setup.dir / "c1.wav", 30.0)  # e.g. re-indexed after the file was finished
    setup.service.index_call("c1", **call_facts(agent_id="1002"))
    rows, total = setup.store.search()
    assert total == 1 and (rows[0].agent_id, rows[0].duration) == ("1002", 30.0)


def test_a_calls_further_files_get_their_own_rows(setup: Setup):
    setup.recorded("c1")
    write_wav(setup.dir / "c1-2.wav", 5.0)
    second = setup.service.index_call("c1", part="2", **call_facts())
    assert (second["id"], second["call_id"], second["file"]) == ("c1-2", "c1", "c1-2.wav")
    assert [r.id for r in setup.store.search(call_id="c1")[0]] == ["c1-2", "c1"]


def test_a_missing_or_unfinished_file_is_left_for_a_later_try(setup: Setup):
    assert setup.service.index_call("nothing-yet", **call_facts()) is None
    path = write_wav(setup.dir / "writing.wav", 3.0)
    data = bytearray(path.read_bytes())
    data[4:8] = (0).to_bytes(4, "little")  # the header Asterisk writes first; sizes come at close
    path.write_bytes(bytes(data))
    assert read_wav(path) is None
    assert setup.service.index_call("writing", **call_facts()) is None
    grown = write_wav(setup.dir / "growing.wav", 3.0)
    with grown.open("ab") as more:  # audio written after the header's sizes were last set
        more.write(b"\x00\x00" * RATE)
    assert read_wav(grown) is None
    assert setup.service.index_call("growing", **call_facts()) is None
    (setup.dir / "garbage.wav").write_bytes(b"RIFF\x00")
    assert setup.service.index_call("garbage", **call_facts()) is None
    assert setup.store.search() == ([], 0)


@pytest.mark.parametrize("call_id", ["../etc/passwd", ".hidden", "a/b", ""])
def test_ids_that_could_leave_the_folder_are_refused(setup: Setup, call_id: str):
    with pytest.raises(ValueError, match="letters, digits"):
        setup.service.index_call(call_id, **call_facts())


def test_indexing_when_ready_waits_for_the_file(setup: Setup):
    async def scenario():
        async def hang_up_finishes_the_file():
            await asyncio.sleep(0.05)
            write_wav(setup.dir / "late.wav", 2.0)

        writer = asyncio.create_task(hang_up_finishes_the_file())
        row = await setup.service.index_when_ready("late", attempts=50, delay=0.01, **call_facts())
        await writer
        return row

    assert asyncio.run(scenario())["duration"] == 2.0


def test_indexing_when_ready_gives_up_with_a_warning(setup: Setup, caplog):
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(setup.service.index_when_ready("never", attempts=3, delay=0.001, **call_facts())) is None
    assert "recording of call never: no finished WAV" in caplog.text and "after 3 tries" in caplog.text


# ---- search --------------------------------------------------------------------------------------
@pytest.fixture
def searchable(setup: Setup) -> Setup:
    setup.recorded("a", age_days=5, agent_id="1001", queue="support", customer="+8613800138000",
                   customer_name="Wang Fang")
    setup.recorded("b", age_days=4, agent_id="1002", queue="sales", customer="+14155550100", customer_name="Ann Lee")
    setup.recorded("c", age_days=3, agent_id="1001", queue="sales", customer="+14155550199", customer_name=None)
    setup.recorded("d", age_days=2, agent_id="1003", queue=None, customer=None, customer_name=None,
                   direction="outbound")
    setup.recorded("e", age_days=1, agent_id="1001", queue="support", customer="+8613900000000",
                   customer_name="Li 100% Lei")
    return setup


def ids(result) -> list[str]:
    return [row.id for row in result[0]]


def test_search_filters_newest_first(searchable: Setup):
    store = searchable.store
    assert ids(store.search()) == ["e", "d", "c", "b", "a"]
    assert ids(store.search(agent_id="1001")) == ["e", "c", "a"]
    assert ids(store.search(queue="sales")) == ["c", "b"]
    assert ids(store.search(agent_id="1001", queue="sales")) == ["c"]
    assert ids(store.search(customer="415555")) == ["c", "b"]
    assert ids(store.search(customer="wang")) == ["a"], "names match in any case"
    assert ids(store.search(customer="100%")) == ["e"], "% is a character, not a wildcard"
    assert ids(store.search(customer="_")) == []
    assert ids(store.search(call_id="d")) == ["d"]
    assert ids(store.search(since=NOW - 3 * DAY)) == ["e", "d", "c"], "since is inclusive"
    assert ids(store.search(until=NOW - 3 * DAY)) == ["b", "a"], "until is exclusive"
    assert ids(store.search(since=NOW - 4.5 * DAY, until=NOW - 1.5 * DAY)) == ["d", "c", "b"]


def test_search_pages_and_counts_all_matches(searchable: Setup):
    store = searchable.store
    assert store.search(limit=2) == (store.search()[0][:2], 5)
    assert ids(store.search(limit=2, offset=2)) == ["c", "b"]
    assert store.search(limit=2, offset=4)[0][0].id == "a"
    assert store.search(agent_id="1001", limit=1) == (store.search(agent_id="1001")[0][:1], 3)
    assert store.search(offset=10) == ([], 5)
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        with pytest.raises(ValueError):
            store.search(**bad)


# ---- paths ---------------------------------------------------------------------------------------
def test_a_file_name_leaving_the_folder_is_refused(setup: Setup, tmp_path: Path):
    row = setup.store.get(setup.recorded("c1")["id"])
    assert setup.service.path_of(row) == (setup.dir / "c1.wav").resolve()
    outside = write_wav(tmp_path / "outside.wav", 1.0)
    (setup.dir / "link.wav").symlink_to(outside)
    for name in ("../outside.wav", str(outside), ".", "link.wav"):
        with pytest.raises(RecordingPathError, match="is outside"):
            setup.service.path_of(replace(row, file=name))


# ---- purge ---------------------------------------------------------------------------------------
@pytest.fixture
def aged(setup: Setup) -> Setup:
    """Recordings of several ages and queues (sales: 30 days, legal: forever, others: 90)."""
    setup.recorded("sales-old", age_days=31, queue="sales")
    setup.recorded("sales-new", age_days=29, queue="sales")
    setup.recorded("legal-ancient", age_days=4000, queue="legal")
    setup.recorded("support-old", age_days=91, queue="support", seconds=10)
    setup.recorded("support-new", age_days=89, queue="support")
    setup.recorded("noqueue-old", age_days=120, queue=None, seconds=1)
    return setup


def remaining(setup: Setup) -> list[str]:
    return sorted(r.id for r in setup.store.search()[0])


def files(setup: Setup) -> list[str]:
    return sorted(p.stem for p in setup.dir.iterdir())


def test_purge_removes_due_files_and_rows_together_and_reports_them(aged: Setup):
    sizes = {name: (aged.dir / f"{name}.wav").stat().st_size for name in ("sales-old", "support-old", "noqueue-old")}
    report = aged.service.purge(actor="admin:api-token")
    assert (report.removed, report.files_removed, report.bytes_freed) == (3, 3, sum(sizes.values()))
    assert report.by_queue == {"": 1, "sales": 1, "support": 1}
    assert (report.missing, report.errors, report.dry_run) == ([], [], False)
    kept = ["legal-ancient", "sales-new", "support-new"]
    assert remaining(aged) == files(aged) == kept
    [entry] = aged.audit.entries(action="recordings_purged")
    assert (entry.actor, entry.target) == ("admin:api-token", "recordings")
    assert entry.details == {"removed": 3, "files_removed": 3, "bytes_freed": sum(sizes.values()), "missing": 0,
                             "errors": 0, "by_queue": {"": 1, "sales": 1, "support": 1}}
    again = aged.service.purge()
    assert (again.removed, again.files_removed) == (0, 0)


def test_a_dry_run_reports_the_same_and_changes_nothing(aged: Setup):
    before = (remaining(aged), files(aged))
    dry = aged.service.purge(actor="admin:api-token", dry_run=True)
    assert (dry.removed, dry.files_removed, dry.dry_run) == (3, 3, True)
    assert (remaining(aged), files(aged)) == before
    assert aged.audit.entries(action="recordings_purged") == []
    real = aged.service.purge()
    assert (real.removed, real.files_removed, real.bytes_freed, real.by_queue) == \
        (dry.removed, dry.files_removed, dry.bytes_freed, dry.by_queue)


def test_a_row_whose_file_is_already_gone_is_removed_and_reported_missing(aged: Setup):
    (aged.dir / "support-old.wav").unlink()
    report = aged.service.purge()
    assert (report.removed, report.files_removed, report.missing) == (3, 2, ["support-old"])
    assert "support-old" not in remaining(aged)


def test_a_file_that_cannot_be_removed_keeps_its_row(aged: Setup):
    (aged.dir / "sales-old.wav").unlink()
    (aged.dir / "sales-old.wav").mkdir()  # unlink() fails on it, even for root
    report = aged.service.purge()
    assert report.errors == [{"id": "sales-old", "file": "sales-old.wav", "error": "Is a directory"}]
    assert (report.removed, report.by_queue) == (2, {"": 1, "support": 1})
    assert "sales-old" in remaining(aged)
    assert aged.service.purge().errors == report.errors, "tried again next time, still kept"


def test_a_file_outside_the_folder_is_never_deleted(aged: Setup, tmp_path: Path):
    outside = write_wav(tmp_path / "precious.wav", 1.0)
    with aged.engine.begin() as conn:
        conn.exec_driver_sql("update recordings set file = '../precious.wav' where id = 'noqueue-old'")
    report = aged.service.purge()
    assert [e["id"] for e in report.errors] == ["noqueue-old"] and "is outside" in report.errors[0]["error"]
    assert outside.exists() and "noqueue-old" in remaining(aged)
    assert report.removed == 2


def test_purge_pages_through_many_rows_skipping_the_ones_it_keeps(aged: Setup, monkeypatch):
    monkeypatch.setattr("callcenter.recording.service.PURGE_PAGE", 2)
    (aged.dir / "sales-old.wav").unlink()
    (aged.dir / "sales-old.wav").mkdir()
    for n in range(5):
        aged.recorded(f"bulk-{n}", age_days=100 + n, queue="support", seconds=0.1)
    report = aged.service.purge()
    assert report.removed == 7 and len(report.errors) == 1
    assert remaining(aged) == ["legal-ancient", "sales-new", "sales-old", "support-new"]


def test_keeping_forever_purges_nothing(aged: Setup):
    aged.service.settings = RecordingsSettings(retention=RetentionPolicy(default_days=None))
    assert aged.service.purge().removed == 0 and len(remaining(aged)) == 6
