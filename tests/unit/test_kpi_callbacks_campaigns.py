"""KPIs of callbacks, post-call surveys and outbound campaigns: hand-built event sequences shaped
like the engine's (callcenter/callback/service.py, callcenter/campaign/dialer.py), each figure
worked out by hand (docs/kpi.md, "Callbacks" and "Campaigns")."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict

import pytest
from click.testing import CliRunner

from callcenter.cli import main
from callcenter.kpi.definitions import kpi_report, reconstruct_calls
from callcenter.kpi.export import report_rows
from callcenter.kpi.realtime import RealtimeKpis, snapshot_from_rows
from tests.unit.test_kpi_contacts import answered_call, story_rows, transfer_story
from tests.unit.test_kpis import T0, state


def whole(rows, **kw):
    (interval,) = kpi_report(rows, **kw).intervals
    return interval


def by_name(interval):
    return {q.queue: q for q in interval.queues}, {a.agent_id: a for a in interval.agents}


def assert_realtime_equals_recompute(rows):
    live = RealtimeKpis()
    for i, row in enumerate(rows):
        live.apply(row)
        now = row["ts"] + 1
        assert live.snapshot(now) == snapshot_from_rows(rows[: i + 1], now), (i, row)


def callback_data(attempt: int, outcome: str) -> dict:
    return {"callback_id": 12, "attempt": attempt, "outcome": outcome}


# ---------------------------------------------------------------------------- hold callback
def hold_callback_story() -> list[dict]:
    """A: an ordinary call, answered by 1002 after 10 s (talk 60, ACW 5).
    H: queued at 100, offered a callback at 160, accepts it at 170 and hangs up (no abandon).
    Its callback rings 1001, who does not answer (an offer not taken); 1002 answers, the
    customer is busy (attempt 1). Queued again at 500 for attempt 2: 1002 answers, the customer
    picks up at 520 (talk 100, ACW 10): completed."""
    return story_rows(
        [(0, *state("1001", "available")), (0, *state("1002", "available"))],
        answered_call("A", 9, agent="1002", wait=10.0, talk=60.0, acw=5.0),
        [
            (99, "call_arrived", "H", None, None, {"caller": "+8613900000002"}),
            (100, "queued", "H", "support", None, {"priority": 0}),
            (160, "callback_offered", "H", "support", None, {"estimated_wait": 300}),
            (170, "callback_accepted", "H", "support", None, {"callback_id": 12, "source": "hold"}),
            (180, "offered", "H", "support", "1001", {"offer_id": "H/1", "attempt": 1}),
            (180, *state("1001", "reserved")),
            (195, "ring_no_answer", "H", "support", "1001", {"offer_id": "H/1"}),
            (195, *state("1001", "paused", "ring-no-answer")),
            (200, "offered", "H", "support", "1002", {"offer_id": "H/2", "attempt": 2}),
            (200, *state("1002", "reserved")),
            (205, *state("1002", "on_call")),
            (215, "dial_out_failed", "H", "support", "1002", {"offer_id": "H/2", "outcome": "busy", "wait": 115}),
            (215, *state("1002", "available")),
            (215, "callback_attempt", "H", "support", "1002", callback_data(1, "busy")),
            (250, *state("1001", "available")),
            (500, "queued", "H", "support", None, {"priority": 0, "dial_out": "callback", "enqueued_at": T0 + 100}),
            (505, "offered", "H", "support", "1002", {"offer_id": "H/3", "attempt": 3}),
            (505, *state("1002", "reserved")),
            (510, *state("1002", "on_call")),
            (520, "answered", "H", "support", "1002", {"offer_id": "H/3", "wait": 420.0}),
            (520, "callback_attempt", "H", "support", "1002", callback_data(2, "answered")),
            (520, "callback_completed", "H", "support", "1002", {"callback_id": 12, "attempts": 2}),
            (620, "ended", "H", "support", "1002", {"talk": 100.0, "by": "caller"}),
            (620, *state("1002", "wrap_up")),
            (630, *state("1002", "available")),
        ],
    )


def test_an_accepted_callback_is_neither_answered_nor_abandoned_and_its_callback_leg_is_handled():
    rows = hold_callback_story()
    interval = whole(rows, now=T0 + 700)
    (support,), agents = interval.queues, by_name(interval)[1]
    # inbound: A and H's wait in the hold loop; H left with a callback, out of offered and SL
    assert (support.queued, support.unresolved, support.offered, support.offered_raw) == (2, 0, 1, 1)
    assert (support.answered, support.abandoned, support.abandoned_raw, support.exited) == (1, 0, 0, 0)
    assert (support.service_level.of_offered, support.abandon_rate, support.asa, support.longest_wait) == (
        1.0, 0.0, 10.0, 10.0)
    cb = support.callbacks
    assert (cb.offered, cb.accepted, cb.requested, cb.attempts) == (1, 1, 0, 2)
    assert (cb.completed, cb.failed, cb.expired, cb.cancelled, cb.pending) == (1, 0, 0, 0, 0)
    assert (cb.completion_rate, cb.avg_delay) == (1.0, 350.0)  # accepted at 170, customer answered at 520
    # handling: A (60 + 5) and the callback leg (100 + 10), in the queue's AHT and 1002's
    assert (support.callback_answered, support.handled, support.aht) == (1, 2, 87.5)
    assert interval.total.callbacks == cb and interval.total.aht == 87.5
    assert (agents["1002"].answered, agents["1002"].callback_answered, agents["1002"].handled,
            agents["1002"].aht) == (1, 1, 2, 87.5)
    assert (agents["1001"].answered, agents["1001"].offers_not_taken, agents["1001"].handled) == (0, 1, 0)
    # the contact is H, served by the agent of its callback leg
    assert (support.fcr.too_recent, agents["1002"].fcr.too_recent) == (2, 2)


def test_the_hold_callback_is_two_legs_of_one_call():
    inbound, callback = [c for c in reconstruct_calls(hold_callback_story()) if c.call_id == "H"]
    assert (inbound.direction, inbound.outcome, inbound.wait, inbound.callback_offered, inbound.live) == (
        "inbound", "callback", 70.0, True, False)
    assert (callback.direction, callback.queued_at, callback.outcome, callback.agent_id) == (
        "callback", T0 + 170, "answered", "1002")
    assert (callback.talk, callback.acw, callback.handle_time) == (100.0, 10.0, 110.0)


def test_realtime_neither_abandons_an_accepted_callback_nor_answers_its_callback_leg():
    rows = hold_callback_story()
    assert_realtime_equals_recompute(rows)
    live = RealtimeKpis()
    for row in rows:
        if row["ts"] > T0 + 165:
            break
        live.apply(row)
    assert [(q.queue, q.waiting) for q in live.snapshot(T0 + 165).queues] == [("support", 1)]  # H waits
    for row in rows:
        if row["ts"] > T0 + 165:
            live.apply(row)
    (support,) = live.snapshot(T0 + 700).queues
    t = support.today
    assert (support.waiting, t.offered, t.answered, t.abandoned, t.short_abandoned) == (0, 1, 1, 0, 0)
    assert (t.service_level.of_offered, t.asa) == (1.0, 10.0)
    # queued again for its second attempt, the callback is no caller waiting
    partial = RealtimeKpis()
    for row in rows:
        if row["ts"] <= T0 + 502:
            partial.apply(row)
    assert [(q.queue, q.waiting) for q in partial.snapshot(T0 + 502).queues] == [("support", 0)]


def test_a_cancelled_callback_is_not_a_failure():
    rows = story_rows(
        [(r["ts"] - T0, r["kind"], r["call_id"], r["queue"], r["agent_id"], r["data"]) for r in hold_callback_story()],
        [(50, "callback_requested", "cb-8", "support", None, {"callback_id": 8, "source": "web"}),
         (60, "callback_cancelled", "cb-8", "support", None, {"callback_id": 8}),
         (70, "callback_expired", "cb-8", "support", None, {"callback_id": 8, "attempts": 0})])  # one final status
    cb = whole(rows).total.callbacks
    assert (cb.accepted, cb.requested, cb.completed, cb.cancelled, cb.expired, cb.pending, cb.completion_rate) == (
        1, 1, 1, 1, 0, 0, 1.0)


def test_a_callback_queued_without_its_request_in_the_log():
    # The log starts after the request (or a restart re-queued it): `dial_out` says what it is.
    rows = story_rows([(0, "queued", "cb-3", "sales", None,
                        {"priority": 0, "dial_out": "callback", "enqueued_at": T0 - 600}),
                       (5, "queued", "cp1a2", "sales", None, {"priority": 0, "dial_out": "campaign"})])
    (callback, preview) = reconstruct_calls(rows)
    assert (callback.direction, preview.direction) == ("callback", "outbound")
    assert [(q.queue, q.waiting) for q in snapshot_from_rows(rows, T0 + 10).queues] == []
    assert_realtime_equals_recompute(rows)


def test_a_transferred_callback_waits_again_as_an_inbound_call():
    """cb-9, a web callback in sales: 1001 talks with the customer for 30 s and transfers them
    to support, where they wait 8 s for 1002 (talk 40)."""
    rows = story_rows([
        (0, "callback_requested", "cb-9", "sales", None, {"callback_id": 9, "source": "web"}),
        (0, "queued", "cb-9", "sales", None, {"priority": 0, "dial_out": "callback", "enqueued_at": T0}),
        (10, "answered", "cb-9", "sales", "1001", {"offer_id": "cb-9/1", "wait": 10.0}),
        (10, "callback_attempt", "cb-9", "sales", "1001", {"callback_id": 9, "attempt": 1, "outcome": "answered"}),
        (10, "callback_completed", "cb-9", "sales", "1001", {"callback_id": 9, "attempts": 1}),
        (40, "transferred", "cb-9", "sales", "1001", {"to_queue": "support", "to_agent": None}),
        (40, "ended", "cb-9", "sales", "1001", {"talk": 30.0, "by": "transfer"}),
        (40, *state("1001", "available")),
        (41, "queued", "cb-9", "support", None, {"priority": 0}),
        (49, "answered", "cb-9", "support", "1002", {"offer_id": "cb-9/2", "wait": 8.0}),
        (89, "ended", "cb-9", "support", "1002", {"talk": 40.0, "by": "caller"}),
        (89, *state("1002", "available")),
    ])
    queues, agents = by_name(whole(rows))
    sales, support = queues["sales"], queues["support"]
    assert (sales.offered, sales.callback_answered, sales.transferred_out, sales.aht) == (0, 1, 1, 30.0)
    assert (sales.callbacks.completed, sales.callbacks.avg_delay) == (1, 10.0)
    assert (support.offered, support.answered, support.transferred_in, support.asa, support.aht) == (1, 1, 1, 8.0, 40.0)
    assert (agents["1001"].answered, agents["1001"].callback_answered, agents["1002"].answered) == (0, 1, 1)
    assert_realtime_equals_recompute(rows)


# ---------------------------------------------------------------------------- decline
def test_a_caller_who_declines_the_callback_offer_is_an_ordinary_inbound_call():
    rows = story_rows([
        (0, "queued", "D", "support", None, {"priority": 0}),
        (30, "callback_offered", "D", "support", None, {"estimated_wait": 120}),
        (35, "callback_declined", "D", "support", None, {}),  # not a figure: ignored
        (45, "answered", "D", "support", "1001", {"offer_id": "D/1", "wait": 45.0}),
        (45, *state("1001", "on_call")),
        (105, "ended", "D", "support", "1001", {"talk": 60.0, "by": "caller"}),
        (105, *state("1001", "wrap_up")),
        (110, *state("1001", "available")),
    ])
    interval = whole(rows)
    (support,), agents = interval.queues, by_name(interval)[1]
    assert (support.offered, support.answered, support.abandoned, support.service_level.of_offered) == (1, 1, 0, 0.0)
    assert (support.asa, support.aht, support.callback_answered) == (45.0, 65.0, 0)
    cb = support.callbacks
    assert (cb.offered, cb.accepted, cb.attempts, cb.pending, cb.completion_rate, cb.avg_delay) == (
        1, 0, 0, 0, None, None)
    assert (agents["1001"].answered, agents["1001"].callback_answered, agents["1001"].aht) == (1, 0, 65.0)
    assert_realtime_equals_recompute(rows)


# ---------------------------------------------------------------------------- web callback
def web_callback_story() -> list[dict]:
    """cb-7: requested on the web at 0 in sales, due at 2000 (queued then); 1001 answers the
    agent-first dial, the customer does not answer (attempt 1); it expires at 3700 before its
    retry. B: an inbound caller of sales who abandons after 30 s."""
    return story_rows([
        (0, "callback_requested", "cb-7", "sales", None,
         {"callback_id": 7, "source": "web", "not_before": T0 + 2000, "not_after": T0 + 3700}),
        (100, "queued", "B", "sales", None, {"priority": 0}),
        (130, "abandoned", "B", "sales", None, {"wait": 30.0, "stage": "waiting"}),
        (2000, "queued", "cb-7", "sales", None, {"priority": 0, "dial_out": "callback", "enqueued_at": T0 + 2000}),
        (2001, "offered", "cb-7", "sales", "1001", {"offer_id": "cb-7/1", "attempt": 1}),
        (2001, *state("1001", "reserved")),
        (2005, *state("1001", "on_call")),
        (2040, "dial_out_failed", "cb-7", "sales", "1001", {"offer_id": "cb-7/1", "outcome": "no_answer", "wait": 40}),
        (2040, *state("1001", "available")),
        (2040, "callback_attempt", "cb-7", "sales", "1001", {"callback_id": 7, "attempt": 1, "outcome": "no_answer"}),
        (3700, "callback_expired", "cb-7", "sales", None, {"callback_id": 7, "attempts": 1}),
    ])


def test_a_web_callback_that_expires():
    rows = web_callback_story()
    first, second = kpi_report(rows, interval="30m", now=T0 + 3700).intervals[:2]
    (sales,) = first.queues
    # the inbound figures are B's alone
    assert (sales.queued, sales.offered, sales.answered, sales.abandoned) == (1, 1, 0, 1)
    assert (sales.service_level.of_offered, sales.abandon_rate, sales.unresolved) == (0.0, 1.0, 0)
    # the callback counts where it was requested, whenever it was dialled or expired
    cb = sales.callbacks
    assert (cb.offered, cb.accepted, cb.requested, cb.attempts) == (0, 0, 1, 1)
    assert (cb.completed, cb.failed, cb.expired, cb.pending, cb.completion_rate, cb.avg_delay) == (
        0, 0, 1, 0, 0.0, None)
    (sales_later,) = second.queues  # its callback leg was queued here: nothing inbound, nothing handled
    assert (sales_later.queued, sales_later.offered, sales_later.callbacks.requested, sales_later.handled) == (
        0, 0, 0, 0)
    (agent,) = second.agents
    assert (agent.agent_id, agent.answered, agent.callback_answered, agent.offers_not_taken, agent.handled) == (
        "1001", 0, 0, 0, 0)
    (_, leg) = reconstruct_calls(rows)
    assert (leg.call_id, leg.direction, leg.outcome, leg.live) == ("cb-7", "callback", "expired", False)


def test_a_pending_web_callback_is_no_caller_waiting():
    rows = [r for r in web_callback_story() if r["ts"] <= T0 + 2001]
    interval = whole(rows)
    (sales,) = interval.queues
    assert (sales.unresolved, sales.callbacks.pending, sales.callbacks.completion_rate) == (0, 1, None)
    assert [(q.queue, q.waiting) for q in snapshot_from_rows(rows, T0 + 2002).queues] == [("sales", 0)]
    assert_realtime_equals_recompute(web_callback_story())


# ---------------------------------------------------------------------------- campaigns
def dialed(t, call, contact, attempt, mode="progressive", campaign="spring", queue="outbound"):
    return (t, "campaign_dialed", call, queue, None,
            {"campaign": campaign, "contact_id": contact, "attempt": attempt, "mode": mode})


def outcome(t, call, contact, attempt, result, final, campaign="spring", queue="outbound"):
    return (t, "campaign_outcome", call, queue, None,
            {"campaign": campaign, "contact_id": contact, "attempt": attempt, "outcome": result, "final": final})


def progressive_story() -> list[dict]:
    """Campaign spring (queue outbound, progressive): contact 1 connected and talked with 1003
    (talk 120, ACW 10); contact 2 busy, then connected and hung up after 30 s waiting for an agent
    (a campaign abandon); contact 3 no answer; contact 4 interrupted; contact 5 blocked by the
    do-not-call list (never dialled, no call id). P: an inbound support call 1003 answers after
    10 s (talk 30, no wrap-up)."""
    return story_rows(
        [(0, *state("1003", "available"))],
        [
            dialed(0, "cp1a1", 1, 1),
            outcome(10, "cp1a1", 1, 1, "connected", True),
            (10, "queued", "cp1a1", "outbound", None, {"priority": 0, "campaign": "spring"}),
            (11, "offered", "cp1a1", "outbound", "1003", {"offer_id": "cp1a1/1", "attempt": 1}),
            (11, *state("1003", "reserved")),
            (15, "answered", "cp1a1", "outbound", "1003", {"offer_id": "cp1a1/1", "wait": 5.0}),
            (15, *state("1003", "on_call")),
            (135, "ended", "cp1a1", "outbound", "1003", {"talk": 120.0, "by": "agent"}),
            (135, *state("1003", "wrap_up")),
            (145, *state("1003", "available")),
            dialed(20, "cp2a1", 2, 1),
            outcome(30, "cp2a1", 2, 1, "busy", False),
            dialed(40, "cp3a1", 3, 1),
            outcome(70, "cp3a1", 3, 1, "no_answer", False),
            dialed(400, "cp2a2", 2, 2),
            outcome(410, "cp2a2", 2, 2, "connected", True),
            (410, "queued", "cp2a2", "outbound", None, {"priority": 0, "campaign": "spring"}),
            (440, "abandoned", "cp2a2", "outbound", None, {"wait": 30.0, "stage": "waiting"}),
            dialed(500, "cp4a1", 4, 1),
            outcome(600, "cp4a1", 4, 1, "interrupted", False),
            outcome(700, None, 5, 0, "dnc", True),
        ],
        answered_call("P", 800, queue="support", agent="1003", wait=10.0, talk=30.0, acw=0.0),
    )


def test_a_progressive_campaign():
    interval = whole(progressive_story(), now=T0 + 900)
    queues, agents = by_name(interval)
    (spring,) = interval.campaigns.values()
    assert (spring.campaign, spring.contacts, spring.attempts, spring.pending) == ("spring", 4, 5, 0)
    o = spring.outcomes
    assert (o.connected, o.busy, o.no_answer, o.failed, o.interrupted, o.dnc, o.other) == (2, 1, 1, 0, 1, 1, 0)
    assert spring.connect_rate == 2 / 5  # the dnc contact was never dialled
    f = spring.final
    assert (f.connected, f.busy, f.no_answer, f.interrupted, f.dnc) == (2, 0, 0, 0, 1)
    assert (spring.answered, spring.abandoned, spring.abandon_rate, spring.aht, spring.handled) == (
        1, 1, 0.5, 130.0, 1)
    # the campaign's queue: nothing inbound, one outbound call handled, one campaign abandon
    out = queues["outbound"]
    assert (out.queued, out.offered, out.abandoned, out.answered, out.service_level.of_offered, out.asa) == (
        0, 0, 0, 0, None, None)
    assert (out.outbound_answered, out.campaign_abandoned, out.handled, out.aht) == (1, 1, 1, 130.0)
    total = interval.total
    assert (total.offered, total.answered, total.abandoned, total.abandon_rate) == (1, 1, 0, 0.0)
    assert (total.service_level.of_offered, total.asa, total.campaign_abandoned) == (1.0, 10.0, 1)
    assert (total.handled, total.aht) == (2, 80.0)
    assert (agents["1003"].answered, agents["1003"].outbound_answered, agents["1003"].handled,
            agents["1003"].aht) == (1, 1, 2, 80.0)
    # outbound calls are not contacts for first-contact resolution (not even anonymous ones)
    assert (total.fcr.anonymous, total.fcr.too_recent, out.fcr.too_recent) == (0, 1, 0)


def test_campaign_dials_count_in_the_interval_they_were_dialled():
    report = kpi_report(progressive_story(), interval="15m", start=T0 + 300, end=T0 + 900, now=T0 + 900)
    (spring,) = report.intervals[0].campaigns.values()  # 09:00-09:15 from 09:05: cp2a2, cp4a1, dnc
    assert (spring.contacts, spring.attempts, spring.outcomes.connected, spring.outcomes.dnc) == (2, 2, 1, 1)
    assert (spring.answered, spring.abandoned, spring.abandon_rate) == (0, 1, 1.0)


def test_realtime_ignores_campaign_calls():
    rows = progressive_story()
    assert_realtime_equals_recompute(rows)
    live = RealtimeKpis()
    for row in rows:
        live.apply(row)
    (support,) = live.snapshot(T0 + 900).queues  # the outbound queue had no inbound caller
    assert (support.queue, support.today.offered, support.today.abandoned) == ("support", 1, 0)


def test_a_preview_contact():
    """Campaign renewals (queue sales, preview): contact 9 is queued for an agent first; 1001
    answers, the customer picks up at 20 (talk 180, no wrap-up). Contact 8: 1001 answers, the
    customer does not."""
    rows = story_rows([
        (0, *state("1001", "available")),
        dialed(0, "cp9a1", 9, 1, "preview", "renewals", "sales"),
        (0, "queued", "cp9a1", "sales", None, {"priority": 0, "dial_out": "campaign", "campaign": "renewals"}),
        (1, "offered", "cp9a1", "sales", "1001", {"offer_id": "cp9a1/1", "attempt": 1}),
        (1, *state("1001", "reserved")),
        (5, *state("1001", "on_call")),
        (20, "answered", "cp9a1", "sales", "1001", {"offer_id": "cp9a1/1", "wait": 20.0}),
        outcome(20, "cp9a1", 9, 1, "connected", True, "renewals", "sales"),
        (200, "ended", "cp9a1", "sales", "1001", {"talk": 180.0, "by": "customer"}),
        (200, *state("1001", "available")),
        dialed(300, "cp8a1", 8, 1, "preview", "renewals", "sales"),
        (300, "queued", "cp8a1", "sales", None, {"priority": 0, "dial_out": "campaign", "campaign": "renewals"}),
        (301, "offered", "cp8a1", "sales", "1001", {"offer_id": "cp8a1/1", "attempt": 1}),
        (301, *state("1001", "reserved")),
        (305, *state("1001", "on_call")),
        (330, "dial_out_failed", "cp8a1", "sales", "1001", {"offer_id": "cp8a1/1", "outcome": "no_answer"}),
        (330, *state("1001", "available")),
        outcome(330, "cp8a1", 8, 1, "no_answer", False, "renewals", "sales"),
    ])
    interval = whole(rows, now=T0 + 400)
    (sales,), agents = interval.queues, by_name(interval)[1]
    assert (sales.queued, sales.offered, sales.unresolved, sales.service_level.of_offered) == (0, 0, 0, None)
    assert (sales.outbound_answered, sales.handled, sales.aht, sales.campaign_abandoned) == (1, 1, 180.0, 0)
    renewals = interval.campaigns["renewals"]
    assert (renewals.contacts, renewals.attempts, renewals.outcomes.connected, renewals.outcomes.no_answer) == (
        2, 2, 1, 1)
    assert (renewals.connect_rate, renewals.answered, renewals.abandoned, renewals.abandon_rate, renewals.aht) == (
        0.5, 1, 0, 0.0, 180.0)
    assert (agents["1001"].answered, agents["1001"].outbound_answered, agents["1001"].offers_not_taken,
            agents["1001"].aht) == (0, 1, 0, 180.0)
    reached, missed = reconstruct_calls(rows)
    assert (reached.direction, reached.campaign, missed.direction, missed.outcome, missed.live) == (
        "outbound", "renewals", "outbound", None, False)
    assert_realtime_equals_recompute(rows)
    assert snapshot_from_rows(rows, T0 + 310).queues == ()  # a preview contact is no caller waiting


# ---------------------------------------------------------------------------- surveys
def test_survey_answers_with_their_agent_and_queue():
    rows = story_rows(
        answered_call("B", 0, agent="1001"),
        [(90, "survey_answered", "B", None, None, {"question": "csat", "score": 4})],  # an older row: joined
        [(r["ts"] - T0 + 1000, r["kind"], r["call_id"], r["queue"], r["agent_id"], r["data"])
         for r in hold_callback_story()],
        [(1700, "survey_answered", "H", "support", "1002", {"question": "csat", "score": 2}),
         # a call whose queue leg is not in the log: the row places the answer
         (1800, "survey_answered", "X", "billing", "1004", {"question": "csat", "score": 5})],
    )
    interval = whole(rows, now=T0 + 1900)
    queues, agents = by_name(interval)
    assert (queues["support"].csat.responses, queues["support"].csat.top2_box) == (2, 0.5)
    assert (agents["1001"].csat.responses, agents["1001"].csat.mean_score) == (1, 4.0)
    assert (agents["1002"].csat.responses, agents["1002"].csat.mean_score) == (1, 2.0)  # its callback leg
    billing = queues["billing"]
    assert (billing.csat.responses, billing.csat.top2_box, billing.queued, billing.offered) == (1, 1.0, 0, 0)
    assert (agents["1004"].csat.responses, agents["1004"].answered) == (1, 0)
    assert (interval.total.csat.responses, interval.total.csat.mean_score) == (3, 11 / 3)


def test_a_survey_row_does_not_move_a_joined_answer():
    # A: sales (1001) transferred to support (1002). The survey row names the last queue and
    # agent; the contact still belongs to its first leg's queue and its last leg's agent.
    rows = transfer_story() + story_rows([(96, "survey_answered", "A", "support", "1002",
                                           {"question": "csat", "score": 5})])
    rows = [dict(r, id=i) for i, r in enumerate(rows, start=1)]
    queues, agents = by_name(whole(rows, now=T0 + 100))
    assert (queues["sales"].csat.responses, queues["support"].csat.responses) == (1, 0)
    assert (agents["1001"].csat.responses, agents["1002"].csat.responses) == (0, 1)


# ---------------------------------------------------------------------------- output
@pytest.fixture
def campaign_config(events_config):
    return events_config(progressive_story() + [dict(r, id=r["id"] + 1000, ts=r["ts"] + 1000)
                                                for r in hold_callback_story()])


def test_report_formats_show_the_new_figures(campaign_config):
    def run(*args):
        result = CliRunner().invoke(main, ["--config", str(campaign_config), "report", "kpis", *args])
        assert result.exit_code == 0, result.output
        return result.output

    out = json.loads(run("--format", "json"))
    (interval,) = out["intervals"]
    spring = interval["campaigns"]["spring"]
    assert (spring["attempts"], spring["outcomes"]["busy"], spring["final"]["dnc"], spring["abandoned"]) == (5, 1, 1, 1)
    support = next(q for q in interval["queues"] if q["queue"] == "support")
    assert (support["callbacks"]["accepted"], support["callbacks"]["avg_delay"], support["callback_answered"]) == (
        1, 350.0, 1)

    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    (campaign,) = [r for r in rows if r["scope"] == "campaign"]
    assert (campaign["name"], campaign["outcomes.connected"], campaign["connect_rate"], campaign["contacts"]) == (
        "spring", "2", "0.4", "4")
    support_row = next(r for r in rows if r["scope"] == "queue" and r["name"] == "support")
    assert (support_row["callbacks.completed"], support_row["callbacks.completion_rate"]) == ("1", "1.0")
    outbound_row = next(r for r in rows if r["scope"] == "queue" and r["name"] == "outbound")
    assert (outbound_row["campaign_abandoned"], outbound_row["outbound_answered"]) == ("1", "1")

    text = run()
    assert ("    callbacks: offered 1, accepted 1, requested 0, attempts 2, completed 1, failed 0, expired 0, "
            "cancelled 0, pending 0; completed 100.0 % of finished, avg delay 350.0 s; "
            "callback legs answered 1") in text
    assert "    outbound: answered 1, campaign abandoned 1" in text
    assert "  campaign spring: contacts 4, dials 5 (pending 0), connected 2 (connect rate 40.0 %)" in text
    assert "abandoned 1 (50.0 % of connected)" in text
    assert "agent 1002: answered 1, callbacks 1, AHT 87.5 s over 2" in text


def test_no_campaign_no_campaign_rows():
    report = kpi_report(hold_callback_story())
    assert asdict(report)["intervals"][0]["campaigns"] == {}
    assert {r["scope"] for r in report_rows(report)} == {"queue", "agent"}
