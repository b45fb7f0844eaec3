"""`callcenter campaign` and `callcenter dnc` through the main command line, with a settings file
whose data_dir (and so the SQLite database) is the test's folder: create, import (good rows kept,
exit 1), start/pause/resume/stop, list, status, the do-not-call list, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from callcenter.cli import main

CAMPAIGN = """\
name: renewals
queue: sales
caller_id: "+14155550100"
time_zone: America/New_York
window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}
pacing: {mode: progressive, lines_per_agent: 2, max_lines: 4}
"""


@pytest.fixture
def run(tmp_path: Path):
    config = tmp_path / "settings.yaml"
    config.write_text(f"data_dir: {tmp_path}\ncrm_region: US\n")

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(config), *args])

    return run


@pytest.fixture
def campaign_file(tmp_path: Path) -> Path:
    path = tmp_path / "renewals.yaml"
    path.write_text(CAMPAIGN)
    return path


def csv_file(tmp_path: Path, text: str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_create_import_start_and_follow_a_campaign(run, tmp_path: Path, campaign_file: Path) -> None:
    created = run("campaign", "create", str(campaign_file))
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("campaign renewals created (draft)")
    assert (tmp_path / "callcenter.db").is_file()

    run("dnc", "add", "415 555 0103", "--reason", "asked")
    contacts = csv_file(tmp_path, "number,name\n4155550101,Ann\n12ab,Bad\n4155550102,Bob\n4155550103,Cy\n")
    imported = run("campaign", "import", "renewals", str(contacts))
    assert imported.exit_code == 1  # a row was refused; the others are stored
    assert imported.stderr == f"{contacts}:3: number: '12ab' is not a phone number: unexpected character 'a'\n"
    assert imported.stdout == (f"{contacts}: imported 2 contact(s), 1 more on the do-not-call list "
                               "(stored as dnc, never called); 1 row(s) refused\n")

    started = run("campaign", "start", "renewals")
    assert (started.exit_code, started.stdout) == (0, "campaign renewals running\n")
    listed = run("campaign", "list")
    assert listed.stdout.splitlines()[1].split() == ["renewals", "running", "sales", "progressive", "1/3"]

    status = run("campaign", "status", "renewals")
    assert status.exit_code == 0, status.output
    lines = status.stdout.splitlines()
    assert lines[0] == "campaign renewals: running, queue sales, caller id +14155550100"
    assert lines[1] == "pacing   progressive (2 line(s) per agent, at most 4 lines)"
    assert lines[2].endswith("America/New_York: open now")
    assert lines[3] == f"[{'#' * 10}{'.' * 20}] 1/3 finished (33%)"
    assert lines[4] == "status   pending 2  dialing 0  done 0  failed 0  dnc 1  invalid 0"

    as_json = json.loads(run("campaign", "status", "renewals", "--json").stdout)
    assert (as_json["state"], as_json["total"], as_json["finished"], as_json["by_status"]["dnc"],
            as_json["in_window"]) == ("running", 3, 1, 1, True)

    for verb, state in (("pause", "paused"), ("resume", "running"), ("stop", "stopped")):
        result = run("campaign", verb, "renewals")
        assert (result.exit_code, result.stdout) == (0, f"campaign renewals {state}\n")
    again = run("campaign", "start", "renewals")
    assert again.exit_code == 2
    assert again.stderr == ("Error: campaign 'renewals': a stopped campaign cannot become running "
                            "(allowed: none: it is final)\n")


def test_an_invalid_campaign_file_lists_its_problems_and_exits_2(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: renewals\nqueue: sales\ncaller_id: 14155550100\nring_seconds: 500\n")
    result = run("campaign", "create", str(bad))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {bad}:3:12: caller_id: 14155550100 is not an E.164 number: write it with + and the country "
        'code, quoted, e.g. "+14155550100"',
        f"{bad}:4:15: ring_seconds: Input should be less than or equal to 120 (got 500)",
    ]
    assert run("campaign", "list").stdout == "no campaigns (create one with: callcenter campaign create FILE.yaml)\n"


def test_update_only_while_not_running_and_names_are_unique(run, campaign_file: Path) -> None:
    run("campaign", "create", str(campaign_file))
    twice = run("campaign", "create", str(campaign_file))
    assert (twice.exit_code, twice.stderr) == (2, "Error: a campaign named 'renewals' already exists (change it "
                                                  "with 'callcenter campaign update')\n")
    run("campaign", "start", "renewals")
    campaign_file.write_text(CAMPAIGN.replace("max_lines: 4", "max_lines: 8"))
    refused = run("campaign", "update", str(campaign_file))
    assert (refused.exit_code, refused.stderr) == (2, "Error: campaign 'renewals' is running: pause it before "
                                                      "changing it\n")
    run("campaign", "pause", "renewals")
    updated = run("campaign", "update", str(campaign_file))
    assert (updated.exit_code, updated.stdout) == (0, "campaign renewals updated (paused)\n")
    assert "at most 8 lines" in run("campaign", "status", "renewals").stdout


def test_unknown_campaigns_and_files_that_are_not_contact_lists_exit_2(run, tmp_path: Path,
                                                                      campaign_file: Path) -> None:
    unknown = run("campaign", "status", "nope")
    assert (unknown.exit_code, unknown.stderr) == (2, "Error: no campaign 'nope'\n")
    run("campaign", "create", str(campaign_file))
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = run("campaign", "import", "renewals", str(binary))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: {binary}: nothing imported: the file cannot be read as a " \
                                             "contact list"
    assert json.loads(run("campaign", "status", "renewals", "--json").stdout)["total"] == 0


def test_the_dnc_commands(run, tmp_path: Path) -> None:
    added = run("dnc", "add", "(415) 555-0101", "--reason", "asked")
    assert (added.exit_code, added.stdout) == (0, "+14155550101 added to the do-not-call list\n")
    assert run("dnc", "add", "+1 415 555 0101").stdout == "+14155550101 was already on the do-not-call list\n"
    assert run("dnc", "add", "01 23 45 67 89", "--region", "FR").stdout.startswith("+33123456789 added")
    bad = run("dnc", "add", "12ab")
    assert (bad.exit_code, bad.stderr) == (2, "Error: '12ab' is not a phone number: unexpected character 'a'\n")

    numbers = csv_file(tmp_path, "4155550102\nnope\n4155550101\n", "dnc.txt")
    imported = run("dnc", "import", str(numbers), "--reason", "list")
    assert imported.exit_code == 1
    assert imported.stderr == f"{numbers}:2: number: 'nope' is not a phone number: unexpected character 'n'\n"
    assert imported.stdout == (f"{numbers}: added 1 number(s) to the do-not-call list, 1 already on it; "
                               "1 line(s) refused\n")

    listing = [line.split() for line in run("dnc", "list").stdout.splitlines()]
    # number, date, time, reason (none given for the French number)
    assert [(row[0], row[3:]) for row in listing] == [("+14155550101", ["asked"]), ("+14155550102", ["list"]),
                                                     ("+33123456789", [])]
    removed = run("dnc", "remove", "4155550101")
    assert (removed.exit_code, removed.stdout) == (0, "+14155550101 removed from the do-not-call list\n")
    gone = run("dnc", "remove", "4155550101")
    assert (gone.exit_code, gone.stderr) == (2, "Error: +14155550101 is not on the do-not-call list\n")
