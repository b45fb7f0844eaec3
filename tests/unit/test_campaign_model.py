"""The pure part of outbound campaigns: campaign files and their errors, the calling window across
DST changes, pacing, retry decisions (at the limit), Asterisk's answers as outcomes, state changes."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.campaign.model import (
    TRANSITIONS,
    CampaignError,
    CampaignSpec,
    Decision,
    after_outcome,
    check_transition,
    in_window,
    lines_to_start,
    load_campaign_spec,
    map_originate_reason,
    next_window_open,
    parse_campaign_spec,
)

BASE = 'name: renewals\nqueue: sales\ncaller_id: "+14155550100"\n'


def spec(**fields) -> CampaignSpec:
    return CampaignSpec.model_validate({"name": "renewals", "queue": "sales", "caller_id": "+14155550100",
                                        **fields})


def at(zone: str, *parts: int) -> float:
    """Epoch seconds of a wall-clock time in ``zone`` (first occurrence of an ambiguous one)."""
    return datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()


# ------------------------------------------------------------------------------ campaign files
def test_a_minimal_file_gets_the_documented_defaults() -> None:
    s = parse_campaign_spec(BASE)
    assert (s.time_zone, s.window.days, s.window.start, s.window.end) == (
        "UTC", ("mon", "tue", "wed", "thu", "fri"), "09:00", "20:00")
    assert (s.pacing.mode, s.pacing.lines_per_agent, s.pacing.max_lines, s.ring_seconds) == ("progressive", 1, 10, 25)
    assert {k: (s.retry[k].attempts, s.retry[k].after_seconds) for k in ("busy", "no_answer", "failed", "interrupted")} \
        == {"busy": (3, 300), "no_answer": (3, 1800), "failed": (2, 600), "interrupted": (3, 60)}
    assert s.default_region == "US"


def test_a_full_file_is_read_and_survives_a_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE.replace('"+14155550100"', '"+33 1 23 45 67 89"') + (
        "time_zone: Europe/Paris\n"
        'window: {days: [sat, mon], start: "08:30", end: "24:00"}\n'
        "pacing: {mode: preview, max_lines: 4}\n"
        "ring_seconds: 30\n"
        "retry: {busy: {attempts: 5}, failed: {attempts: 0, after_seconds: 30}}\n"
        "default_region: FR\n"))
    s = load_campaign_spec(path)
    assert s.caller_id == "+33123456789"  # normalised to E.164
    assert (s.window.days, s.window.start_seconds, s.window.end_seconds) == (("sat", "mon"), 30600, 86400)
    assert (s.pacing.mode, s.pacing.max_lines) == ("preview", 4)
    # a rule given in part keeps the default of the rest
    assert (s.retry["busy"].attempts, s.retry["busy"].after_seconds) == (5, 300)
    assert (s.retry["failed"].attempts, s.retry["failed"].after_seconds) == (0, 30)
    assert CampaignSpec.model_validate(s.to_json()) == s


@pytest.mark.parametrize(("text", "expected"), [
    (BASE.replace("renewals", "Renewals"), ":1:7: name: 'Renewals' is not a name"),
    (BASE + "time_zone: Mars/Olympus\n", ":4:12: time_zone: 'Mars/Olympus' is not an IANA time zone"),
    (BASE + 'window: {start: 20:00, end: "21:00"}\n', ':4:17: window.start: write times in quotes, e.g. "09:00"'),
    (BASE + 'window: {start: "9:00"}\n', "window.start: '9:00' is not a time of day written \"HH:MM\""),
    (BASE + 'window: {start: "20:00", end: "09:00"}\n', ":4:9: window: start 20:00 must be before end 09:00"),
    (BASE + "window: {days: [mon, mon]}\n", "window.days: mon given twice"),
    (BASE + "window: {days: [monday]}\n", "window.days.0: expected 'mon', 'tue', 'wed'"),
    (BASE + "window: {days: []}\n", ":4:16: window.days: give at least 1 day"),
    (BASE + "pacing: {mode: predictive}\n", "pacing.mode: expected 'preview' or 'progressive', got 'predictive'"),
    (BASE + "pacing: {mode: preview, lines_per_agent: 2}\n", "pacing: lines_per_agent applies to progressive"),
    (BASE + "pacing: {lines_per_agent: 4}\n", "pacing.lines_per_agent: Input should be less than or equal to 3"),
    (BASE + "pacing: {max_lines: 201}\n", "pacing.max_lines: Input should be less than or equal to 200"),
    (BASE + "ring_seconds: 4\n", "ring_seconds: Input should be greater than or equal to 5"),
    (BASE + "ring_seconds: '25'\n", "ring_seconds: Input should be a valid integer"),
    (BASE + "retry: {busy: {attempts: 11}}\n", ":4:26: retry.busy.attempts: Input should be less than or equal to 10"),
    (BASE + "retry: {no_answer: {after_seconds: 29}}\n", "retry.no_answer.after_seconds: Input should be greater"),
    (BASE + "retry: {connected: {attempts: 1}}\n", ":4:9: retry.connected: unknown key 'connected'"),
    (BASE + "default_region: XX\n", "default_region: 'XX' is not a region phonenumbers knows"),
    (BASE + "speed: fast\n", ":4:1: speed: unknown key 'speed'"),
    (BASE + "queue: other\n", ":4:1: duplicate key 'queue'"),
])
def test_problems_name_the_file_line_field_and_what_was_expected(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CampaignError) as caught:
        load_campaign_spec(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert (f"{path}{expected}" if expected.startswith(":") else expected) in message


@pytest.mark.parametrize(("caller_id", "message"), [
    ("14155550100", "14155550100 is not an E.164 number: write it with + and the country code"),
    ('"4155550100"', "'4155550100' is not an E.164 number"),
    ('"+1 000"', "'+1 000' is not a valid number"),
])
def test_the_caller_id_must_be_an_e164_number(caller_id: str, message: str) -> None:
    with pytest.raises(CampaignError, match="caller_id: " + message.replace("+", r"\+")):
        parse_campaign_spec(BASE.replace('"+14155550100"', caller_id), "c.yaml")


def test_every_missing_field_is_reported_at_once_and_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CampaignError) as caught:
        parse_campaign_spec("time_zone: UTC\n", "c.yaml")
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("name", "required field is missing"), ("queue", "required field is missing"),
        ("caller_id", "required field is missing")]
    with pytest.raises(CampaignError, match="c.yaml:1:1: expected a mapping"):
        parse_campaign_spec("- a list\n", "c.yaml")
    with pytest.raises(CampaignError, match=r"c.yaml:2:1: invalid YAML"):
        parse_campaign_spec("name: [unclosed\n", "c.yaml")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CampaignError, match=f"^{missing}: cannot read campaign file"):
        load_campaign_spec(missing)


# ------------------------------------------------------------------------------ the window
PARIS = spec(time_zone="Europe/Paris")  # mon-fri 09:00-20:00
NEW_YORK = spec(time_zone="America/New_York")


def test_the_window_is_wall_clock_time_in_the_campaign_zone_with_end_excluded() -> None:
    friday = (2024, 3, 29)
    assert not in_window(PARIS, at("Europe/Paris", *friday, 8, 59, 59))
    assert in_window(PARIS, at("Europe/Paris", *friday, 9, 0))
    assert in_window(PARIS, at("Europe/Paris", *friday, 19, 59, 59) + 0.5)
    assert not in_window(PARIS, at("Europe/Paris", *friday, 20, 0))
    # the same instant is 09:00 in Paris but 04:00 in New York
    assert not in_window(NEW_YORK, at("Europe/Paris", *friday, 9, 0))


def test_closed_days_are_closed_all_day() -> None:
    saturday, sunday = (2024, 3, 30), (2024, 3, 31)
    assert not in_window(PARIS, at("Europe/Paris", *saturday, 12, 0))
    assert not in_window(PARIS, at("Europe/Paris", *sunday, 12, 0))
    weekend = spec(time_zone="Europe/Paris", window={"days": ["sat", "sun"]})
    assert in_window(weekend, at("Europe/Paris", *saturday, 12, 0))
    assert not in_window(weekend, at("Europe/Paris", 2024, 4, 1, 12, 0))  # a Monday


def test_open_now_returns_now_itself() -> None:
    now = at("Europe/Paris", 2024, 3, 29, 12, 0) + 0.25
    assert next_window_open(PARIS, now) == now


def test_next_opening_after_spring_forward_in_paris_is_09_00_summer_time() -> None:
    # Friday 29 March 2024 after hours; clocks go forward on Sunday 31 March (CET -> CEST).
    opens = next_window_open(PARIS, at("Europe/Paris", 2024, 3, 29, 20, 0))
    assert opens == utc(2024, 4, 1, 7, 0)  # Monday 09:00 CEST; a fixed +01:00 would say 08:00 UTC
    # and at 07:30 UTC on that Monday it is 09:30 in Paris: open (under winter time it would not be)
    assert in_window(PARIS, utc(2024, 4, 1, 7, 30))


def test_next_opening_after_fall_back_in_paris_is_09_00_winter_time() -> None:
    opens = next_window_open(PARIS, at("Europe/Paris", 2024, 10, 25, 21, 0))  # Friday evening
    assert opens == utc(2024, 10, 28, 8, 0)  # Monday 09:00 CET
    assert not in_window(PARIS, utc(2024, 10, 28, 7, 30))  # 08:30 CET


def test_a_start_skipped_by_spring_forward_in_new_york_opens_when_the_clock_jumps() -> None:
    # Sunday 10 March 2024, 02:00 EST -> 03:00 EDT: 02:30 never happens that day.
    sunday = spec(time_zone="America/New_York", window={"days": ["sun"], "start": "02:30", "end": "04:00"})
    assert not in_window(sunday, utc(2024, 3, 10, 6, 59, 59))  # 01:59:59 EST
    assert in_window(sunday, utc(2024, 3, 10, 7, 0))            # 03:00 EDT
    assert next_window_open(sunday, at("America/New_York", 2024, 3, 9, 12, 0)) == utc(2024, 3, 10, 7, 0)


def test_a_window_swallowed_by_spring_forward_waits_for_the_next_week() -> None:
    lost = spec(time_zone="America/New_York", window={"days": ["sun"], "start": "02:00", "end": "02:30"})
    assert next_window_open(lost, at("America/New_York", 2024, 3, 9, 12, 0)) \
        == at("America/New_York", 2024, 3, 17, 2, 0)


def test_fall_back_in_new_york_opens_at_the_first_occurrence_and_can_reopen() -> None:
    # Sunday 3 November 2024, 02:00 EDT -> 01:00 EST: 01:00-02:00 happens twice.
    first = spec(time_zone="America/New_York", window={"days": ["sun"], "start": "01:30", "end": "04:00"})
    assert next_window_open(first, at("America/New_York", 2024, 11, 2, 12, 0)) == utc(2024, 11, 3, 5, 30)  # 01:30 EDT
    early = spec(time_zone="America/New_York", window={"days": ["sun"], "start": "00:00", "end": "01:30"})
    closed = utc(2024, 11, 3, 5, 45)  # 01:45 EDT: past the end...
    assert not in_window(early, closed)
    assert next_window_open(early, closed) == utc(2024, 11, 3, 6, 0)  # ...until the clock is back at 01:00 EST


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC"])
def test_next_opening_is_the_first_open_moment(zone: str) -> None:
    s = spec(time_zone=zone, window={"days": ["mon", "wed", "sun"], "start": "01:30", "end": "03:15"})
    start = utc(2024, 1, 1)
    for n in range(60):
        now = start + n * 6 * 86400 + n * 3607.5  # spread over the year and the hours
        opens = next_window_open(s, now)
        assert opens >= now and in_window(s, opens)
        if opens > now:
            # closed from now until then (sampled every 10 minutes, and the second before)
            probes = itertools.chain(range(int(now) + 1, int(opens), 600), [opens - 1])
            assert not any(in_window(s, t) for t in probes if t >= now)


# ------------------------------------------------------------------------------ pacing
@pytest.mark.parametrize(("mode", "agents", "active", "per_agent", "max_lines", "expected"), [
    ("progressive", 3, 0, 1, 10, 3),
    ("progressive", 3, 1, 1, 10, 2),
    ("progressive", 3, 0, 2, 10, 6),
    ("progressive", 3, 0, 3, 5, 5),    # capped by max_lines
    ("progressive", 2, 5, 1, 10, 0),   # more calls than agents (one left): never negative
    ("progressive", 0, 0, 3, 10, 0),
    ("preview", 3, 0, 3, 10, 3),       # one call per reserved agent, lines_per_agent ignored
    ("preview", 3, 1, 1, 10, 2),
    ("preview", 8, 0, 1, 4, 4),
    ("preview", 1, 2, 1, 10, 0),
])
def test_lines_to_start(mode: str, agents: int, active: int, per_agent: int, max_lines: int, expected: int) -> None:
    assert lines_to_start(mode, agents, active, per_agent, max_lines) == expected


def test_lines_to_start_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="'predictive' is not a pacing mode"):
        lines_to_start("predictive", 1, 0, 1, 1)


# ------------------------------------------------------------------------------ after a call
NOW = 1_700_000_000.0


def test_connected_is_done_and_dnc_is_dnc_whatever_the_counts() -> None:
    s = spec()
    assert after_outcome(s, "connected", {"busy": 9}, NOW) == Decision("done", None)
    assert after_outcome(s, "dnc", {}, NOW) == Decision("dnc", None)


@pytest.mark.parametrize(("outcome", "earlier", "expected"), [
    ("busy", 0, Decision("pending", NOW + 300)),
    ("busy", 2, Decision("pending", NOW + 300)),   # the 3rd busy: exactly at the limit, retried
    ("busy", 3, Decision("failed")),               # the 4th: over it
    ("no_answer", 2, Decision("pending", NOW + 1800)),
    ("no_answer", 3, Decision("failed")),
    ("failed", 1, Decision("pending", NOW + 600)),
    ("failed", 2, Decision("failed")),
    ("interrupted", 2, Decision("pending", NOW + 60)),
    ("interrupted", 3, Decision("failed")),
])
def test_retries_up_to_the_rule_attempts(outcome: str, earlier: int, expected: Decision) -> None:
    assert after_outcome(spec(), outcome, {outcome: earlier}, NOW) == expected


def test_each_outcome_kind_counts_on_its_own_and_zero_attempts_never_retries() -> None:
    s = spec(retry={"busy": {"attempts": 1}, "no_answer": {"attempts": 0}})
    assert after_outcome(s, "busy", {"no_answer": 5, "failed": 2}, NOW).status == "pending"
    assert after_outcome(s, "busy", {"busy": 1}, NOW).status == "failed"
    assert after_outcome(s, "no_answer", {}, NOW) == Decision("failed")


def test_an_always_busy_contact_is_dialled_one_plus_attempts_times() -> None:
    s, counts, dials, decision = spec(), {}, 0, Decision("pending")
    while decision.status == "pending":
        dials += 1
        decision = after_outcome(s, "busy", counts, NOW)
        counts["busy"] = counts.get("busy", 0) + 1
    assert (dials, decision.status) == (4, "failed")


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="'answered' is not a contact outcome"):
        after_outcome(spec(), "answered", {}, NOW)


@pytest.mark.parametrize(("reason", "answered", "outcome"), [
    (4, True, "connected"), (None, True, "connected"), (0, True, "connected"),
    (4, False, "connected"), (5, False, "busy"), (3, False, "no_answer"), (2, False, "no_answer"),
    (8, False, "failed"), (1, False, "failed"), (0, False, "failed"), (None, False, "failed"),
    (99, False, "failed"),
])
def test_originate_reasons(reason: int | None, answered: bool, outcome: str) -> None:
    assert map_originate_reason(reason, answered) == outcome



# ------------------------------------------------------------------------------ states
ALLOWED = {("draft", "running"), ("running", "paused"), ("paused", "running"), ("draft", "stopped"),
           ("running", "stopped"), ("paused", "stopped"), ("running", "completed")}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(TRANSITIONS, repeat=2)))
def test_state_changes(current: str, new: str) -> None:
    if (current, new) in ALLOWED:
        check_transition(current, new)
    else:
        with pytest.raises(ValueError, match=f"a {current} campaign cannot become {new}"):
            check_transition(current, new)


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="'archived' is not a campaign state"):
        check_transition("draft", "archived")
