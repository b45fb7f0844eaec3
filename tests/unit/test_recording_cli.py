"""`callcenter recordings list|purge` with a settings file whose data_dir (the SQLite database) and
asterisk_root (the recordings folder) are the test's folder: the table and its filters, the purge's
report and audit row, exit 1 when a file had to be kept, and bad times refused (exit 2)."""

from __future__ import annotations

import getpass
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from callcenter.asterisk.process import AsteriskInstance
from callcenter.audit import AuditLog
from callcenter.config import Settings
from callcenter.recording.cli import recordings
from callcenter.recording.model import DAY, RecordingsSettings
from callcenter.recording.service import RecordingService
from callcenter.recording.store import RecordingStore, create_tables
from callcenter.storage import make_engine
from tests.unit.test_recording_store import call_facts, write_wav


class Cli:
    def __init__(self, tmp_path: Path, extra_settings: str = ""):
        self.config = tmp_path / "settings.yaml"
        self.config.write_text(f"data_dir: {tmp_path}\nasterisk_root: {tmp_path / 'asterisk'}\n"
                               f"time_zone: Asia/Shanghai\n{extra_settings}")
        self.settings = Settings.load(self.config)
        self.dir = AsteriskInstance(self.settings).recordings_dir
        self.engine = make_engine(self.settings.db_url)
        create_tables(self.engine)
        self.store = RecordingStore(self.engine)
        self.now = time.time()

    def run(self, *args: str) -> Result:
        # as `callcenter --config settings.yaml recordings ...` (the main group puts the settings in obj)
        return CliRunner().invoke(recordings, list(args), obj={"settings": Settings.load(self.config)})

    def recorded(self, call_id: str, age_days: float, seconds: float = 61.0, **facts) -> None:
        write_wav(self.dir / f"{call_id}.wav", seconds)
        service = RecordingService(self.store, self.dir, RecordingsSettings(), AuditLog(self.engine))
        facts = call_facts(**facts)
        shift = self.now - age_days * DAY - facts["started_at"]
        facts.update(started_at=facts["started_at"] + shift, ended_at=facts["ended_at"] + shift)
        assert service.index_call(call_id, **facts) is not None


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.recorded("fresh", age_days=1, agent_id="1001", queue="support", customer="+8613800138000",
                 customer_name="Wang Fang")
    cli.recorded("old", age_days=100, agent_id="1002", queue="sales", customer="+14155550100",
                 customer_name="Ann Lee", seconds=3.0)
    cli.recorded("older", age_days=200, agent_id="1002", queue=None, customer=None, customer_name=None,
                 seconds=1.0)
    return cli


def test_list_shows_recordings_newest_first_with_filters(cli: Cli):
    result = cli.run("list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["started", "length", "agent", "queue", "customer", "name", "id"]
    assert lines[1].split()[2:] == ["1:01", "1001", "support", "+8613800138000", "Wang", "Fang", "fresh"]
    assert lines[2].split()[2:] == ["0:03", "1002", "sales", "+14155550100", "Ann", "Lee", "old"]
    assert lines[3].split()[2:] == ["0:01", "1002", "-", "-", "-", "older"]
    assert lines[4] == "3 of 3 recording(s)"
    assert [line.split()[-1] for line in cli.run("list", "--agent", "1002").stdout.splitlines()[1:-1]] == \
        ["old", "older"]
    assert cli.run("list", "--customer", "ann").stdout.splitlines()[-1] == "1 of 1 recording(s)"
    assert cli.run("list", "--limit", "1").stdout.splitlines()[-1] == "1 of 3 recording(s)"
    assert cli.run("list", "--from", str(cli.now - 150 * DAY), "--to", str(cli.now - 50 * DAY)) \
        .stdout.splitlines()[1].split()[-1] == "old"
    assert cli.run("list", "--queue", "nope").stdout == "no recordings match\n"


def test_list_shows_times_in_the_settings_time_zone(cli: Cli):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    started = cli.store.get("fresh").started_at
    shown = " ".join(cli.run("list").stdout.splitlines()[1].split()[:2])
    assert shown == datetime.fromtimestamp(started, ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")


def test_a_bad_time_is_refused_with_exit_2(cli: Cli):
    result = cli.run("list", "--from", "last tuesday")
    assert result.exit_code == 2
    assert "--from: 'last tuesday' is not a date (2024-03-01)" in result.stderr


def test_purge_removes_what_retention_lets_go_and_says_so(cli: Cli):
    sizes = (cli.dir / "old.wav").stat().st_size + (cli.dir / "older.wav").stat().st_size
    dry = cli.run("purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines()[0] == f"would remove 2 recording(s): 2 file(s), {sizes / 1024:.1f} KB to free"
    assert sorted(p.name for p in cli.dir.iterdir()) == ["fresh.wav", "old.wav", "older.wav"]

    result = cli.run("purge")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"removed 2 recording(s): 2 file(s), {sizes / 1024:.1f} KB freed",
                                          f"  {'(no queue)':<24} 1", f"  {'sales':<24} 1"]
    assert sorted(p.name for p in cli.dir.iterdir()) == ["fresh.wav"]
    assert [r.id for r in cli.store.search()[0]] == ["fresh"]
    [entry] = AuditLog(cli.engine).entries(action="recordings_purged")
    assert entry.actor == f"cli:{getpass.getuser()}" and entry.details["removed"] == 2


def test_purge_exits_1_and_lists_files_it_had_to_keep(cli: Cli):
    (cli.dir / "old.wav").unlink()
    (cli.dir / "old.wav").mkdir()
    (cli.dir / "older.wav").unlink()
    result = cli.run("purge")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "removed 1 recording(s): 0 file(s), 0 bytes freed",
        f"  {'(no queue)':<24} 1",
        "1 file(s) already gone (rows removed):",
        "  older",
        "1 recording(s) kept, their file could not be removed:",
        "  old: old.wav: Is a directory",
    ]
    assert sorted(r.id for r in cli.store.search()[0]) == ["fresh", "old"]


@pytest.mark.skipif("recordings" not in Settings.model_fields,
                    reason="the engine's Settings has no recordings section yet")
def test_the_settings_files_recordings_section_sets_the_retention(tmp_path: Path):
    cli = Cli(tmp_path, "recordings:\n  retention:\n    default_days: 365\n    queues: {sales: 30}\n")
    cli.recorded("support-old", age_days=100, queue="support")
    cli.recorded("sales-old", age_days=100, queue="sales")
    assert cli.run("purge").stdout.splitlines()[1:] == [f"  {'sales':<24} 1"]
    assert [r.id for r in cli.store.search()[0]] == ["support-old"]
