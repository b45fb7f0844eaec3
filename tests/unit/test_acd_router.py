"""Unit tests for the pure ACD router: matching strategy, offer life cycle, agent control,
stale-event tolerance, snapshots, and invariants over random operation sequences."""

from __future__ import annotations


import pytest

from callcenter.acd.model import (
    AgentState,
    CallState,
    CancelOffer,
    Effect,
    Event,
    Offer,
    RoutingError,
    StartTimer,
)
from callcenter.acd.router import Router
from tests.unit.acd_effects import RING, WRAPUP, agent_state, ringing



@pytest.fixture
def router() -> Router:
    return Router(["sales", "support"], ring_timeout=RING, wrapup_seconds=WRAPUP)


def offers(effects: list[Effect]) -> list[Offer]:
    return [e for e in effects if isinstance(e, Offer)]


def kinds(effects: list[Effect]) -> list[str]:
    return [e.kind if isinstance(e, Event) else type(e).__name__ for e in effects]


def connect(router: Router, call_id: str, now: float) -> None:
    """Answer the call's outstanding offer."""
    call = router.call(call_id)
    assert call is not None and call.offer_id is not None
    assert router.offer_answered(call.offer_id, now)


# ---- construction and validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "queues, ring, wrapup",
    [([], 15, 5), (["sales", "sales"], 15, 5), ([""], 15, 5), (["sales"], 0, 5), (["sales"], 15, -1)],
)
def test_constructor_refuses_bad_configuration(queues, ring, wrapup):
    with pytest.raises(RoutingError):
        Router(queues, ring_timeout=ring, wrapup_seconds=wrapup)


def test_enqueue_to_unknown_queue_raises_and_changes_nothing(router):
    with pytest.raises(RoutingError, match="unknown queue 'billing'"):
        router.enqueue("c1", "billing", now=0)
    assert router.call("c1") is None
    assert all(q["waiting"] == [] for q in router.queues_snapshot(0))


def test_duplicate_live_call_id_raises(router):
    router.enqueue("c1", "sales", now=0)
    with pytest.raises(RoutingError, match="already"):
        router.enqueue("c1", "support", now=1)
    assert router.call("c1").queue == "sales"


def test_priority_must_be_an_int_passed_by_keyword(router):
    with pytest.raises(RoutingError, match="priority"):
        router.enqueue("c1", "sales", now=0, priority=1.5)
    with pytest.raises(TypeError):
        router.enqueue("c1", "sales", 2, 0.0)  # (priority, now) swapped must not pass silently
    assert router.call("c1") is None


def test_login_with_unknown_skill_raises_and_leaves_agent_unknown(router):
    with pytest.raises(RoutingError, match="billing"):
        router.login("1001", {"sales", "billing"}, now=0)
    assert router.agent("1001") is None


def test_skills_given_as_a_bare_string_are_refused(router):
    with pytest.raises(RoutingError, match="not the string"):
        router.login("1001", "sales", now=0)


def test_set_skills_with_unknown_skill_raises_and_keeps_old_skills(router):
    router.login("1001", {"sales"}, now=0)
    with pytest.raises(RoutingError):
        router.set_profile("1001", 1, queues={"billing"})
    assert router.agent("1001").queues == {"sales"}


@pytest.mark.parametrize(
    "method, args", [("logout", ()), ("pause", ("lunch",)), ("unpause", ()), ("set_profile", ())]
)
def test_agent_commands_for_unknown_agent_raise(router, method, args):
    with pytest.raises(RoutingError, match="unknown agent"):
        getattr(router, method)("9999", *args, now=0)


def test_login_twice_is_refused(router):
    router.login("1001", {"sales"}, now=0)
    with pytest.raises(RoutingError, match="already logged in"):
        router.login("1001", {"support"}, now=1)
    assert router.agent("1001").queues == {"sales"}


# ---- matching strategy -----------------------------------------------------------------------


def test_enqueue_with_available_agent_emits_queued_then_offer(router):
    router.login("1001", {"sales"}, now=0)
    effects = router.enqueue("c1", "sales", now=10, priority=2)
    queued = Event("queued", "c1", "sales", None, {"priority": 2, "requirement": "true"})
    assert effects == [queued, *ringing("c1", 1, "sales", "1001")]
    agent = router.agent("1001")
    assert agent.state is AgentState.RESERVED and agent.state_since == 10
    assert agent.idle_since == 0  # being offered a call is not the end of idle time
    assert router.call("c1").state is CallState.RINGING


def test_enqueue_without_agents_only_queues(router):
    assert router.enqueue("c1", "sales", now=0) == [Event("queued", "c1", "sales", None, {"priority": 0, "requirement": "true"})]
    assert router.call("c1").state is CallState.WAITING


def test_longest_idle_agent_gets_the_call(router):
    router.login("1003", {"sales"}, now=0)
    router.login("1001", {"sales"}, now=2)
    router.login("1002", {"sales"}, now=1)
    assert [o.agent_id for o in offers(router.enqueue("c1", "sales", now=5))] == ["1003"]
    assert [o.agent_id for o in offers(router.enqueue("c2", "sales", now=6))] == ["1002"]
    assert [o.agent_id for o in offers(router.enqueue("c3", "sales", now=7))] == ["1001"]


def test_idle_time_restarts_after_wrapup(router):
    router.login("1001", {"sales"}, now=0)
    router.login("1002", {"sales"}, now=1)
    router.enqueue("c1", "sales", now=2)  # -> 1001
    connect(router, "c1", now=3)
    router.call_ended("c1", now=4)
    router.wrapup_done("1001", now=9)
    assert router.agent("1001").idle_since == 9
    assert [o.agent_id for o in offers(router.enqueue("c2", "sales", now=10))] == ["1002"]


def test_idle_tie_goes_to_lowest_agent_id_in_numeric_order(router):
    router.login("1002", {"sales"}, now=0)
    router.login("1001", {"sales"}, now=0)
    router.login("999", {"sales"}, now=0)
    assert [o.agent_id for o in offers(router.enqueue("c1", "sales", now=1))] == ["999"]
    assert [o.agent_id for o in offers(router.enqueue("c2", "sales", now=1))] == ["1001"]


def test_agent_without_the_skill_is_never_offered(router):
    router.login("1001", {"support"}, now=0)
    assert offers(router.enqueue("c1", "sales", now=1)) == []
    assert router.agent("1001").state is AgentState.AVAILABLE


def test_callers_are_served_by_priority_then_enqueue_time(router):
    router.enqueue("low-early", "sales", now=1)
    router.enqueue("low-late", "sales", now=2)
    router.enqueue("high-late", "sales", now=4, priority=5)
    router.enqueue("high-early", "sales", now=3, priority=5)
    router.enqueue("mid", "sales", now=5, priority=1)
    waiting = router.queues_snapshot(6)[0]["waiting"]
    expected = ["high-early", "high-late", "mid", "low-early", "low-late"]
    assert [w["call_id"] for w in waiting] == expected

    served = []
    router.login("1001", {"sales"}, now=10)
    for t in range(11, 16):
        call = next(c["call_id"] for c in router.queues_snapshot(t)[0]["ringing"])
        served.append(call)
        connect(router, call, now=t)
        router.call_ended(call, now=t + 0.1)
        router.wrapup_done("1001", now=t + 0.5)
    assert served == expected


def test_same_enqueue_time_and_priority_keeps_arrival_order(router):
    for call_id in ["b", "a", "c"]:
        router.enqueue(call_id, "sales", now=1)
    assert [w["call_id"] for w in router.queues_snapshot(1)[0]["waiting"]] == ["b", "a", "c"]


def test_agent_with_two_skills_takes_longest_waiting_call_across_queues(router):
    router.enqueue("sales-1", "sales", now=2)
    router.enqueue("support-1", "support", now=1)
    router.enqueue("sales-2", "sales", now=3)
    effects = router.login("1001", {"sales", "support"}, now=10)
    assert effects == [agent_state("1001", "available"), *ringing("support-1", 1, "support", "1001")]


def test_agent_with_two_skills_takes_higher_priority_before_longer_wait(router):
    router.enqueue("support-old", "support", now=0)
    router.enqueue("sales-vip", "sales", now=50, priority=1)
    effects = router.login("1001", {"sales", "support"}, now=60)
    assert [(o.call_id, o.queue) for o in offers(effects)] == [("sales-vip", "sales")]


def test_cross_queue_choice_ignores_queues_the_agent_does_not_serve(router):
    router.enqueue("support-old", "support", now=0)
    router.enqueue("sales-new", "sales", now=50)
    assert [o.call_id for o in offers(router.login("1001", {"sales"}, now=60))] == ["sales-new"]


def test_one_login_matches_only_one_call_and_several_logins_drain_the_queue(router):
    for n in range(3):
        router.enqueue(f"c{n}", "sales", now=n)
    assert [o.call_id for o in offers(router.login("1001", {"sales"}, now=10))] == ["c0"]
    assert [o.call_id for o in offers(router.login("1002", {"sales"}, now=10))] == ["c1"]
    assert [w["call_id"] for w in router.queues_snapshot(10)[0]["waiting"]] == ["c2"]


# ---- offer outcomes --------------------------------------------------------------------------


def test_answer_connects_call_and_counts_it(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=2, attrs={"caller": "+33123"})
    effects = router.offer_answered("c1/1", now=7)
    assert effects == [
        Event("answered", "c1", "sales", "1001", {"offer_id": "c1/1", "wait": 5}),
        agent_state("1001", "on_call"),
    ]
    call, agent = router.call("c1"), router.agent("1001")
    assert call.state is CallState.CONNECTED and call.answered_at == 7 and call.agent_id == "1001"
    assert agent.state is AgentState.ON_CALL and agent.calls_answered == 1 and agent.call_id == "c1"
    assert call.attrs == {"caller": "+33123"}


def test_call_attrs_are_copied_not_shared(router):
    attrs = {"channel": "PJSIP/x-1"}
    router.enqueue("c1", "sales", now=0, attrs=attrs)
    attrs["channel"] = "changed"
    assert router.call("c1").attrs == {"channel": "PJSIP/x-1"}


def test_ring_no_answer_pauses_agent_and_reoffers_to_next_agent(router):
    router.login("1001", {"sales"}, now=0)
    router.login("1002", {"sales"}, now=1)
    router.enqueue("c1", "sales", now=10, priority=3)
    effects = router.offer_failed("c1/1", "ring-no-answer", now=25)
    assert effects == [
        Event("ring_no_answer", "c1", "sales", "1001", {"offer_id": "c1/1"}),
        agent_state("1001", "paused", "ring-no-answer"),
        *ringing("c1", 2, "sales", "1002"),
    ]
    agent = router.agent("1001")
    assert agent.state is AgentState.PAUSED and agent.pause_reason == "ring-no-answer"
    assert agent.call_id is None and agent.offer_id is None
    call = router.call("c1")
    assert (call.enqueued_at, call.priority, call.agent_id) == (10, 3, "1002")


def test_failed_call_keeps_its_place_ahead_of_later_callers(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("first", "sales", now=1)  # rings 1001
    router.enqueue("second", "sales", now=5)
    assert offers(router.offer_failed("first/1", "ring-no-answer", now=16)) == []  # nobody left
    waiting = router.queues_snapshot(20)[0]["waiting"]
    assert [(w["call_id"], w["wait"]) for w in waiting] == [("first", 19), ("second", 15)]
    assert [o.call_id for o in offers(router.login("1002", {"sales"}, now=30))] == ["first"]


def test_failed_agent_is_not_offered_the_call_again_until_unpaused(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    router.offer_failed("c1/1", "ring-no-answer", now=16)
    assert router.call("c1").state is CallState.WAITING
    effects = router.unpause("1001", now=20)
    assert effects == [agent_state("1001", "available"), *ringing("c1", 2, "sales", "1001")]


@pytest.mark.parametrize("reason, kind", [("busy", "busy"), ("unreachable", "unreachable")])
def test_other_offer_failures_use_the_reason_as_event_and_pause_reason(router, reason, kind):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    effects = router.offer_failed("c1/1", reason, now=2)
    assert effects[:2] == [
        Event(kind, "c1", "sales", "1001", {"offer_id": "c1/1"}),
        agent_state("1001", "paused", reason),
    ]
    assert router.agent("1001").pause_reason == reason


def test_unknown_failure_reason_is_refused(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    with pytest.raises(RoutingError, match="reason"):
        router.offer_failed("c1/1", "declined", now=2)
    assert router.agent("1001").state is AgentState.RESERVED


def test_offer_ids_count_up_per_call(router):
    for agent_id in ["1001", "1002", "1003"]:
        router.login(agent_id, {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    ids = ["c1/1"]
    for n in range(2):
        ids += [o.offer_id for o in offers(router.offer_failed(ids[-1], "busy", now=2 + n))]
    assert ids == ["c1/1", "c1/2", "c1/3"]


# ---- end of call and wrap-up -----------------------------------------------------------------


def test_call_end_starts_wrapup_timer_then_wrapup_done_dispatches(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    connect(router, "c1", now=3)
    router.enqueue("c2", "sales", now=4)  # waits: the only agent is busy

    ended = router.call_ended("c1", now=63)
    assert ended == [
        Event("ended", "c1", "sales", "1001", {"talk": 60}),
        agent_state("1001", "wrap_up"),
        StartTimer(key="wrapup:1001", at=63 + WRAPUP),
    ]
    assert router.call("c1") is None
    assert router.agent("1001").call_id == "c1"  # still wrapping up that call
    assert router.call("c2").state is CallState.WAITING

    done = router.wrapup_done("1001", now=68)
    assert done == [
        Event("wrapup_done", "c1", None, "1001", {}),
        agent_state("1001", "available"),
        *ringing("c2", 1, "sales", "1001"),
    ]
    assert router.agent("1001").idle_since == 68


def test_zero_wrapup_goes_straight_to_available_and_dispatches():
    router = Router(["sales"], ring_timeout=RING, wrapup_seconds=0)
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    connect(router, "c1", now=2)
    router.enqueue("c2", "sales", now=3)
    effects = router.call_ended("c1", now=10)
    assert effects == [
        Event("ended", "c1", "sales", "1001", {"talk": 8}),
        agent_state("1001", "available"),
        *ringing("c2", 1, "sales", "1001"),
    ]
    assert not any(isinstance(e, StartTimer) for e in effects)
    assert router.agent("1001").idle_since == 10


def test_abandon_of_connected_call_is_an_ordinary_end(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    connect(router, "c1", now=2)
    assert kinds(router.abandon("c1", now=5)) == ["ended", "agent_state", "StartTimer"]
    assert router.agent("1001").state is AgentState.WRAP_UP


# ---- abandon ---------------------------------------------------------------------------------


def test_abandon_while_waiting_removes_the_call(router):
    router.enqueue("c1", "sales", now=0)
    router.enqueue("c2", "sales", now=1)
    assert router.abandon("c1", now=30) == [
        Event("abandoned", "c1", "sales", None, {"wait": 30, "stage": "waiting"})
    ]
    assert router.call("c1") is None
    assert [w["call_id"] for w in router.queues_snapshot(30)[0]["waiting"]] == ["c2"]


def test_abandon_while_ringing_cancels_offer_and_frees_agent_with_idle_time_intact(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=3)
    router.login("1002", {"sales"}, now=5)
    effects = router.abandon("c1", now=8)
    assert effects == [
        CancelOffer("c1/1", "c1", "1001"),
        Event("abandoned", "c1", "sales", "1001", {"wait": 5, "stage": "ringing"}),
        agent_state("1001", "available"),
    ]
    agent = router.agent("1001")
    assert agent.state is AgentState.AVAILABLE and agent.idle_since == 0 and agent.offer_id is None
    # 1001 has been idle since 0, longer than 1002 (since 5): it is still first in line.
    assert [o.agent_id for o in offers(router.enqueue("c2", "sales", now=9))] == ["1001"]


def test_abandon_while_ringing_redispatches_agent_to_next_caller(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    router.enqueue("c2", "sales", now=2)
    effects = router.abandon("c1", now=4)
    assert kinds(effects) == ["CancelOffer", "abandoned", "agent_state", "Offer", "offered", "agent_state"]
    assert effects[3:] == ringing("c2", 1, "sales", "1001")


def test_call_ended_on_unconnected_call_is_an_abandon(router):
    router.enqueue("c1", "sales", now=0)
    assert kinds(router.call_ended("c1", now=2)) == ["abandoned"]
    assert router.call("c1") is None


# ---- stale events ----------------------------------------------------------------------------


def test_stale_events_are_ignored(router):
    router.login("1001", {"sales"}, now=0)
    router.login("1002", {"sales"}, now=1)
    router.enqueue("c1", "sales", now=2)
    router.offer_failed("c1/1", "ring-no-answer", now=3)  # now c1/2 rings 1002
    before = (router.agents_snapshot(4), router.queues_snapshot(4))

    assert router.offer_answered("c1/1", now=4) == []  # superseded offer
    assert router.offer_failed("c1/1", "busy", now=4) == []
    assert router.offer_answered("nope/1", now=4) == []
    assert router.abandon("unknown", now=4) == []
    assert router.call_ended("unknown", now=4) == []
    assert router.wrapup_done("1002", now=4) == []  # reserved, not wrapping up
    assert router.wrapup_done("9999", now=4) == []  # never logged in
    assert (router.agents_snapshot(4), router.queues_snapshot(4)) == before

    assert router.offer_answered("c1/2", now=5)
    assert router.offer_answered("c1/2", now=5) == []  # duplicate delivery
    assert router.offer_failed("c1/2", "busy", now=5) == []
    assert router.agent("1002").state is AgentState.ON_CALL
    router.call_ended("c1", now=6)
    assert router.call_ended("c1", now=6) == []
    assert router.abandon("c1", now=6) == []


def test_wrapup_timer_after_pause_in_wrapup_is_ignored(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    connect(router, "c1", now=2)
    router.call_ended("c1", now=3)
    assert router.pause("1001", "lunch", now=4) == [agent_state("1001", "paused", "lunch")]
    assert router.wrapup_done("1001", now=8) == []
    assert router.agent("1001").state is AgentState.PAUSED


def test_cancelled_offer_cannot_be_answered_later(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    router.abandon("c1", now=2)
    assert router.offer_answered("c1/1", now=3) == []
    assert router.agent("1001").state is AgentState.AVAILABLE


# ---- agent control ---------------------------------------------------------------------------


def test_logout_while_reserved_cancels_and_reoffers_with_original_place(router):
    router.login("1001", {"sales"}, now=0)
    router.login("1002", {"sales"}, now=1)
    router.enqueue("c1", "sales", now=2, priority=1)
    effects = router.logout("1001", now=4)
    assert effects == [
        CancelOffer("c1/1", "c1", "1001"),
        agent_state("1001", "logged_out"),
        *ringing("c1", 2, "sales", "1002"),
    ]
    call = router.call("c1")
    assert (call.enqueued_at, call.priority) == (2, 1)
    assert router.agent("1001").call_id is None


def test_logout_while_reserved_with_nobody_else_puts_call_back_first_in_line(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    router.enqueue("c2", "sales", now=2)
    router.logout("1001", now=3)
    assert [w["call_id"] for w in router.queues_snapshot(3)[0]["waiting"]] == ["c1", "c2"]
    assert router.queues_snapshot(3)[0]["ringing"] == []


def test_requeued_call_keeps_its_arrival_order_among_equal_callers(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("first", "sales", now=1)  # rings 1001
    router.enqueue("second", "sales", now=1)  # same time and priority: arrival order decides
    router.pause("1001", "break", now=2)
    assert [w["call_id"] for w in router.queues_snapshot(2)[0]["waiting"]] == ["first", "second"]


def test_pause_while_reserved_cancels_and_requeues(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    effects = router.pause("1001", "break", now=2)
    assert effects == [CancelOffer("c1/1", "c1", "1001"), agent_state("1001", "paused", "break")]
    assert router.call("c1").state is CallState.WAITING
    assert router.agent("1001").pause_reason == "break"


def test_logout_and_pause_are_refused_on_a_call(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    connect(router, "c1", now=2)
    with pytest.raises(RoutingError, match="on_call"):
        router.logout("1001", now=3)
    with pytest.raises(RoutingError, match="on_call"):
        router.pause("1001", "lunch", now=3)
    assert router.agent("1001").state is AgentState.ON_CALL


def test_logout_when_logged_out_and_unpause_when_not_paused_are_refused(router):
    router.login("1001", {"sales"}, now=0)
    with pytest.raises(RoutingError, match="not paused"):
        router.unpause("1001", now=1)
    router.logout("1001", now=2)
    with pytest.raises(RoutingError):
        router.logout("1001", now=3)
    with pytest.raises(RoutingError):
        router.pause("1001", "lunch", now=3)


def test_pause_needs_a_reason(router):
    router.login("1001", {"sales"}, now=0)
    with pytest.raises(RoutingError, match="reason"):
        router.pause("1001", "  ", now=1)


def test_pause_while_paused_changes_the_reason(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    router.offer_failed("c1/1", "ring-no-answer", now=2)
    assert router.pause("1001", "training", now=3) == [agent_state("1001", "paused", "training")]
    assert router.agent("1001").pause_reason == "training"


def test_unpause_and_relogin_make_agent_available_and_dispatch(router):
    router.login("1001", {"sales"}, now=0)
    router.pause("1001", "lunch", now=1)
    router.enqueue("c1", "sales", now=2)
    assert router.call("c1").state is CallState.WAITING
    assert offers(router.unpause("1001", now=3)) == [Offer("c1/1", "c1", "1001", "sales", RING)]
    assert router.agent("1001").idle_since == 3 and router.agent("1001").pause_reason is None

    router.logout("1001", now=4)  # c1 goes back to waiting
    assert [o.offer_id for o in offers(router.login("1001", {"sales"}, now=5))] == ["c1/2"]


def test_set_skills_dispatches_an_available_agent_to_its_new_queue(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "support", now=1)
    assert router.set_profile("1001", 2, queues={"support"})[1:] == ringing("c1", 1, "support", "1001")


def test_set_skills_leaves_a_ringing_offer_alone_and_applies_next_time(router):
    router.login("1001", {"sales"}, now=0)
    router.enqueue("c1", "sales", now=1)
    assert kinds(router.set_profile("1001", 2, queues={"support"})) == ["agent_profile"]
    assert router.agent("1001").offer_id == "c1/1"
    router.enqueue("c2", "sales", now=3)
    router.abandon("c1", now=4)  # 1001 frees up but no longer serves sales
    assert router.call("c2").state is CallState.WAITING
    assert router.agent("1001").state is AgentState.AVAILABLE


# ---- snapshots -------------------------------------------------------------------------------


def test_snapshots_report_plain_data(router):
    router.login("1002", {"support", "sales"}, now=0)
    router.login("1001", {"sales"}, now=1)
    router.pause("1001", "lunch", now=2)
    router.enqueue("c1", "sales", now=3, priority=1)  # rings 1002
    router.enqueue("c2", "sales", now=4)

    assert router.agents_snapshot(10) == [
        {
            "agent_id": "1001", "state": "paused", "since": 2, "seconds_in_state": 8, "idle_since": 1,
            "reason": "lunch", "queues": ["sales"], "skills": {}, "call_id": None, "calls_answered": 0,
            "calls_today": 0, "talk_today": 0.0, "wrapup_today": 0.0,
        },
        {
            "agent_id": "1002", "state": "reserved", "since": 3, "seconds_in_state": 7, "idle_since": 0,
            "reason": None, "queues": ["sales", "support"], "skills": {}, "call_id": "c1", "calls_answered": 0,
            "calls_today": 0, "talk_today": 0.0, "wrapup_today": 0.0,
        },
    ]
    # 2 staffed sales agents minus the paused one; 180 s per call before any call has ended
    assert router.queues_snapshot(10) == [
        {
            "queue": "sales",
            "strategy": "longest-idle",
            "waiting": [{"call_id": "c2", "priority": 0, "wait": 6, "requirement": "true"}],
            "ringing": [{"call_id": "c1", "priority": 1, "wait": 7, "agent_id": "1002"}],
            "agents_available": 0,
            "agents_staffed": 1,
            "agents_logged_in": 2,
            "estimated_wait": 2 * 180.0,
            "service_level": None,
            "service_level_target": 0.8,
            "service_level_seconds": 20.0,
        },
        {"queue": "support", "strategy": "longest-idle", "waiting": [], "ringing": [], "agents_available": 0,
         "agents_staffed": 1, "agents_logged_in": 1, "estimated_wait": 180.0, "service_level": None,
         "service_level_target": 0.8, "service_level_seconds": 20.0},
    ]
