"""KPI edges added with holds, transfers, first-contact resolution and satisfaction: hand-built
event sequences shaped like the engine's, each figure checked by hand."""

from __future__ import annotations

import pytest

from callcenter.events.queue_log import queue_log_lines
from callcenter.kpi.definitions import customer_of, kpi_report, reconstruct_calls
from callcenter.kpi.realtime import RealtimeKpis, snapshot_from_rows
from tests.unit.test_kpis import T0, rows_of, state

DAY = 86400.0


def answered_call(call: str, t: float, *, queue="support", agent="1001", wait=10.0, talk=60.0,
                  caller="+8613800000001", by="caller", acw=5.0) -> list[tuple]:
    """A call from arrival to the end of its wrap-up (offsets from T0)."""
    q = t + 1
    return [
        (t, "call_arrived", call, None, None, {"caller": caller, "flow": "main"}),
        (q, "queued", call, queue, None, {"priority": 0}),
        (q + wait, "answered", call, queue, agent, {"offer_id": f"{call}/1", "wait": wait}),
        (q + wait, *state(agent, "on_call")),
        (q + wait + talk, "ended", call, queue, agent, {"talk": talk, "by": by}),
        (q + wait + talk, *state(agent, "wrap_up")),
        (q + wait + talk + acw, *state(agent, "available")),
    ]


def story_rows(*parts: list[tuple]) -> list[dict]:
    return rows_of(sorted((r for part in parts for r in part), key=lambda r: r[0]))


# ---------------------------------------------------------------------------- short abandons
@pytest.mark.parametrize(("wait", "short"), [(4.9, True), (5.0, False)])
def test_abandon_at_4_9_s_is_short_and_at_5_s_is_not(wait, short):
    rows = rows_of([(0, "queued", "A", "support", None, {}),
                    (wait, "abandoned", "A", "support", None, {"wait": wait, "stage": "waiting"})])
    total = kpi_report(rows).intervals[0].total
    assert (total.short_abandoned, total.abandoned, total.offered, total.offered_raw) == (
        (1, 0, 0, 1) if short else (0, 1, 1, 1))
    assert total.service_level.of_offered == (None if short else 0.0)


# ---------------------------------------------------------------------------- hold
def test_hold_is_in_aht_once_and_out_of_talk():
    rows = story_rows(answered_call("A", 0, talk=100.0, acw=5.0), [
        (30, "hold_started", "A", "support", "1001", {}),
        (70, "hold_ended", "A", None, "1001", {"seconds": 40.0, "how": "resumed"}),
    ], answered_call("B", 200, talk=50.0, acw=10.0))
    (a, b) = reconstruct_calls(rows)
    assert (a.talk, a.hold, a.acw, a.handle_time) == (60.0, 40.0, 5.0, 105.0)
    assert (b.talk, b.hold, b.handle_time) == (50.0, 0.0, 60.0)
    total = kpi_report(rows).intervals[0].total
    assert (total.avg_talk, total.avg_hold, total.held, total.aht) == (55.0, 20.0, 1, 82.5)
    (agent,) = kpi_report(rows).intervals[0].agents
    assert (agent.avg_hold, agent.aht) == (20.0, 82.5)


def test_a_hold_ended_by_the_hangup_after_the_end_still_counts():
    rows = story_rows(answered_call("A", 0, talk=100.0, by="agent"), [
        (50, "hold_started", "A", "support", "1001", {}),
        (111.5, "hold_ended", "A", None, "1001", {"seconds": 61.0, "how": "hangup"}),
    ])
    (a,) = reconstruct_calls(rows)
    assert (a.talk, a.hold, a.ended_by, a.handle_time) == (39.0, 61.0, "agent", 105.0)


# ---------------------------------------------------------------------------- transfers
def transfer_story() -> list[dict]:
    """A: answered by 1001 in sales after 10 s, talk 30 s, transferred to support; queued there
    again, answered by 1002 after 8 s, talk 40 s."""
    return story_rows([
        (0, "call_arrived", "A", None, None, {"caller": "+8613800000001"}),
        (1, "queued", "A", "sales", None, {"priority": 0}),
        (11, "answered", "A", "sales", "1001", {"offer_id": "A/1", "wait": 10.0}),
        (11, *state("1001", "on_call")),
        (41, "transferred", "A", "sales", "1001", {"to_queue": "support", "to_agent": None}),
        (41, "ended", "A", "sales", "1001", {"talk": 30.0, "by": "transfer"}),
        (41, *state("1001", "wrap_up")),
        (42, "queued", "A", "support", None, {"priority": 0}),
        (44, *state("1001", "available")),
        (50, "answered", "A", "support", "1002", {"offer_id": "A/2", "wait": 8.0}),
        (50, *state("1002", "on_call")),
        (90, "ended", "A", "support", "1002", {"talk": 40.0, "by": "caller"}),
        (90, *state("1002", "available")),
        (95, "disposition", "A", None, "1002", {"disposition": "solved", "resolved": True}),
    ])


def test_a_transferred_call_is_two_legs_each_in_its_own_queue():
    rows = transfer_story()
    first, second = reconstruct_calls(rows)
    assert (first.queue, first.leg, first.agent_id, first.transferred_out, first.ended_by, first.talk, first.acw) == (
        "sales", 0, "1001", True, "transfer", 30.0, 3.0)
    assert (second.queue, second.leg, second.transferred_in, second.wait, second.agent_id, second.talk) == (
        "support", 1, True, 8.0, "1002", 40.0)
    interval = kpi_report(rows, now=T0 + 100).intervals[0]
    sales, support = interval.queues
    assert (sales.offered, sales.answered, sales.transferred_out, sales.transferred_in, sales.aht) == (1, 1, 1, 0, 33.0)
    assert (support.offered, support.answered, support.transferred_in, support.asa, support.aht) == (1, 1, 1, 8.0, 40.0)
    assert (interval.total.offered, interval.total.transferred_in) == (2, 1)
    # one contact: the call, in its first leg's queue, for the agent of its last leg
    assert (sales.fcr.reported, sales.fcr.reported_resolved, support.fcr.reported) == (1, 1, 0)
    by_agent = {a.agent_id: a for a in interval.agents}
    assert (by_agent["1001"].transferred_out, by_agent["1001"].fcr.reported) == (1, 0)
    assert (by_agent["1002"].answered, by_agent["1002"].fcr.reported_rate) == (1, 1.0)


def test_a_transfer_in_the_queue_log_is_transfer_then_a_new_entry():
    lines = [line for line in queue_log_lines(transfer_story()) if "MEMBER" not in line]
    t = T0
    assert lines == [
        f"{t + 1}|A|sales|NONE|ENTERQUEUE||+8613800000001",
        f"{t + 11}|A|sales|PJSIP/agent1001|CONNECT|10|A-o1|0",
        f"{t + 41}|A|sales|PJSIP/agent1001|TRANSFER|support|cc-hold|10|30|1",
        f"{t + 42}|A|support|NONE|ENTERQUEUE||+8613800000001",
        f"{t + 50}|A|support|PJSIP/agent1002|CONNECT|8|A-o2|0",
        f"{t + 90}|A|support|PJSIP/agent1002|COMPLETECALLER|8|40|1",
    ]


def test_who_hung_up_picks_completeagent_or_completecaller():
    rows = story_rows(answered_call("A", 0, by="agent"), answered_call("B", 100, agent="1002", by="caller"),
                      answered_call("C", 200, by=None))
    completes = [line.split("|")[4] for line in queue_log_lines(rows) if "|COMPLETE" in line]
    assert completes == ["COMPLETEAGENT", "COMPLETECALLER", "COMPLETECALLER"]


def test_realtime_follows_a_transferred_call_into_its_new_queue():
    rows = transfer_story()
    live = RealtimeKpis()
    for i, row in enumerate(rows):
        live.apply(row)
        now = row["ts"] + 1
        assert live.snapshot(now) == snapshot_from_rows(rows[: i + 1], now)
    waiting = {q.queue: q.waiting for q in RealtimeKpis().snapshot(T0).queues}
    assert waiting == {}
    halfway = RealtimeKpis()
    for row in rows:
        if row["ts"] > T0 + 45:
            break
        halfway.apply(row)
    queues = {q.queue: (q.waiting, q.today.answered) for q in halfway.snapshot(T0 + 45).queues}
    assert queues == {"sales": (0, 1), "support": (1, 0)}


# ---------------------------------------------------------------------------- FCR
def test_customer_identity_crm_id_else_number_else_anonymous():
    assert customer_of("+86 138-0000-0001", None) == "tel:+8613800000001"
    assert customer_of("+8613800000001", "42") == "crm:42"
    for withheld in ("", "  ", "anonymous", "Restricted", "unknown", "+"):
        assert customer_of(withheld, None) is None


def fcr_of(rows, *, now, fcr_days=7.0, **kw):
    return kpi_report(rows, now=now, fcr_days=fcr_days, **kw).intervals[0].total.fcr


def test_fcr_repeat_within_the_window_including_its_last_second():
    # A on day 0 from X, repeated by B exactly 7 days later (window end included): not resolved.
    # C on day 0 from Y, whose next call D comes 7 days + 1 s later: resolved.
    rows = story_rows(answered_call("A", 0, caller="X1"), answered_call("B", 7 * DAY, caller="X1"),
                      answered_call("C", 100, caller="Y2", agent="1002"),
                      answered_call("D", 100 + 7 * DAY + 1, caller="Y2", agent="1002"))
    fcr = fcr_of(rows, now=T0 + 30 * DAY, start=T0, end=T0 + DAY)
    assert (fcr.scored, fcr.resolved, fcr.rate) == (2, 1, 0.5)


def test_fcr_scores_only_contacts_older_than_the_window():
    rows = story_rows(answered_call("A", 0, caller="X1"), answered_call("B", 3 * DAY, caller="Z3"))
    fcr = fcr_of(rows, now=T0 + 7 * DAY + 100)  # A is 7 days old, B only 4
    assert (fcr.scored, fcr.resolved, fcr.too_recent) == (1, 1, 1)
    assert fcr_of(rows, now=T0 + 100).rate is None  # nothing old enough: no data, not 100 %


def test_fcr_matches_on_crm_id_and_leaves_anonymous_callers_out():
    # A and B come from different numbers but the CRM knows both as customer 42 (IVR lookup,
    # screen pop): B repeats A. C is anonymous: not scored. An IVR-only call (E, never queued)
    # from C2's number still counts as its repeat contact.
    rows = story_rows(
        answered_call("A", 0, caller="111"), [(0.5, "ivr_lookup", "A", None, None,
                                               {"status": "found", "customer_id": "42"})],
        answered_call("B", DAY, caller="222"), [(DAY + 0.5, "screen_pop", "B", None, "1001",
                                                 {"crm": "found", "customer_id": "42"})],
        answered_call("C", 200, caller="anonymous"),
        answered_call("C2", 300, caller="333"),
        [(2 * DAY, "call_arrived", "E", None, None, {"caller": "333"})],
    )
    fcr = fcr_of(rows, now=T0 + 20 * DAY, start=T0, end=T0 + 1000)
    assert (fcr.scored, fcr.resolved, fcr.anonymous) == (2, 0, 1)


def test_unanswered_contacts_are_not_scored_but_count_as_repeats():
    rows = story_rows(
        answered_call("A", 0, caller="X1"),
        [(DAY, "call_arrived", "B", None, None, {"caller": "X1"}),
         (DAY + 1, "queued", "B", "support", None, {}),
         (DAY + 31, "abandoned", "B", "support", None, {"wait": 30.0, "stage": "waiting"})])
    fcr = fcr_of(rows, now=T0 + 30 * DAY)
    assert (fcr.scored, fcr.resolved) == (1, 0)


def test_agent_reported_fcr_takes_the_calls_last_disposition():
    rows = story_rows(answered_call("A", 0), answered_call("B", 100), [
        (80, "disposition", "A", None, "1001", {"disposition": "sale", "resolved": False}),
        (90, "disposition", "A", None, "1001", {"disposition": "sale", "resolved": True}),  # saved again
        (190, "disposition", "B", None, "1001", {"disposition": "callback", "resolved": False}),
    ])
    fcr = fcr_of(rows, now=T0 + 200)
    assert (fcr.reported, fcr.reported_resolved, fcr.reported_rate) == (2, 1, 0.5)


# ---------------------------------------------------------------------------- CSAT
def test_csat_top_two_box_with_n_and_bad_answers_ignored():
    surveys = [(80, "survey_answered", "A", "support", "1001", {"question": "csat", "score": 5}),
               (81, "survey_answered", "A", "support", "1001", {"question": "csat", "score": 1}),  # 2nd: ignored
               (180, "survey_answered", "B", "support", "1001", {"question": "csat", "score": 3}),
               (181, "survey_answered", "B", "support", "1001", {"question": "resolved", "score": 1}),
               (280, "survey_answered", "C", "support", "1001", {"question": "csat", "score": 4}),
               (380, "survey_answered", "D", "support", "1001", {"question": "csat", "score": 9})]  # off scale
    rows = story_rows(*(answered_call(c, i * 100) for i, c in enumerate("ABCD")), surveys)
    csat = kpi_report(rows).intervals[0].total.csat
    assert (csat.responses, csat.satisfied, csat.top2_box, csat.mean_score) == (3, 2, 2 / 3, 4.0)
    (agent,) = kpi_report(rows).intervals[0].agents
    assert agent.csat == csat
    assert kpi_report(story_rows(answered_call("A", 0))).intervals[0].total.csat.top2_box is None


# ---------------------------------------------------------------------------- intervals
def test_a_call_spanning_intervals_belongs_to_the_one_it_was_queued_in():
    # queued 14:59:50, answered 15:00:10, ended 15:05; agent paused 15:10-15:20 in the next interval
    base = 14 * 3600 + 59 * 60 + 49
    rows = story_rows([(0, *state("1001", "available"))],
                      [(base + off, *rest) for off, *rest in answered_call("A", 0, wait=20.0, talk=280.0, acw=10.0)],
                      [(15 * 3600 + 600, *state("1001", "paused", "break")),
                       (15 * 3600 + 1200, *state("1001", "available"))])
    report = kpi_report(rows, interval="30m", now=T0 + 15 * 3600 + 1800, start=T0 + 14 * 3600 + 30 * 60,
                        end=T0 + 15 * 3600 + 30 * 60)
    first, second = report.intervals
    assert (first.total.offered, first.total.answered, first.total.aht) == (1, 1, 290.0)
    assert (second.total.offered, second.total.queued) == (0, 0)
    (a1,), (a2,) = first.agents, second.agents
    assert (a1.answered, a1.handling_time) == (1, 0.0)  # still waiting in the queue until 15:00:10
    assert (a1.logged_in_time, a2.logged_in_time) == (1800.0, 1800.0)
    assert (a2.answered, a2.paused_time, a2.handling_time) == (0, 600.0, 290.0)
    assert a2.occupancy == pytest.approx(290.0 / (1800.0 - 600.0))
