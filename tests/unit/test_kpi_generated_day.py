"""A generated stretch of traffic (seeded: a busy day in Asia/Shanghai between sparse days) whose
KPIs are recomputed by a separate, naive implementation of docs/kpi.md (tests/unit/kpi_day.py)
and must match `kpi_report` exactly: counts equal, floats within 1e-12 relative."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from functools import cache
from itertools import pairwise

import pytest

from callcenter.kpi.definitions import kpi_report
from callcenter.kpi.realtime import RealtimeKpis, snapshot_from_rows
from tests.unit.kpi_day import (
    DAY,
    FCR_DAYS,
    MAIN_DAY,
    NOW,
    TZ,
    agent_spans,
    bucket_bounds,
    generate,
    oracle,
    read_contacts,
    read_legs,
)

SEEDS = (1, 2, 3)
MAIN_START = MAIN_DAY.timestamp()
MAIN_END = MAIN_START + DAY


@cache
def rows_of(seed: int, plus_less_numbers: bool = False) -> tuple[dict, ...]:
    return tuple(generate(seed, plus_less_numbers=plus_less_numbers))


def report(rows, **kw):
    return kpi_report(rows, tz=TZ, now=NOW, fcr_days=FCR_DAYS, **kw)


# ---------------------------------------------------------------------------- comparing
def same(want, got) -> bool:
    if want is None or got is None:
        return want is got
    if isinstance(want, float) or isinstance(got, float):
        return math.isclose(want, got, rel_tol=1e-12, abs_tol=1e-9)
    return want == got


def differences(path: str, want: dict, got: dict) -> list[str]:
    out = []
    for name, value in want.items():
        if name not in got:
            out.append(f"{path}.{name}: not in the report")
        elif isinstance(value, dict):
            out += differences(f"{path}.{name}", value, got[name])
        elif not same(value, got[name]):
            out.append(f"{path}.{name}: expected {value!r}, kpi_report says {got[name]!r}")
    return out


def is_empty(figures: dict) -> bool:
    """A scope with nothing in it: every count 0, every ratio and mean None (no data)."""
    names = ("queue", "agent_id", "threshold", "window_days")
    return all(is_empty(v) if isinstance(v, dict) else v in (0, None)
               for k, v in figures.items() if k not in names)


def compare(expected: list[dict], got, context: str, *, total: str = "*") -> list[str]:
    """Every field of every scope of every interval. A scope (or interval) the report leaves out
    must be empty in the oracle; the report's "all" interval starts where its data starts, which
    docs/kpi.md does not pin down, so only its end (now) is compared. `total`: the name the
    report gives its total row ("*"; the queue's name when filtered to one queue)."""
    problems = []
    got_intervals = {b.label: b for b in got.intervals}
    want_intervals = {b["label"]: b for b in expected}
    for label in got_intervals.keys() - want_intervals.keys():
        problems.append(f"{context} {label}: an interval the oracle does not have")
    for label, want in want_intervals.items():
        where = f"{context} interval={label}"
        bucket = got_intervals.get(label)
        if bucket is None:
            if not all(is_empty(f) for kind in ("queues", "agents") for f in want[kind].values()):
                problems.append(f"{where}: missing from the report, but it has data")
            continue
        if label != "all" and (bucket.start, bucket.end) != (want["start"], want["end"]):
            problems.append(f"{where}: bounds {(bucket.start, bucket.end)} != {(want['start'], want['end'])}")
        if label == "all" and bucket.end != want["end"]:
            problems.append(f"{where}: end {bucket.end} != now {want['end']}")
        if bucket.total.queue != total:
            problems.append(f"{where}: the total row is named {bucket.total.queue!r}")
        reported = {"queues": {q.queue: dataclasses.asdict(q) for q in bucket.queues},
                    "agents": {a.agent_id: dataclasses.asdict(a) for a in bucket.agents}}
        reported["queues"]["*"] = dict(dataclasses.asdict(bucket.total), queue="*")
        for kind, rows in reported.items():
            for scope in rows.keys() - want[kind].keys():
                problems.append(f"{where} {kind[:-1]}={scope}: a scope the oracle does not have")
            for scope, figures in want[kind].items():
                if scope in rows:
                    problems += differences(f"{where} {kind[:-1]}={scope}", figures, rows[scope])
                elif not is_empty(figures):
                    problems.append(f"{where} {kind[:-1]}={scope}: missing from the report, but it has data")
    return problems


def assert_no_problems(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])


# ---------------------------------------------------------------------------- the data is not easy
def edges(rows) -> Counter:
    """How many times each edge of the generator's brief occurs in the rows."""
    rows = list(rows)
    legs = read_legs(rows)
    contacts = read_contacts(rows, legs)
    found = Counter()
    by_call = defaultdict(list)
    for row in rows:
        if row["call_id"]:
            by_call[row["call_id"]].append(row)
    kinds = Counter(row["kind"] for row in rows)
    for kind in ("busy", "unreachable", "ring_no_answer", "screen_pop", "wrapup_done"):
        found[kind] = kinds[kind]

    found["busy-day calls"] = len({row["call_id"] for row in rows if row["kind"] in ("call_arrived", "queued")
                                   and MAIN_START <= row["ts"] < MAIN_END})
    for leg in legs:
        found["abandoned < 5 s"] += leg.outcome == "abandoned" and leg.wait < 5
        found["abandoned at 4.9 s"] += leg.outcome == "abandoned" and leg.wait == 4.9
        found["abandoned at 5.0 s"] += leg.outcome == "abandoned" and leg.wait == 5.0
        found["answered at 20.0 s"] += leg.outcome == "answered" and leg.wait == 20.0
        found["answered talking at the end"] += leg.outcome == "answered" and leg.ended_talk is None
        found["unresolved at the end"] += leg.outcome is None
        found["transferred-in leg answered"] += leg.transferred_in and leg.outcome == "answered"
        found["transferred-in leg not answered"] += leg.transferred_in and leg.outcome in ("abandoned", "exited")
        found["leg held twice"] += len([r for r in by_call[leg.call_id] if r["kind"] == "hold_ended"
                                        and r["agent_id"] == leg.agent]) >= 2
        found["ACW 0 (no wrap-up)"] += leg.acw == 0.0
        found["wrap-up not over"] += leg.ended_talk is not None and leg.acw is None
        if leg.outcome == "answered":
            for interval in ("30m", "day"):
                answered_at = next(r["ts"] for r in by_call[leg.call_id] if r["kind"] == "answered"
                                   and r["agent_id"] == leg.agent)
                found[f"answered in the next {interval}"] += (
                    bucket_bounds(leg.queued_at, interval) != bucket_bounds(answered_at, interval))
    for row in rows:
        data = row["data"]
        found["exited fallback:max_hold"] += row["kind"] == "exited" and data["reason"] == "fallback:max_hold"
        found["abandoned while ringing"] += row["kind"] == "abandoned" and data["stage"] == "ringing"
        found[f"hold ended: {data.get('how')}"] += row["kind"] == "hold_ended"
        found[f"ended by {data.get('by')}"] += row["kind"] == "ended"
        found[f"disposition resolved={data.get('resolved')}"] += row["kind"] == "disposition"
        if row["kind"] == "agent_state" and data["state"] == "paused":
            found[f"paused: {data['reason']}"] += 1
            found["paused mid-interval"] += datetime_minute(row["ts"]) % 30 != 0
        if row["kind"] == "survey_answered":
            found["survey: other question"] += data["question"] != "csat"
            found["survey: off-scale"] += data["question"] == "csat" and data["score"] not in range(1, 6)
    for call, call_rows in by_call.items():
        csat = [r for r in call_rows if r["kind"] == "survey_answered" and r["data"]["question"] == "csat"]
        found["survey: answered twice"] += len(csat) >= 2
        dispositions = [r["data"]["resolved"] for r in call_rows if r["kind"] == "disposition"]
        found["disposition changed"] += len(set(dispositions)) == 2
        call_kinds = [r["kind"] for r in call_rows]
        found["IVR-only call"] += "call_arrived" in call_kinds and "queued" not in call_kinds
        found["no call_arrived"] += "call_arrived" not in call_kinds
        found["CRM id from the IVR"] += any(r["kind"] == "ivr_lookup" and r["data"]["status"] == "found"
                                            for r in call_rows)
        found["withheld number, account found"] += any(r["kind"] == "ivr_lookup" and r["data"]["by"] == "account"
                                                       for r in call_rows)
        hold_after_end = [r for r in call_rows if r["kind"] == "hold_ended" and r["data"]["how"] == "hangup"]
        ends = [r for r in call_rows if r["kind"] == "ended"]
        found["hold_ended after ended"] += any(h["id"] > e["id"] for h in hold_after_end for e in ends)
        call_legs = [leg for leg in legs if leg.call_id == call]
        if len(call_legs) == 2 and call_legs[0].outcome == "answered" and call_legs[1].outcome == "answered":
            found["transfer answered by someone else"] += call_legs[0].agent != call_legs[1].agent
            found["transfer to another queue"] += call_legs[0].queue != call_legs[1].queue
        states = [r for r in call_rows if r["kind"] in ("ring_no_answer", "answered")]
        if len(states) >= 2 and states[0]["kind"] == "ring_no_answer" and states[-1]["kind"] == "answered":
            found["ring-no-answer, then answered by another"] += states[0]["agent_id"] != states[-1]["agent_id"]

    for contact in contacts:
        found["contact: anonymous"] += contact.customer is None
        found["contact: crm"] += (contact.customer or "").startswith("crm:")
        found["contact: too recent"] += contact.customer is not None and NOW - contact.arrived < FCR_DAYS * DAY
        old = contact.customer is not None and NOW - contact.arrived >= FCR_DAYS * DAY
        found["contact: scored, repeated"] += old and contact.repeated
        found["contact: scored, resolved"] += old and not contact.repeated
    arrivals = defaultdict(list)
    for call, call_rows in by_call.items():
        first = call_rows[0]
        if first["kind"] == "call_arrived" and any(ch.isdigit() for ch in first["data"]["caller"]):
            arrivals["".join(ch for ch in first["data"]["caller"] if ch.isdigit())].append(first["ts"])
            found["caller number with spaces"] += " " in first["data"]["caller"]
    for times in arrivals.values():
        for a in times:
            for b in times:
                found["same number again exactly 7 days later"] += b - a == FCR_DAYS * DAY
                found["same number again 7 days + 0.1 s later"] += math.isclose(b - a, FCR_DAYS * DAY + 0.1)
    spans = agent_spans(rows, NOW)
    for span in spans:
        found["agent state across midnight"] += (bucket_bounds(span.start, "day")
                                                 != bucket_bounds(min(span.end, NOW - 1), "day"))
        found["agent state open at the end"] += span.end == NOW and span.state != "logged_out"
    by_agent = defaultdict(list)
    for span in spans:
        by_agent[span.agent].append(span)
    for mine in by_agent.values():
        for before, after in pairwise(mine):
            if before.state == "wrap_up":
                found[f"wrap-up ended early by {after.state}"] += after.state in ("paused", "logged_out")
        busy_day = [s for s in mine if MAIN_START <= s.start < MAIN_END]
        found["logged out and in again the same day"] += len([s for s in busy_day if s.state == "logged_out"]) >= 2
    return found


def datetime_minute(ts: float) -> int:
    """The minute of the hour (Shanghai is a whole number of hours from UTC)."""
    return int(ts // 60) % 60


REQUIRED = [
    "abandoned < 5 s", "abandoned at 4.9 s", "abandoned at 5.0 s", "answered at 20.0 s", "exited fallback:max_hold",
    "abandoned while ringing", "unresolved at the end",
    "hold ended: resumed", "hold ended: hangup", "hold ended: transferred", "hold_ended after ended", "leg held twice",
    "ended by caller", "ended by agent", "ended by transfer", "transfer answered by someone else",
    "transfer to another queue", "transferred-in leg answered", "transferred-in leg not answered",
    "disposition resolved=True", "disposition resolved=False", "disposition changed",
    "survey: answered twice", "survey: off-scale", "survey: other question",
    "ring_no_answer", "busy", "unreachable", "ring-no-answer, then answered by another", "paused: ring-no-answer",
    "paused: break", "paused: lunch", "paused: meeting", "paused: busy", "paused mid-interval",
    "wrapup_done", "ACW 0 (no wrap-up)", "wrap-up ended early by paused", "wrap-up ended early by logged_out",
    "logged out and in again the same day", "agent state across midnight",
    "agent state open at the end", "answered in the next 30m", "answered in the next day",
    "IVR-only call", "no call_arrived", "CRM id from the IVR", "screen_pop", "withheld number, account found",
    "caller number with spaces", "contact: anonymous", "contact: crm", "contact: too recent",
    "contact: scored, repeated", "contact: scored, resolved",
    "same number again exactly 7 days later", "same number again 7 days + 0.1 s later",
]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_generated_data_has_every_edge(seed):
    found = edges(rows_of(seed))
    missing = [edge for edge in REQUIRED if not found[edge]]
    assert not missing, f"seed {seed}: no {missing}"
    assert 300 <= found["busy-day calls"] <= 600, found["busy-day calls"]


ALLOWED = {  # agent state changes the engine makes
    "logged_out": {"available"},
    "available": {"reserved", "paused", "logged_out"},
    "reserved": {"on_call", "available", "paused"},  # answered / the caller left / the offer failed
    "on_call": {"wrap_up", "available"},  # available: no wrap-up configured
    "wrap_up": {"available", "paused", "logged_out"},  # paused or logged out: wrap-up ended early
    "paused": {"available", "paused", "logged_out"},
}


@pytest.mark.parametrize("seed", SEEDS)
def test_the_generated_rows_are_consistent(seed):
    """The generator is a simulation, not a list of figures: check what the engine guarantees."""
    rows = list(rows_of(seed))
    assert [r["id"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(a["ts"] <= b["ts"] for a, b in pairwise(rows)) and rows[-1]["ts"] <= NOW
    state: dict[str, str] = {}
    talking: dict[str, str] = {}  # agent -> the call they are connected to
    leg_start: dict[str, float] = {}  # call -> queued time of its current leg
    offers: dict[str, str] = {}  # offer id -> agent
    answered_at: dict[tuple[str, str], float] = {}
    hold_started: dict[tuple[str, str], float] = {}
    ended_at: dict[tuple[str, str], float] = {}
    requeue: set[str] = set()
    for row in rows:
        kind, call, agent, data, ts = row["kind"], row["call_id"], row["agent_id"], row["data"], row["ts"]
        if kind == "agent_state":
            before = state.get(agent, "logged_out")
            assert data["state"] in ALLOWED[before], (row, before)
            assert (data["state"] == "paused") == (data["reason"] is not None), row
            state[agent] = data["state"]
        elif kind == "queued":
            assert call not in leg_start or call in requeue, row
            requeue.discard(call)
            leg_start[call] = ts
        elif kind == "offered":
            assert state[agent] == "available" and data["wait"] == round(ts - leg_start[call], 1), row
            offers[data["offer_id"]] = agent
        elif kind in ("answered", "ring_no_answer", "busy", "unreachable"):
            assert offers.pop(data["offer_id"]) == agent and state[agent] == "reserved", row
        if kind == "answered":
            assert agent not in talking, row  # one call at a time
            talking[agent] = call
            answered_at[call, agent] = ts
        if kind in ("answered", "abandoned", "exited"):
            assert data["wait"] == round(ts - leg_start[call], 1), row
        if kind == "hold_started":
            assert talking.get(agent) == call, row
            hold_started[call, agent] = ts
        if kind == "hold_ended":
            until = ended_at.get((call, agent), ts) if data["how"] == "hangup" else ts
            assert data["seconds"] == round(until - hold_started.pop((call, agent)), 1), row
        if kind == "transferred":
            requeue.add(call)
            assert data["to_queue"] != row["queue"] and talking.get(agent) == call, row
        if kind == "ended":
            assert talking.pop(agent) == call and state[agent] == "on_call", row
            assert data["talk"] == round(ts - answered_at[call, agent], 1), row
            assert (data["by"] == "transfer") == (call in requeue), row
            ended_at[call, agent] = ts
    assert not hold_started  # every hold ended


def test_a_fully_paused_half_hour_has_no_occupancy():
    # lunch 12:30-13:00 on the busy day: logged in and paused all the time
    (bucket,) = [b for b in report(rows_of(1), interval="30m").intervals if b.label == "2024-03-05T12:30:00+08:00"]
    (lunch,) = [a for a in bucket.agents if a.agent_id == "1001"]
    assert (lunch.logged_in_time, lunch.paused_time, lunch.occupancy) == (1800.0, 1800.0, None)


# ---------------------------------------------------------------------------- the report equals the oracle
@pytest.mark.parametrize("interval", [None, "day", "30m"])
@pytest.mark.parametrize("seed", SEEDS)
def test_report_equals_the_oracle(seed, interval):
    rows = rows_of(seed)
    assert_no_problems(compare(oracle(rows, interval=interval, now=NOW), report(rows, interval=interval),
                               f"seed={seed}"))


@pytest.mark.parametrize("seed", SEEDS)
def test_report_on_the_day_so_far_equals_the_oracle(seed):
    """The data cut during the busy day, `now` at the cut: calls ringing, talking and in wrap-up,
    agents in every state, contacts too recent for FCR."""
    rows = rows_of(seed)

    def during(kind: str, state: str | None, hours: tuple[int, int]) -> list[dict]:
        return [row for row in rows if row["kind"] == kind and row["data"].get("state") == state
                and MAIN_START + hours[0] * 3600 <= row["ts"] < MAIN_START + hours[1] * 3600]

    wrap_ups, queued = during("agent_state", "wrap_up", (9, 19)), during("queued", None, (10, 11))
    seen = Counter()
    for row in (wrap_ups[0], queued[len(queued) // 2], wrap_ups[-1]):
        now = row["ts"] + 0.05  # between two ticks: right after a wrap-up started, a caller queued
        cut = [r for r in rows if r["ts"] <= now]
        seen += edges(cut)
        for interval in (None, "30m"):
            got = kpi_report(cut, interval=interval, tz=TZ, now=now, fcr_days=FCR_DAYS)
            assert_no_problems(compare(oracle(cut, interval=interval, now=now), got,
                                       f"seed={seed} cut at {row['ts']}"))
    assert seen["wrap-up not over"] and seen["answered talking at the end"] and seen["unresolved at the end"]


def test_report_with_a_queue_filter_equals_the_oracle():
    rows = rows_of(2)
    for interval in (None, "30m"):
        got = report(rows, interval=interval, queue="support")
        assert {q.queue for b in got.intervals for q in b.queues} == {"support"}
        assert_no_problems(compare(oracle(rows, interval=interval, now=NOW, queue="support"), got,
                                   "seed=2 queue=support", total="support"))


def test_report_with_an_agent_filter_equals_the_oracle():
    rows = rows_of(3)
    for interval in (None, "30m"):
        got = report(rows, interval=interval, agent="1003")
        assert {a.agent_id for b in got.intervals for a in b.agents} == {"1003"}
        # queue figures are not split per agent: the oracle's, unfiltered
        assert_no_problems(compare(oracle(rows, interval=interval, now=NOW, agent="1003"), got,
                                   "seed=3 agent=1003"))


# ---------------------------------------------------------------------------- real time
@pytest.mark.parametrize("seed", SEEDS)
def test_realtime_fed_row_by_row_equals_the_recompute(seed):
    rows = list(rows_of(seed))
    main = [i for i, row in enumerate(rows) if MAIN_START <= row["ts"] < MAIN_END]
    transfer = next(i for i in main if rows[i]["kind"] == "transferred")
    requeued = next(i for i in range(transfer, len(rows))  # the caller queued again after it
                    if rows[i]["kind"] == "queued" and rows[i]["call_id"] == rows[transfer]["call_id"])
    points = {main[len(main) // 4], requeued, main[len(main) // 2], main[-1] - 3, len(rows) - 1}
    live = RealtimeKpis(tz=TZ)
    checked = callers_waiting = 0
    for i, row in enumerate(rows):
        live.apply(row)
        if i not in points:
            continue
        now = row["ts"] + 7
        snapshot = live.snapshot(now)
        assert snapshot == snapshot_from_rows(rows[: i + 1], now, tz=TZ), (seed, i, row)
        # the callers waiting now (ringing included), and the longest wait: now - the leg's queued time
        waiting = defaultdict(list)
        for leg in read_legs(rows[: i + 1]):
            if leg.outcome is None:
                waiting[leg.queue].append(now - leg.queued_at)
        for queue in snapshot.queues:
            assert queue.waiting == len(waiting[queue.queue]), (seed, i, queue)
            assert same(max(waiting[queue.queue], default=None), queue.longest_wait), (seed, i, queue)
        assert {q for q, waits in waiting.items() if waits} <= {q.queue for q in snapshot.queues}
        # and today's figures are the oracle's figures of the day, over what is known at `now`
        (day,) = [b for b in oracle(rows[: i + 1], interval="day", now=now) if b["start"] <= now < b["end"]]
        for queue in snapshot.queues:
            want = day["queues"].get(queue.queue)
            if want is None:
                assert is_empty(dataclasses.asdict(queue.today)), (seed, i, queue)
                continue
            got = dataclasses.asdict(queue.today)
            assert_no_problems(differences(f"seed={seed} row={i} realtime today queue={queue.queue}",
                                           {k: want[k] for k in got}, got))
        checked += 1
        callers_waiting += sum(q.waiting for q in snapshot.queues)
    assert checked == len(points) and callers_waiting


# ---------------------------------------------------------------------------- numbers as written
def test_report_equals_the_oracle_with_numbers_written_without_their_plus():
    # A number is compared as written (digits, and its "+" if it has one): "8613800000001" and
    # "+8613800000001" are two customers unless the CRM knows them (docs/kpi.md).
    rows = rows_of(1, plus_less_numbers=True)
    assert_no_problems(compare(oracle(rows, interval="day", now=NOW), report(rows, interval="day"),
                               "seed=1 plus-less numbers"))
