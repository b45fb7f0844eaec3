"""KPI definitions, real-time figures, queue_log export and `callcenter report`, on event rows
shaped exactly like the ones the ACD router and the engine write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from callcenter.acd.router import Event, Router
from callcenter.cli import main
from callcenter.events.queue_log import export_queue_log, queue_log_lines
from callcenter.kpi.definitions import (
    KpiError,
    interval_end,
    interval_start,
    kpi_report,
    reconstruct_calls,
)
from callcenter.kpi.realtime import RealtimeKpis, snapshot_from_rows

T0 = int(datetime(2024, 3, 1, 9, 0, tzinfo=UTC).timestamp())  # 17:00 in Shanghai


def state(agent: str, value: str, reason: str | None = None) -> tuple:
    return ("agent_state", None, None, agent, {"state": value, "reason": reason})


# (offset s, kind, call_id, queue, agent_id, data): the ACD's own sequence for this story.
# A answered at exactly 20 s; B missed by 1002 (ring-no-answer), answered at 31 s; C a short
# abandon (3 s); D abandoned within 20 s; E abandoned after 30 s; F sent to the fallback route;
# G still waiting at the end.
STORY: list[tuple] = [
    (0, *state("1001", "available")),
    (0, *state("1002", "available")),
    (9, "call_arrived", "A", None, None, {"caller": "555|0100", "channel": "PJSIP/c-1", "flow": "main", "dnid": "5000"}),
    (10, "queued", "A", "support", None, {"priority": 0}),
    (10, "offered", "A", "support", "1001", {"offer_id": "A/1", "attempt": 1}),
    (10, *state("1001", "reserved")),
    (20, "queued", "B", "support", None, {"priority": 0}),
    (20, "offered", "B", "support", "1002", {"offer_id": "B/1", "attempt": 1}),
    (20, *state("1002", "reserved")),
    (30, "answered", "A", "support", "1001", {"offer_id": "A/1", "wait": 20.0}),
    (30, *state("1001", "on_call")),
    (35, "ring_no_answer", "B", "support", "1002", {"offer_id": "B/1"}),
    (35, *state("1002", "paused", "ring-no-answer")),
    (40, "queued", "C", "support", None, {"priority": 0}),
    (43, "abandoned", "C", "support", None, {"wait": 3.0, "stage": "waiting"}),
    (45, "queued", "D", "support", None, {"priority": 0}),
    (50, *state("1002", "available")),
    (50, "offered", "B", "support", "1002", {"offer_id": "B/2", "attempt": 2}),
    (50, *state("1002", "reserved")),
    (51, "answered", "B", "support", "1002", {"offer_id": "B/2", "wait": 31.0}),
    (51, *state("1002", "on_call")),
    (60, "queued", "E", "support", None, {"priority": 0}),
    (60, "abandoned", "D", "support", None, {"wait": 15.0, "stage": "waiting"}),
    (70, "queued", "F", "support", None, {"priority": 0}),
    (90, "abandoned", "E", "support", None, {"wait": 30.0, "stage": "waiting"}),
    (100, "exited", "F", "support", None, {"reason": "fallback:max_hold", "wait": 30.0, "stage": "waiting"}),
    (111, "ended", "B", "support", "1002", {"talk": 60.0}),
    (111, *state("1002", "wrap_up")),
    (116, *state("1002", "paused", "break")),
    (130, "ended", "A", "support", "1001", {"talk": 100.0}),
    (130, *state("1001", "wrap_up")),
    (140, "wrapup_done", "A", None, "1001", {}),
    (140, *state("1001", "available")),
    (145, *state("1001", "logged_out")),
    (150, "queued", "G", "support", None, {"priority": 0}),
    (200, *state("1002", "logged_out")),
]


def rows_of(story: list[tuple], base: float = T0) -> list[dict]:
    return [{"id": i, "ts": base + off, "kind": kind, "call_id": call, "queue": queue, "agent_id": agent,
             "data": data}
            for i, (off, kind, call, queue, agent, data) in enumerate(story, start=1)]


ROWS = rows_of(STORY)


def whole(rows=ROWS, **kw):
    report = kpi_report(rows, now=T0 + 200, **kw)
    assert len(report.intervals) == 1
    return report.intervals[0]


# ---------------------------------------------------------------------------- call figures
def test_counts_and_short_abandons():
    k = whole().queues[0]
    assert (k.queue, k.queued, k.unresolved) == ("support", 7, 1)
    assert (k.offered, k.offered_raw) == (5, 6)  # the short abandon C is only in the raw count
    assert (k.answered, k.abandoned, k.abandoned_raw, k.short_abandoned, k.exited) == (2, 2, 3, 1, 1)


def test_service_level_variants():
    sl = whole().queues[0].service_level
    assert (sl.threshold, sl.answered_within, sl.abandoned_within) == (20.0, 1, 1)
    assert sl.of_offered == 1 / 5  # (a) A / {A, B, D, E, F}
    assert sl.of_answered == 1 / 2  # (b) A / {A, B}
    assert sl.abandons_met == 2 / 5  # (c) {A, D} / {A, B, D, E, F}


def test_wait_exactly_the_threshold_is_within():
    assert whole(sl_seconds=20).queues[0].service_level.answered_within == 1  # A waited 20.0 s
    assert whole(sl_seconds=19.5).queues[0].service_level.answered_within == 0
    assert whole(sl_seconds=31).queues[0].service_level.answered_within == 2


def test_short_abandon_threshold_moves_calls_between_counts():
    k = whole(short_abandon_seconds=0).queues[0]  # 0 turns the exclusion off
    assert (k.offered, k.abandoned, k.short_abandoned, k.service_level.of_offered) == (6, 3, 0, 1 / 6)
    k = whole(short_abandon_seconds=15.5).queues[0]  # D (15 s) becomes short too
    assert (k.offered, k.abandoned, k.short_abandoned, k.service_level.abandoned_within) == (4, 1, 2, 0)


def test_rates_waits_and_handling_times():
    k = whole().queues[0]
    assert (k.answer_rate, k.abandon_rate) == (2 / 5, 2 / 5)
    assert k.asa == 25.5  # (20 + 31) / 2
    assert k.longest_wait == 31.0  # B; the exited F (30 s) is not counted, the short C neither
    assert (k.avg_talk, k.avg_acw) == (80.0, 7.5)  # ACW: A 10 s (to wrapup_done), B 5 s (cut by pause)
    assert (k.aht, k.handled) == (87.5, 2)  # (100 + 10 + 60 + 5) / 2


def test_totals_span_queues_and_queue_filter():
    story = STORY + [(160, "queued", "H", "sales", None, {"priority": 0}),
                     (170, "abandoned", "H", "sales", None, {"wait": 10.0, "stage": "waiting"})]
    bucket = whole(rows_of(story))
    assert [k.queue for k in bucket.queues] == ["sales", "support"]
    assert (bucket.total.queue, bucket.total.offered, bucket.total.abandoned) == ("*", 6, 3)
    only = whole(rows_of(story), queue="sales")
    assert [k.queue for k in only.queues] == ["sales"] and only.total.offered == 1


def test_aht_waits_for_the_end_of_wrap_up():
    # Cut the story before A's wrap-up ends: A has talk but no ACW yet, so AHT has B only.
    cut = [r for r in ROWS if r["ts"] < T0 + 140]
    k = kpi_report(cut, now=T0 + 139).intervals[0].queues[0]
    assert (k.avg_talk, k.avg_acw, k.aht, k.handled) == (80.0, 5.0, 65.0, 1)


def test_no_wrap_up_configured_means_zero_acw():
    story = [(0, *state("1001", "available")),
             (1, "queued", "X", "q", None, {"priority": 0}),
             (1, "offered", "X", "q", "1001", {"offer_id": "X/1", "attempt": 1}),
             (1, *state("1001", "reserved")),
             (3, "answered", "X", "q", "1001", {"offer_id": "X/1", "wait": 2.0}),
             (3, *state("1001", "on_call")),
             (13, "ended", "X", "q", "1001", {"talk": 10.0}),
             (13, *state("1001", "available"))]
    k = kpi_report(rows_of(story)).intervals[0].queues[0]
    assert (k.avg_acw, k.aht) == (0.0, 10.0)


def test_requeue_after_engine_restart_keeps_first_time_and_first_outcome():
    story = [(0, "queued", "X", "q", None, {"priority": 0}),
             (5, "engine_stopped", None, None, None, {}),
             (6, "engine_started", None, None, None, {"queues": ["q"]}),
             (8, "queued", "X", "q", None, {"priority": 0}),
             (12, "abandoned", "X", "q", None, {"wait": 12.0, "stage": "waiting"}),
             (13, "abandoned", "X", "q", None, {"wait": 13.0, "stage": "waiting"})]
    (call,) = reconstruct_calls(rows_of(story))
    assert (call.queued_at, call.outcome, call.wait, call.live) == (T0, "abandoned", 12.0, False)


# ---------------------------------------------------------------------------- empty denominators
def test_no_calls_gives_no_data_not_zero_or_hundred():
    story = [(0, *state("1001", "available")), (0, *state("1001", "paused", "lunch")), (60, *state("1001", "logged_out"))]
    bucket = kpi_report(rows_of(story)).intervals[0]
    k = bucket.total
    assert (k.offered, k.answered) == (0, 0)
    sl = k.service_level
    assert (sl.of_offered, sl.of_answered, sl.abandons_met) == (None, None, None)
    assert (k.answer_rate, k.abandon_rate, k.asa, k.longest_wait, k.avg_talk, k.aht) == (None,) * 6
    (agent,) = bucket.agents
    assert (agent.logged_in_time, agent.paused_time, agent.occupancy) == (60.0, 60.0, None)


def test_only_unresolved_or_short_calls_give_no_data():
    story = [(0, "queued", "X", "q", None, {"priority": 0}), (1, "queued", "Y", "q", None, {"priority": 0}),
             (2, "abandoned", "Y", "q", None, {"wait": 1.0, "stage": "waiting"})]
    k = kpi_report(rows_of(story)).intervals[0].queues[0]
    assert (k.queued, k.unresolved, k.short_abandoned, k.offered) == (2, 1, 1, 0)
    assert (k.service_level.of_offered, k.abandon_rate) == (None, None)


def test_no_rows_no_intervals_and_bad_parameters():
    assert kpi_report([]).intervals == ()
    with pytest.raises(KpiError):
        kpi_report(ROWS, interval="7m")
    with pytest.raises(KpiError):
        kpi_report(ROWS, sl_seconds=-1)


# ---------------------------------------------------------------------------- agents
def test_agent_occupancy_and_handling():
    a1001, a1002 = whole().agents
    assert (a1001.agent_id, a1001.answered, a1001.aht, a1001.offers_not_taken) == ("1001", 1, 110.0, 0)
    # logged in 0..145; on_call 30..130 + wrap_up 130..140; reserved (ringing) is not handling
    assert (a1001.logged_in_time, a1001.paused_time, a1001.handling_time) == (145.0, 0.0, 110.0)
    assert a1001.occupancy == 110 / 145
    assert (a1002.agent_id, a1002.answered, a1002.aht, a1002.offers_not_taken) == ("1002", 1, 65.0, 1)
    # paused 35..50 (ring-no-answer) and 116..200 (break); on_call 51..111, wrap_up 111..116
    assert (a1002.logged_in_time, a1002.paused_time, a1002.handling_time) == (200.0, 99.0, 65.0)
    assert a1002.occupancy == 65 / 101


def test_agent_filter_and_open_state_counts_until_now():
    bucket = kpi_report(ROWS[:-1], agent="1002", now=T0 + 150).intervals[0]  # 1002 still paused
    (a,) = bucket.agents
    assert (a.agent_id, a.logged_in_time, a.paused_time) == ("1002", 150.0, 49.0)


def test_agent_time_is_clipped_to_intervals():
    report = kpi_report(ROWS, interval="15m", now=T0 + 200)  # T0 is on a quarter hour
    (bucket,) = report.intervals  # 0..200 s fits in the first quarter hour
    assert bucket.start == T0 and bucket.end == T0 + 900
    story = [(0, *state("1001", "available")), (1000, *state("1001", "logged_out"))]
    first, second = kpi_report(rows_of(story), interval="15m").intervals
    assert (first.agents[0].logged_in_time, second.agents[0].logged_in_time) == (900.0, 100.0)


# ---------------------------------------------------------------------------- intervals and time zones
SHANGHAI_EVENING = int(datetime(2024, 3, 1, 15, 59, 59, tzinfo=UTC).timestamp())  # 23:59:59 in Shanghai


def midnight_story() -> list[dict]:
    story = [(0, "queued", "X", "q", None, {"priority": 0}),
             (1, "queued", "Y", "q", None, {"priority": 0}),  # 00:00:00 the next day in Shanghai
             (5, "answered", "X", "q", "1001", {"offer_id": "X/1", "wait": 5.0}),
             (9, "answered", "Y", "q", "1002", {"offer_id": "Y/1", "wait": 8.0})]
    return rows_of(story, base=SHANGHAI_EVENING)


def test_day_boundary_in_shanghai():
    days = kpi_report(midnight_story(), interval="day", tz="Asia/Shanghai").intervals
    assert [(d.label, d.total.answered) for d in days] == [
        ("2024-03-01T00:00:00+08:00", 1), ("2024-03-02T00:00:00+08:00", 1)]
    assert days[0].end == days[1].start == SHANGHAI_EVENING + 1
    assert days[1].total.asa == 8.0  # Y belongs to the day it was queued in, not answered in
    (utc_day,) = kpi_report(midnight_story(), interval="day", tz="UTC").intervals
    assert (utc_day.label, utc_day.total.answered) == ("2024-03-01T00:00:00+00:00", 2)


def test_half_hours_in_shanghai():
    labels = [b.label for b in kpi_report(midnight_story(), interval="30m", tz="Asia/Shanghai").intervals]
    assert labels == ["2024-03-01T23:30:00+08:00", "2024-03-02T00:00:00+08:00"]


def test_interval_bounds_are_local_wall_clock():
    shanghai = ZoneInfo("Asia/Shanghai")
    ts = datetime(2024, 3, 1, 8, 44, 59, tzinfo=shanghai).timestamp()
    assert interval_start(ts, "15m", shanghai) == datetime(2024, 3, 1, 8, 30, tzinfo=shanghai).timestamp()
    assert interval_start(ts, "60m", shanghai) == datetime(2024, 3, 1, 8, 0, tzinfo=shanghai).timestamp()
    # A DST zone: the day of the spring change is 23 hours long.
    berlin = ZoneInfo("Europe/Berlin")
    day = interval_start(datetime(2024, 3, 31, 12, 0, tzinfo=berlin).timestamp(), "day", berlin)
    assert interval_end(day, "day", berlin) - day == 23 * 3600


def test_from_to_bound_calls_by_queued_time():
    inside = kpi_report(ROWS, start=T0 + 20, end=T0 + 60, now=T0 + 200).intervals[0].queues[0]
    assert inside.queued == 3  # B, C, D queued in [20, 60); E at 60 is out
    assert (inside.answered, inside.short_abandoned, inside.abandoned) == (1, 1, 1)


# ---------------------------------------------------------------------------- realtime
def test_realtime_snapshot_values():
    live = RealtimeKpis(tz="Asia/Shanghai")
    for row in ROWS:
        live.apply(row)
    snap = live.snapshot(T0 + 210)
    (support,) = snap.queues
    assert snap.day == "2024-03-01"
    assert (support.queue, support.waiting, support.longest_wait) == ("support", 1, 60.0)  # G since 150
    t = support.today
    assert (t.offered, t.answered, t.abandoned, t.short_abandoned, t.exited) == (5, 2, 2, 1, 1)
    assert (t.service_level.of_offered, t.asa) == (1 / 5, 25.5)
    assert snap.agents_by_state == {"logged_out": ("1001", "1002")}


def test_realtime_equals_recompute_after_every_event():
    restart = [(155, "engine_stopped", None, None, None, {}),
               (156, "engine_started", None, None, None, {"queues": ["support"]}),
               (158, "queued", "G", "support", None, {"priority": 0}),
               (170, "answered", "G", "support", "1003", {"offer_id": "G/1", "wait": 20.0}),
               # a call queued just before midnight UTC, resolved after it
               (53_000, "queued", "N", "support", None, {"priority": 0}),
               (54_000, "abandoned", "N", "support", None, {"wait": 1000.0, "stage": "waiting"})]
    rows = rows_of(sorted(STORY + restart, key=lambda r: r[0]))
    for tz in ("UTC", "Asia/Shanghai"):
        live = RealtimeKpis(tz=tz, sl_seconds=20, short_abandon_seconds=5)
        for i, row in enumerate(rows):
            live.apply(row)
            now = row["ts"] + 7
            assert live.snapshot(now) == snapshot_from_rows(rows[: i + 1], now, tz=tz), (tz, i, row)


def router_rows() -> list[dict]:
    """A busier sequence straight from the ACD router (two queues, pauses, re-offers)."""
    router = Router(["sales", "support"], ring_timeout=15, wrapup_seconds=5)
    steps = [
        (0, lambda t: router.login("1001", ["sales", "support"], t)),
        (0, lambda t: router.login("1002", ["support"], t)),
        (1, lambda t: router.enqueue("c1", "support", t)),
        (2, lambda t: router.enqueue("c2", "sales", t, priority=1)),
        (3, lambda t: router.enqueue("c3", "support", t)),
        (4, lambda t: router.offer_failed("c1/1", "ring-no-answer", t)),
        (6, lambda t: router.offer_answered("c3/1", t)),
        (8, lambda t: router.enqueue("c4", "support", t)),
        (9, lambda t: router.abandon("c1", t)),
        (12, lambda t: router.unpause("1001", t)),
        (13, lambda t: router.offer_answered("c2/1", t)),
        (30, lambda t: router.call_ended("c2", t)),
        (31, lambda t: router.call_ended("c3", t)),
        (35, lambda t: router.wrapup_done("1001", t)),
        (36, lambda t: router.wrapup_done("1002", t)),
        (37, lambda t: router.offer_failed("c4/1", "busy", t)),
        (40, lambda t: router.exit("c4", "fallback:max_hold", t)),
        (41, lambda t: router.pause("1002", "lunch", t)),
        (50, lambda t: router.logout("1001", t)),
    ]
    rows: list[dict] = []
    for offset, step in steps:
        for effect in step(T0 + offset):
            if isinstance(effect, Event):
                rows.append({"id": len(rows) + 1, "ts": T0 + offset, "kind": effect.kind, "call_id": effect.call_id,
                             "queue": effect.queue, "agent_id": effect.agent_id, "data": effect.data})
    return rows


def test_realtime_equals_recompute_on_router_events():
    rows = router_rows()
    kinds = {r["kind"] for r in rows}
    assert {"offered", "answered", "abandoned", "exited", "ring_no_answer", "busy", "ended", "wrapup_done"} <= kinds
    total = kpi_report(rows).intervals[0].total
    # c1 abandoned after 8 s, c2 answered after 11 s, c3 after 3 s, c4 sent to the fallback route
    assert (total.offered, total.answered, total.abandoned, total.exited, total.asa) == (4, 2, 1, 1, 7.0)
    live = RealtimeKpis()
    for i, row in enumerate(rows):
        live.apply(row)
        assert live.snapshot(row["ts"]) == snapshot_from_rows(rows[: i + 1], row["ts"])


# ---------------------------------------------------------------------------- queue_log
def test_queue_log_lines_exactly():
    T = T0
    assert queue_log_lines(ROWS) == [
        f"{T}|NONE|NONE|PJSIP/agent1001|ADDMEMBER|",
        f"{T}|NONE|NONE|PJSIP/agent1002|ADDMEMBER|",
        f"{T + 10}|A|support|NONE|ENTERQUEUE||5550100",  # the "|" in the caller number is dropped
        f"{T + 20}|B|support|NONE|ENTERQUEUE||",
        f"{T + 30}|A|support|PJSIP/agent1001|CONNECT|20|A-o1|20",
        f"{T + 35}|B|support|PJSIP/agent1002|RINGNOANSWER|15000",
        f"{T + 35}|NONE|NONE|PJSIP/agent1002|PAUSE|ring-no-answer",
        f"{T + 40}|C|support|NONE|ENTERQUEUE||",
        f"{T + 43}|C|support|NONE|ABANDON|2|2|3",
        f"{T + 45}|D|support|NONE|ENTERQUEUE||",
        f"{T + 50}|NONE|NONE|PJSIP/agent1002|UNPAUSE|",
        f"{T + 51}|B|support|PJSIP/agent1002|CONNECT|31|B-o2|1",
        f"{T + 60}|E|support|NONE|ENTERQUEUE||",
        f"{T + 60}|D|support|NONE|ABANDON|1|2|15",
        f"{T + 70}|F|support|NONE|ENTERQUEUE||",
        f"{T + 90}|E|support|NONE|ABANDON|1|2|30",
        f"{T + 100}|F|support|NONE|EXITWITHTIMEOUT|1|2|30",
        f"{T + 111}|B|support|PJSIP/agent1002|COMPLETECALLER|31|60|2",
        f"{T + 116}|NONE|NONE|PJSIP/agent1002|PAUSE|break",
        f"{T + 130}|A|support|PJSIP/agent1001|COMPLETECALLER|20|100|1",
        f"{T + 145}|NONE|NONE|PJSIP/agent1001|REMOVEMEMBER|",
        f"{T + 150}|G|support|NONE|ENTERQUEUE||",
        f"{T + 200}|NONE|NONE|PJSIP/agent1002|REMOVEMEMBER|",
    ]


def test_queue_log_whole_seconds_priorities_and_member_queues():
    story = [(0, *state("1001", "available")),
             (0.6, "queued", "X", "q", None, {"priority": 0}),
             (1.0, "queued", "V", "q", None, {"priority": 5}),  # jumps the line: position 1
             (5.2, *state("1001", "paused", "a|b\nc")),
             (20.4, "abandoned", "X", "q", None, {"wait": 19.8, "stage": "waiting"})]
    lines = queue_log_lines(rows_of(story), agent_name=lambda a: f"Agent/{a}",
                            agent_queues={"1001": ["q", "r"]})
    assert lines == [
        f"{T0}|NONE|q|Agent/1001|ADDMEMBER|",
        f"{T0}|NONE|r|Agent/1001|ADDMEMBER|",
        f"{T0}|X|q|NONE|ENTERQUEUE||",
        f"{T0 + 1}|V|q|NONE|ENTERQUEUE||",
        f"{T0 + 5}|NONE|q|Agent/1001|PAUSE|abc",
        f"{T0 + 5}|NONE|r|Agent/1001|PAUSE|abc",
        # position 2 (V ahead), original position 1; waited 0.6 -> 20.4: clock seconds 0 -> 20
        f"{T0 + 20}|X|q|NONE|ABANDON|2|1|20",
    ]


def test_queue_log_engine_restart_removes_members_once():
    story = [(0, *state("1001", "available")), (5, "engine_stopped", None, None, None, {}),
             (6, "engine_started", None, None, None, {}), (7, *state("1001", "available"))]
    assert queue_log_lines(rows_of(story)) == [
        f"{T0}|NONE|NONE|PJSIP/agent1001|ADDMEMBER|",
        f"{T0 + 5}|NONE|NONE|PJSIP/agent1001|REMOVEMEMBER|",
        f"{T0 + 7}|NONE|NONE|PJSIP/agent1001|ADDMEMBER|",
    ]


def test_export_queue_log_writes_lines(tmp_path):
    path = tmp_path / "queue_log"
    assert export_queue_log(ROWS, path) == 23
    text = path.read_text()
    assert text.endswith("REMOVEMEMBER|\n") and text.splitlines() == queue_log_lines(ROWS)


# ---------------------------------------------------------------------------- CLI on a real database
@pytest.fixture
def db_config(events_config):
    return events_config(ROWS)


def test_cli_report_kpis_json(db_config):
    result = CliRunner().invoke(main, ["--config", str(db_config), "report", "kpis", "--format", "json",
                                       "--interval", "day", "--tz", "Asia/Shanghai", "--sl", "80/20"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    (day,) = out["intervals"]
    assert day["label"] == "2024-03-01T00:00:00+08:00"
    (support,) = day["queues"]
    assert (support["offered"], support["answered"], support["short_abandoned"], support["unresolved"]) == (5, 2, 1, 1)
    assert support["service_level"] == {"threshold": 20.0, "answered_within": 1, "abandoned_within": 1,
                                        "of_offered": 0.2, "of_answered": 0.5, "abandons_met": 0.4}
    assert (support["asa"], support["aht"]) == (25.5, 87.5)
    assert [a["agent_id"] for a in day["agents"]] == ["1001", "1002"]
    assert out["sl_target"] == 0.8


def test_cli_report_kpis_text_filters_and_dates(db_config):
    result = CliRunner().invoke(main, ["--config", str(db_config), "report", "kpis", "--queue", "support",
                                       "--agent", "1001", "--from", "2024-03-01T17:00:20", "--to", "2024-03-01T17:01",
                                       "--tz", "Asia/Shanghai", "--short-abandon", "0"])
    assert result.exit_code == 0, result.output
    # B, C, D queued in [17:00:20, 17:01) local; with no short-abandon exclusion all three are offered
    assert "queue support: offered 3 (raw 3), answered 1, abandoned 2 (+0 short)" in result.output
    assert "agent 1001:" in result.output and "agent 1002" not in result.output


def test_cli_report_kpis_rejects_bad_zone(db_config):
    result = CliRunner().invoke(main, ["--config", str(db_config), "report", "kpis", "--tz", "Mars/Olympus"])
    assert result.exit_code == 2 and "unknown time zone" in result.output


def test_cli_queue_log(db_config, tmp_path):
    out = tmp_path / "exported"
    result = CliRunner().invoke(main, ["--config", str(db_config), "report", "queue-log", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == queue_log_lines(ROWS)
    stdout = CliRunner().invoke(main, ["--config", str(db_config), "report", "queue-log",
                                       "--agent-name", "Agent/{agent_id}"])
    assert stdout.output.splitlines()[0] == f"{T0}|NONE|NONE|Agent/1001|ADDMEMBER|"
