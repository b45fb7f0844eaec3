"""Unit tests for the skills-based routing rules of the pure ACD router: requirement expressions,
widening steps (time and metric), every strategy, caller order (priority, queue weight, aging),
global dispatch, no-answer limits, wrap-up overrides, max wait, estimated wait, explanations,
reconfiguration, day rollover and re-skilling. Life-cycle basics are in test_acd_router.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from callcenter.acd.model import (
    AgentState,
    CallState,
    Divert,
    Effect,
    Event,
    MaxWait,
    MaxWaitAction,
    Offer,
    QueueConfig,
    RoutingError,
    StartTimer,
    Strategy,
)
from callcenter.acd.router import Router
from callcenter.acd.steps import Steps, validate_steps
from tests.unit.acd_effects import RING, WRAPUP, agent_state, ringing

EXAMPLE = "billing >= 5 and (lang.zh >= 3 or lang.en >= 3)"


def ladder(*rules: tuple[float | str, str]) -> Steps:
    """Widening steps from (after seconds, requirement) or ("metric op value", requirement)."""
    return validate_steps([{"when" if isinstance(t, str) else "after": t, "require": r} for t, r in rules])


WIDENING = ladder((0, "billing >= 7"), (30, "billing >= 3"), (90, "true"))


def make_router(*queues: str | QueueConfig, **options: Any) -> Router:
    return Router(queues, **{"ring_timeout": RING, "wrapup_seconds": WRAPUP, **options})


def queue(name: str = "q", **config: Any) -> QueueConfig:
    return QueueConfig(name, **config)


# ---- reading effects ---------------------------------------------------------------------------


def offered_to(effects: list[Effect]) -> list[tuple[str, str]]:
    return [(e.call_id, e.agent_id) for e in effects if isinstance(e, Offer)]


def only_offer(effects: list[Effect]) -> Offer:
    (offer,) = [e for e in effects if isinstance(e, Offer)]
    return offer


def events(effects: list[Effect], kind: str) -> list[Event]:
    return [e for e in effects if isinstance(e, Event) and e.kind == kind]


def why(effects: list[Effect]) -> dict[str, Any]:
    """The explanation of the one offer in ``effects``."""
    (event,) = events(effects, "offered")
    return event.data["why"]


def queued(call_id: str, queue_name: str, requirement: str, priority: int = 0) -> Event:
    return Event("queued", call_id, queue_name, None, {"priority": priority, "requirement": requirement})


def step_changed(call_id: str, queue_name: str, step: int, requirement: str, wait: float) -> Event:
    return Event("step_changed", call_id, queue_name, None, {"step": step, "requirement": requirement, "wait": wait})


# ---- driving the router ------------------------------------------------------------------------


def answer(router: Router, call_id: str, now: float) -> list[Effect]:
    call = router.call(call_id)
    assert call is not None and call.offer_id is not None, f"{call_id} is not ringing"
    return router.offer_answered(call.offer_id, now)


def pick(router: Router, call_id: str, queue_name: str, now: float) -> str:
    """Which agent a new caller is offered to; the caller then hangs up, so the agent is back
    in the pool with its idle time intact."""
    offer = only_offer(router.enqueue(call_id, queue_name, now))
    router.abandon(call_id, now)
    return offer.agent_id


def handle(router: Router, call_id: str, queue_name: str, now: float, talk: float) -> str:
    """A caller arrives, is answered at once, talks ``talk`` seconds; returns the agent."""
    offer = only_offer(router.enqueue(call_id, queue_name, now))
    router.offer_answered(offer.offer_id, now)
    router.call_ended(call_id, now + talk)
    return offer.agent_id


def waiting(router: Router, queue_name: str, now: float = 0) -> list[str]:
    (view,) = [q for q in router.queues_snapshot(now) if q["queue"] == queue_name]
    return [w["call_id"] for w in view["waiting"]]


# ---- skills and requirement expressions --------------------------------------------------------


def test_requirement_expression_offers_only_the_agent_that_satisfies_it():
    router = make_router(queue("billing", steps=ladder((0, EXAMPLE))))
    router.login("1001", {"billing"}, 0, skills={"billing": 9})  # speaks neither language
    router.login("1002", {"billing"}, 1, skills={"billing": 4, "lang.en": 9})  # billing too low
    router.login("1003", {"billing"}, 2, skills={"billing": 5, "lang.en": 3})
    assert offered_to(router.enqueue("c1", "billing", 3)) == [("c1", "1003")]
    assert offered_to(router.enqueue("c2", "billing", 4)) == []
    assert router.call("c2").state is CallState.WAITING


def test_an_agent_lacking_a_skill_is_not_level_zero():
    router = make_router(queue("zh", steps=ladder((0, "lang.zh < 3"))))
    router.login("1001", {"zh"}, 0, skills={"lang.en": 5})
    assert offered_to(router.enqueue("c1", "zh", 1)) == []
    assert offered_to(router.login("1002", {"zh"}, 2, skills={"lang.zh": 2})) == [("c1", "1002")]


# ---- widening steps ----------------------------------------------------------------------------


def test_time_step_widens_at_its_timer_offers_the_weaker_agent_and_arms_the_next():
    router = make_router(queue("billing", steps=WIDENING))
    router.login("1001", {"billing"}, 0, skills={"billing": 4})
    assert router.enqueue("c1", "billing", 100) == [queued("c1", "billing", "billing >= 7"), StartTimer("step:c1", 130)]
    assert router.call("c1").state is CallState.WAITING

    effects = router.timer_fired("step:c1", 130)
    assert effects == [
        step_changed("c1", "billing", 1, "billing >= 3", 30),
        StartTimer("step:c1", 190),
        *ringing("c1", 1, "billing", "1001"),
    ]
    assert why(effects)["trigger"] == "step_changed"
    assert router.call("c1").step_index == 1


def test_step_timer_widens_at_its_own_time_despite_float_rounding():
    router = make_router(queue("billing", steps=WIDENING))
    (timer,) = [e for e in router.enqueue("c1", "billing", 1000.1) if isinstance(e, StartTimer)]
    assert timer == StartTimer("step:c1", 1000.1 + 30)  # 1030.1 - 1000.1 < 30 in floats
    router.timer_fired(timer.key, timer.at)
    assert router.call("c1").requirement.describe() == "billing >= 3"


def test_ringing_call_rereads_its_step_when_the_offer_fails():
    router = make_router(queue("billing", steps=WIDENING))
    router.login("1001", {"billing"}, 0, skills={"billing": 8})
    router.login("1002", {"billing"}, 1, skills={"billing": 4})
    assert offered_to(router.enqueue("c1", "billing", 10)) == [("c1", "1001")]
    assert router.timer_fired("step:c1", 40) == []  # ringing: nothing to widen yet
    assert router.call("c1").step_index == 0

    effects = router.offer_failed("c1/1", "ring-no-answer", 45)
    assert effects == [
        Event("ring_no_answer", "c1", "billing", "1001", {"offer_id": "c1/1"}),
        agent_state("1001", "paused", "ring-no-answer"),
        step_changed("c1", "billing", 1, "billing >= 3", 35),  # widened while it rang
        StartTimer("step:c1", 100),
        *ringing("c1", 2, "billing", "1002"),
    ]
    assert (why(effects)["step"], why(effects)["requirement"]) == (1, "billing >= 3")


def test_re_adopted_caller_keeps_its_place_and_starts_at_its_due_step():
    router = make_router(queue("billing", steps=WIDENING))
    router.enqueue("new", "billing", 100)
    effects = router.enqueue("old", "billing", 140, enqueued_at=95)
    assert effects == [queued("old", "billing", "billing >= 3"), StartTimer("step:old", 185)]
    assert waiting(router, "billing") == ["old", "new"]


def test_a_calls_own_steps_replace_its_queues():
    router = make_router(queue("billing", steps=WIDENING))
    router.login("1001", {"billing"}, 0, skills={"billing": 4, "lang.zh": 6})
    own = ladder((0, "lang.zh >= 5"))
    assert router.enqueue("c1", "billing", 1, steps=own) == [
        queued("c1", "billing", "lang.zh >= 5"),
        *ringing("c1", 1, "billing", "1001"),
    ]


# Queue under pressure: a caller starts at billing >= 7 and widens to billing >= 3 while a new
# caller would wait more than 300 s (180 s per call, one agent: two waiting callers are enough).
# With 180 s per call and one staffed member who cannot take the call, a new caller behind n
# waiting ones expects (n + 1) x 180 s: it widens from the third caller on (540 s).
PRESSURE = ladder((0, "billing >= 7"), ("estimated_wait > 500", "billing >= 3"))


def test_estimated_wait_step_widens_waiting_callers_as_soon_as_more_callers_arrive():
    router = make_router(queue("billing", steps=PRESSURE))
    router.login("1001", {"billing"}, 0, skills={"billing": 2})  # staffed, never eligible
    assert router.enqueue("c1", "billing", 10) == [queued("c1", "billing", "billing >= 7")]
    # a new caller, behind c1: the free member is not free for it, so 2 x 180 s
    assert router.queue_metrics("billing") == {"estimated_wait": 360.0}

    # Counting c2 itself, a new caller would now wait 540 s: c2 starts wide and c1 widens.
    assert router.enqueue("c2", "billing", 20) == [
        queued("c2", "billing", "billing >= 3"),
        step_changed("c1", "billing", 1, "billing >= 3", 10),
    ]  # and no StartTimer: metric steps need none
    assert offered_to(router.login("1002", {"billing"}, 30, skills={"billing": 4})) == [("c1", "1002")]


def test_caller_whose_arrival_widens_the_queue_does_not_jump_ahead_of_older_callers():
    router = make_router(queue("billing", steps=PRESSURE))
    router.login("1001", {"billing"}, 0, skills={"billing": 4})
    router.enqueue("c1", "billing", 10)
    assert offered_to(router.enqueue("c2", "billing", 20)) == [("c1", "1001")]


def test_estimated_wait_step_narrows_again_when_the_wait_drops():
    router = make_router(queue("billing", steps=PRESSURE, initial_handle_seconds=300))
    router.login("1001", {"billing"}, 0, skills={"billing": 9})
    router.enqueue("c0", "billing", 1)
    answer(router, "c0", 6)  # the only agent is busy: 2 x 300 s for a caller after c1
    assert router.enqueue("c1", "billing", 10) == [queued("c1", "billing", "billing >= 3")]

    # A 15 s call plus 5 s wrap-up: 20 s per call now, so c1 + a new caller wait 40 s.
    effects = router.call_ended("c0", 21)
    assert effects == [
        Event("ended", "c0", "billing", "1001", {"talk": 15}),
        agent_state("1001", "wrap_up"),
        StartTimer("wrapup:1001", 26),
        step_changed("c1", "billing", 0, "billing >= 7", 11),
    ]
    assert router.queue_metrics("billing")["estimated_wait"] == 40.0


def test_metric_step_is_read_afresh_for_a_ladder_whose_callers_had_all_left():
    router = make_router(queue("billing", steps=PRESSURE))
    router.login("1001", {"billing"}, 0, skills={"billing": 2})  # staffed, never eligible
    vip = ladder((0, "has(vip)"))
    for call_id in ["x", "y"]:
        router.enqueue(call_id, "billing", 0, steps=vip)
    router.enqueue("a", "billing", 1)  # 2 callers ahead: widened at once
    for call_id in ["a", "x", "y"]:  # the last caller on PRESSURE leaves while the step holds
        router.abandon(call_id, 2)
    assert router.enqueue("b", "billing", 4) == [queued("b", "billing", "billing >= 7")]  # 360 s
    assert router.enqueue("c", "billing", 5) == [
        queued("c", "billing", "billing >= 3"),  # 540 s
        step_changed("b", "billing", 1, "billing >= 3", 1),
    ]  # as in a router that never saw "a"


def test_service_level_step_opens_the_queue_after_answers_that_waited_too_long():
    router = make_router(queue("billing", steps=ladder((0, "billing >= 7"), ("service_level < 0.8", "true"))))
    router.login("1001", {"billing"}, 0, skills={"billing": 9})
    router.login("1002", {"billing"}, 0, skills={"billing": 2})
    router.enqueue("c1", "billing", 1)  # rings 1001
    answer(router, "c1", 6)  # 5 s wait: within 20 s
    router.enqueue("c2", "billing", 10)
    router.enqueue("c3", "billing", 11)
    router.call_ended("c1", 60)
    router.timer_fired("wrapup:1001", 65)  # 1001 takes c2
    assert router.queue_metrics("billing")["service_level"] == 1.0

    effects = answer(router, "c2", 66)  # waited 56 s: service level 1 of 2
    assert effects == [
        Event("answered", "c2", "billing", "1001", {"offer_id": "c2/1", "wait": 56}),
        agent_state("1001", "on_call"),
        step_changed("c3", "billing", 1, "true", 55),
        *ringing("c3", 1, "billing", "1002"),
    ]
    assert router.queue_metrics("billing")["service_level"] == 0.5


# ---- strategies --------------------------------------------------------------------------------


def test_fewest_calls_beats_longest_idle_and_breaks_ties_by_idle_time():
    router = make_router(queue(strategy=Strategy.FEWEST_CALLS), wrapup_seconds=0)
    router.login("1001", {"q"}, 0)
    assert handle(router, "c1", "q", 10, talk=1) == "1001"  # 1 call, idle since 11
    router.login("1002", {"q"}, 20)
    assert handle(router, "c2", "q", 30, talk=1) == "1002"  # fewer calls, though idle less long
    assert handle(router, "c3", "q", 40, talk=1) == "1001"  # 1 call each: idle since 11 < 31
    assert [a.calls_today for a in sorted(router.agents(), key=lambda a: a.agent_id)] == [2, 1]


def test_fewest_calls_counts_answered_calls_not_offers():
    router = make_router(queue(strategy=Strategy.FEWEST_CALLS), max_no_answers=3)
    router.login("1001", {"q"}, 0)
    router.login("1002", {"q"}, 1)
    for n in range(3):  # 1001 is offered three calls and answers none
        assert pick(router, f"c{n}", "q", 2 + n) == "1001"
    assert router.agent("1001").calls_today == 0


def test_least_talk_time_beats_longest_idle_and_breaks_ties_by_idle_time():
    router = make_router(queue(strategy=Strategy.LEAST_TALK_TIME), wrapup_seconds=0)
    for n, agent_id in enumerate(["1001", "1002", "1003"]):
        router.login(agent_id, {"q"}, n)
    served = [
        handle(router, "c1", "q", 10, talk=100),  # all at 0 s: longest idle, 1001
        handle(router, "c2", "q", 200, talk=30),  # 1002 (0 s, idle since 1)
        handle(router, "c3", "q", 300, talk=30),  # 1003 (0 s)
        handle(router, "c4", "q", 400, talk=30),  # 30 s each for 1002/1003: 1002 idle longer
    ]
    assert served == ["1001", "1002", "1003", "1002"]
    assert router.agent("1001").talk_today == 100


def test_round_robin_rotates_in_agent_id_order_and_wraps():
    router = make_router(queue(strategy=Strategy.ROUND_ROBIN))
    for n, agent_id in enumerate(["1003", "1001", "999"]):  # login order is not rotation order
        router.login(agent_id, {"q"}, n)
    assert [pick(router, f"c{n}", "q", 10 + n) for n in range(5)] == ["999", "1001", "1003", "999", "1001"]


def test_round_robin_skips_unavailable_and_ineligible_agents_and_resumes_after_the_last():
    router = make_router(queue(strategy=Strategy.ROUND_ROBIN, steps=ladder((0, "has(billing)"))))
    for agent_id in ["1001", "1002", "1003", "1004"]:
        router.login(agent_id, {"q"}, 0, skills={} if agent_id == "1003" else {"billing": 5})
    assert pick(router, "c1", "q", 1) == "1001"
    router.pause("1002", "lunch", 2)
    assert pick(router, "c2", "q", 3) == "1004"  # 1002 paused, 1003 unskilled
    router.unpause("1002", 4)
    router.logout("1004", 5)
    assert pick(router, "c3", "q", 6) == "1001"  # after 1004 (gone) comes 1001
    assert pick(router, "c4", "q", 7) == "1002"



def test_round_robin_moves_on_when_an_agent_takes_a_waiting_call_on_becoming_free():
    router = make_router(queue(strategy=Strategy.ROUND_ROBIN))
    for agent_id in ["1001", "1002", "1003"]:
        router.login(agent_id, {"q"}, 0)
    router.pause("1003", "break", 0)
    assert pick(router, "c1", "q", 1) == "1001"
    for call_id in ["c2", "c3", "c4"]:  # 1001 and 1002 ring, c4 waits
        router.enqueue(call_id, "q", 2)
    assert offered_to(router.unpause("1003", 3)) == [("c4", "1003")]  # the rotation is now at 1003
    for call_id in ["c2", "c3", "c4"]:
        router.abandon(call_id, 4)
    assert pick(router, "c5", "q", 5) == "1001"  # after 1003 comes 1001, not 1002

BEST = queue("billing", strategy=Strategy.BEST_PROFICIENCY, steps=ladder((0, EXAMPLE)))
# Scores for EXAMPLE (docs/skills.md): 15, 13, 8 and no match.
PROFICIENCY = {
    "1001": {"billing": 5, "lang.en": 3},
    "1002": {"billing": 10, "lang.zh": 3},
    "1003": {"billing": 6, "lang.zh": 9, "lang.en": 4},
    "1004": {"billing": 4, "lang.zh": 10},
}


def login_proficiency(router: Router) -> None:
    for n, (agent_id, skills) in enumerate(PROFICIENCY.items()):
        router.login(agent_id, {"billing"}, n, skills=skills)


def test_best_proficiency_offers_the_highest_score_and_explains_winner_and_runner_up():
    router = make_router(BEST)
    login_proficiency(router)
    effects = router.enqueue("c1", "billing", 10)
    assert offered_to(effects) == [("c1", "1003")]
    assert why(effects) == {
        "trigger": "call_arrived",
        "strategy": "best-proficiency",
        "step": 0,
        "requirement": EXAMPLE,
        "available_members": 4,
        "eligible_available": 3,  # 1004's billing 4 is below the step
        "examined": 2,  # the index is sorted by score: winner and runner-up are its first two
        "winner": {"agent_id": "1003", "score": 15, "idle_since": 2, "calls_today": 0, "talk_today": 0.0},
        "runner_up": {"agent_id": "1002", "score": 13, "idle_since": 1, "calls_today": 0, "talk_today": 0.0},
    }


def test_best_proficiency_tie_goes_to_the_longest_idle():
    router = make_router(BEST)
    router.login("1001", {"billing"}, 5, skills={"billing": 7, "lang.en": 5})
    router.login("1002", {"billing"}, 3, skills={"billing": 5, "lang.zh": 7})  # also 12, idle longer
    assert pick(router, "c1", "billing", 10) == "1002"


def weighted_picks(seed: int, count: int, weights: dict[str, float]) -> list[str]:
    router = make_router(queue(strategy=Strategy.RANDOM_WEIGHTED), seed=seed)
    for agent_id, weight in weights.items():
        router.login(agent_id, {"q"}, 0, weight=weight)
    return [pick(router, f"c{n}", "q", 1 + n) for n in range(count)]


def test_random_weighted_is_reproducible_with_the_same_seed():
    weights = {"1001": 1, "1002": 1, "1003": 1}
    first = weighted_picks(7, 50, weights)
    assert weighted_picks(7, 50, weights) == first
    assert weighted_picks(8, 50, weights) != first
    assert set(first) == set(weights)


def test_random_weighted_respects_the_weights():
    counts = Counter(weighted_picks(1, 2000, {"1001": 1, "1002": 3, "1003": 6}))
    for agent_id, expected in {"1001": 200, "1002": 600, "1003": 1200}.items():
        assert abs(counts[agent_id] - expected) <= 80, counts


def test_random_weighted_uses_a_changed_weight_and_never_an_ineligible_agent():
    router = make_router(queue(strategy=Strategy.RANDOM_WEIGHTED, steps=ladder((0, "has(billing)"))))
    router.login("1001", {"q"}, 0, skills={"billing": 1})
    router.login("1002", {"q"}, 0, skills={"billing": 1})
    router.login("1003", {"q"}, 0, weight=1000)  # no billing
    router.set_profile("1002", 1, weight=1000)
    counts = Counter(pick(router, f"c{n}", "q", 2 + n) for n in range(300))
    assert counts["1003"] == 0 and counts["1002"] >= 290, counts


# ---- caller order ------------------------------------------------------------------------------


def test_queue_weight_adds_to_priority_for_an_agent_serving_several_queues():
    router = make_router("std", queue("gold", weight=2))
    router.enqueue("std-p1", "std", 0, priority=1)
    router.enqueue("gold-p0", "gold", 10)  # 0 + 2 beats 1
    router.enqueue("std-p3", "std", 20, priority=3)  # 3 beats 0 + 2
    served = [offered_to(router.login(agent_id, {"std", "gold"}, 30)) for agent_id in ["1001", "1002", "1003"]]
    assert served == [[("std-p3", "1001")], [("gold-p0", "1002")], [("std-p1", "1003")]]


@pytest.mark.parametrize(
    "later_arrival, expected",
    [(61, ["p0", "p1"]), (60, ["p0", "p1"]), (59, ["p1", "p0"])],
    ids=["61s-after-goes-after", "60s-after-tie-keeps-arrival-order", "59s-after-goes-before"],
)
def test_priority_aging_makes_one_priority_level_worth_its_seconds(later_arrival, expected):
    router = make_router("q", priority_aging_seconds=60)
    router.enqueue("p0", "q", 0)
    router.enqueue("p1", "q", later_arrival, priority=1)
    assert waiting(router, "q", 100) == expected
    assert offered_to(router.login("1001", {"q"}, 100)) == [(expected[0], "1001")]


# ---- global dispatch: an agent who becomes available takes its best call across queues -------


AGENT = "1001"


def become_available_by(trigger: str) -> tuple[Callable[[Router], None], Callable[[Router], list[Effect]]]:
    """(what happens before the callers arrive, the event that makes the agent available)."""
    def login(router: Router, now: float) -> list[Effect]:
        return router.login(AGENT, {"sales", "support"}, now, skills={"lang.en": 5})

    def ring_first(router: Router) -> None:
        login(router, 0)
        router.enqueue("first", "sales", 0.5)  # rings the agent

    def wrap_up(router: Router) -> None:
        ring_first(router)
        answer(router, "first", 0.6)
        router.call_ended("first", 0.7)

    def pause(router: Router) -> None:
        login(router, 0)
        router.pause(AGENT, "lunch", 0.5)

    return {
        "login": (lambda router: None, lambda router: login(router, 10)),
        "unpause": (pause, lambda router: router.unpause(AGENT, 10)),
        "wrap-up end": (wrap_up, lambda router: router.timer_fired(f"wrapup:{AGENT}", 10)),
        "ring-no-answer under the limit": (
            ring_first, lambda router: router.offer_failed("first/1", "ring-no-answer", 10)),
    }[trigger]


@pytest.mark.parametrize("trigger", ["login", "unpause", "wrap-up end", "ring-no-answer under the limit"])
def test_agent_becoming_available_takes_the_best_eligible_call_across_all_its_queues(trigger):
    before, make_available = become_available_by(trigger)
    router = make_router("sales", "support", max_no_answers=2)
    before(router)
    router.enqueue("zh", "support", 1, priority=2, steps=ladder((0, "lang.zh >= 3")))  # best, but not for this agent
    router.enqueue("support-old", "support", 2)
    router.enqueue("sales-vip", "sales", 4, priority=1)
    router.enqueue("sales-new", "sales", 5)
    assert offered_to(make_available(router)) == [("sales-vip", AGENT)]


# ---- consecutive no-answers --------------------------------------------------------------------


def test_first_no_answer_under_the_limit_keeps_the_agent_available_at_the_back_of_the_line():
    router = make_router("q", max_no_answers=2)
    router.login("1001", {"q"}, 0)
    router.login("1002", {"q"}, 1)
    router.enqueue("c1", "q", 2)  # rings 1001
    effects = router.offer_failed("c1/1", "ring-no-answer", 17)
    assert effects == [
        Event("ring_no_answer", "c1", "q", "1001", {"offer_id": "c1/1"}),
        *ringing("c1", 2, "q", "1002"),
        agent_state("1001", "available"),
    ]
    agent = router.agent("1001")
    assert (agent.state, agent.idle_since, agent.consecutive_no_answers) == (AgentState.AVAILABLE, 17, 1)
    router.login("1003", {"q"}, 10)
    assert pick(router, "c2", "q", 20) == "1003"  # idle since 10, before 1001's 17


def test_second_consecutive_no_answer_pauses_the_agent():
    router = make_router("q", max_no_answers=2)
    router.login("1001", {"q"}, 0)
    router.enqueue("c1", "q", 1)
    assert offered_to(router.offer_failed("c1/1", "ring-no-answer", 16)) == [("c1", "1001")]  # the only agent
    assert router.offer_failed("c1/2", "ring-no-answer", 31) == [
        Event("ring_no_answer", "c1", "q", "1001", {"offer_id": "c1/2"}),
        agent_state("1001", "paused", "ring-no-answer"),
    ]
    assert router.call("c1").state is CallState.WAITING


def test_agent_kept_available_after_a_no_answer_takes_a_better_caller_that_arrived_meanwhile():
    router = make_router("q", max_no_answers=2)
    router.login("1001", {"q"}, 0)
    router.enqueue("c1", "q", 1)  # rings 1001
    router.enqueue("vip", "q", 5, priority=5)
    assert offered_to(router.offer_failed("c1/1", "ring-no-answer", 16)) == [("vip", "1001")]
    assert waiting(router, "q") == ["c1"]


@pytest.mark.parametrize("reason", ["busy", "unreachable"])
def test_busy_or_unreachable_pauses_at_once_whatever_the_limit(reason):
    router = make_router("q", max_no_answers=3)
    router.login("1001", {"q"}, 0)
    router.enqueue("c1", "q", 1)
    assert router.offer_failed("c1/1", reason, 2)[1] == agent_state("1001", "paused", reason)


def test_an_answer_resets_the_no_answer_count():
    router = make_router("q", max_no_answers=2, wrapup_seconds=0)
    router.login("1001", {"q"}, 0)
    router.enqueue("c1", "q", 1)
    router.offer_failed("c1/1", "ring-no-answer", 16)  # 1 of 2; c1 rings 1001 again
    answer(router, "c1", 20)
    router.call_ended("c1", 30)
    router.enqueue("c2", "q", 31)
    router.offer_failed("c2/1", "ring-no-answer", 46)  # 1 of 2 again, not 2 of 2
    assert router.agent("1001").state is AgentState.RESERVED  # ringing c2 once more


# ---- wrap-up -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrapup, after_end",
    [(0, [agent_state("1001", "available")]), (30, [agent_state("1001", "wrap_up"), StartTimer("wrapup:1001", 130)])],
)
def test_per_agent_wrapup_overrides_the_default(wrapup, after_end):
    router = make_router("q")
    router.login("1001", {"q"}, 0, wrapup_seconds=wrapup)
    router.enqueue("c1", "q", 1)
    answer(router, "c1", 50)
    assert router.call_ended("c1", 100) == [Event("ended", "c1", "q", "1001", {"talk": 50}), *after_end]


def test_set_profile_changes_the_agents_wrapup():
    router = make_router("q")
    router.login("1001", {"q"}, 0)
    router.set_profile("1001", 1, wrapup_seconds=12)
    router.enqueue("c1", "q", 2)
    answer(router, "c1", 3)
    assert router.call_ended("c1", 10)[-1] == StartTimer("wrapup:1001", 22)


# ---- max wait ----------------------------------------------------------------------------------


def overflow_router() -> Router:
    return make_router(
        queue("main", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "overflow_queue")),
        queue("overflow_queue", steps=ladder((0, "billing >= 7"), (30, "true"))),
    )


def test_overflow_keeps_the_callers_place_but_starts_the_new_queues_steps_at_the_move():
    router = overflow_router()
    assert router.enqueue("c1", "main", 0) == [queued("c1", "main", "true"), StartTimer("maxwait:c1", 60)]
    router.enqueue("local", "overflow_queue", 10)
    assert router.timer_fired("maxwait:c1", 60) == [
        Event("overflowed", "c1", "overflow_queue", None, {"from": "main", "to": "overflow_queue", "wait": 60}),
        StartTimer("step:c1", 90),
    ]
    call = router.call("c1")
    assert (call.queue, call.enqueued_at, call.requirement.describe()) == ("overflow_queue", 0, "billing >= 7")
    assert waiting(router, "main") == [] and waiting(router, "overflow_queue") == ["c1", "local"]
    assert offered_to(router.login("1001", {"overflow_queue"}, 70, skills={"billing": 9})) == [("c1", "1001")]


def test_overflow_counts_as_a_missed_call_in_the_source_queues_service_level():
    router = overflow_router()
    router.enqueue("c1", "main", 0)
    assert "service_level" not in router.queue_metrics("main")
    router.timer_fired("maxwait:c1", 60)
    assert router.queue_metrics("main")["service_level"] == 0.0
    assert "service_level" not in router.queue_metrics("overflow_queue")  # not decided there yet

def test_a_waiting_callers_estimate_ignores_free_members_who_cannot_take_it():
    router = make_router(queue("billing", steps=ladder((0, "billing >= 7"))))
    router.login("1001", {"billing"}, 0, skills={"billing": 2})  # free, but not for billing >= 7
    router.enqueue("c1", "billing", 1)
    assert router.estimated_wait("c1") == 180.0  # waits for a member to finish a call, not 0 s

def test_overflow_drops_the_calls_own_steps():
    router = overflow_router()
    router.enqueue("c1", "main", 0, steps=ladder((0, "has(vip)")))
    router.timer_fired("maxwait:c1", 60)
    assert router.call("c1").steps == router.queue_config("overflow_queue").steps


def test_a_calls_own_max_wait_replaces_its_queues_and_is_dropped_on_overflow():
    router = overflow_router()
    own = MaxWait(20, MaxWaitAction.OVERFLOW, "overflow_queue")
    assert router.enqueue("c1", "main", 0, max_wait=own) == [queued("c1", "main", "true"), StartTimer("maxwait:c1", 20)]
    assert router.timer_fired("maxwait:c1", 19) == []  # a stale timer does nothing
    moved = router.timer_fired("maxwait:c1", 20)
    assert events(moved, "overflowed")[0].data == {"from": "main", "to": "overflow_queue", "wait": 20}
    assert router.call("c1").max_wait_override is None


def test_a_calls_own_max_wait_can_divert_from_a_queue_without_one():
    router = make_router(queue("main"))
    router.enqueue("c1", "main", 0, max_wait=MaxWait(45, MaxWaitAction.VOICEMAIL))
    assert router.timer_fired("maxwait:c1", 45)[-1] == Divert("c1", "main", "voicemail", {})
    with pytest.raises(RoutingError, match="unknown queue 'nowhere'"):
        router.enqueue("c2", "main", 0, max_wait=MaxWait(45, MaxWaitAction.OVERFLOW, "nowhere"))


@pytest.mark.parametrize("action", [MaxWaitAction.VOICEMAIL, MaxWaitAction.FALLBACK])
def test_max_wait_diverts_the_caller_out_of_the_acd(action):
    router = make_router(queue("main", max_wait=MaxWait(60, action)))
    router.enqueue("c1", "main", 0, attrs={"caller": "+33123"})
    router.enqueue("c2", "main", 30)
    assert router.timer_fired("maxwait:c1", 60) == [
        Event("exited", "c1", "main", None, {"reason": f"max_wait:{action.value}", "wait": 60, "stage": "waiting"}),
        Divert("c1", "main", action.value, {"caller": "+33123"}),
    ]
    assert router.call("c1") is None and waiting(router, "main") == ["c2"]
    assert router.queue_metrics("main")["service_level"] == 0.0  # not served in time


def max_wait_ringing_router() -> Router:
    router = make_router(queue("main", max_wait=MaxWait(60, MaxWaitAction.VOICEMAIL)))
    router.enqueue("c1", "main", 0)
    router.login("1001", {"main"}, 50)  # rings c1
    assert router.timer_fired("maxwait:c1", 60) == []
    return router


def test_max_wait_reached_while_ringing_does_nothing_if_the_agent_answers():
    router = max_wait_ringing_router()
    answer(router, "c1", 62)
    assert router.call("c1").state is CallState.CONNECTED


def test_max_wait_reached_while_ringing_acts_when_the_offer_fails():
    router = max_wait_ringing_router()
    assert router.offer_failed("c1/1", "ring-no-answer", 65) == [
        Event("ring_no_answer", "c1", "main", "1001", {"offer_id": "c1/1"}),
        agent_state("1001", "paused", "ring-no-answer"),
        Event("exited", "c1", "main", None, {"reason": "max_wait:voicemail", "wait": 65, "stage": "waiting"}),
        Divert("c1", "main", "voicemail", {}),
    ]
    assert router.call("c1") is None


def test_re_adopted_caller_past_max_wait_is_diverted_and_the_queue_figures_settle():
    service = ladder((0, "billing >= 7"), ("service_level < 0.8", "true"))
    router = make_router(queue("main", steps=service, max_wait=MaxWait(60, MaxWaitAction.VOICEMAIL)))
    router.login("1001", {"main"}, 0, skills={"billing": 2})
    router.enqueue("c0", "main", 150)
    effects = router.enqueue("old", "main", 200, enqueued_at=100)
    assert [e.kind for e in effects if isinstance(e, Event)][:2] == ["queued", "exited"]
    # The divert missed the service level: the queue opens to everyone at once.
    assert offered_to(effects) == [("c0", "1001")]


@pytest.mark.parametrize(
    "configs, message",
    [
        ([queue("a", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "b")),
          queue("b", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "a"))], "circle"),
        ([queue("a", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "b")),
          queue("b", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "c")),
          queue("c", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "b"))], "circle"),
        ([queue("a", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "nowhere"))], "unknown queue 'nowhere'"),
    ],
    ids=["two-queue-cycle", "cycle-further-down", "unknown-target"],
)
def test_overflow_configuration_is_refused_by_the_router_and_by_reconfigure(configs, message):
    with pytest.raises(RoutingError, match=message):
        make_router(*configs)
    router = make_router("a")
    with pytest.raises(RoutingError, match=message):
        router.reconfigure(configs, 1)
    assert router.queues == ("a",) and router.queue_config("a").max_wait is None


def test_max_wait_itself_is_validated():
    with pytest.raises(RoutingError, match="itself"):
        queue("a", max_wait=MaxWait(60, MaxWaitAction.OVERFLOW, "a"))
    with pytest.raises(RoutingError, match="target"):
        MaxWait(60, MaxWaitAction.OVERFLOW)
    with pytest.raises(RoutingError, match="target"):
        MaxWait(60, MaxWaitAction.VOICEMAIL, "a")
    with pytest.raises(RoutingError, match="positive"):
        MaxWait(0, MaxWaitAction.VOICEMAIL)


# ---- estimated wait ----------------------------------------------------------------------------


def test_estimated_wait_uses_the_average_handle_time_of_ended_calls():
    router = make_router(queue(initial_handle_seconds=180), wrapup_seconds=10)
    router.login("1001", {"q"}, 0, wrapup_seconds=20)
    router.login("1002", {"q"}, 0)
    router.enqueue("c1", "q", 0)  # 1001
    router.enqueue("c2", "q", 0)  # 1002
    answer(router, "c1", 0)
    answer(router, "c2", 0)
    router.enqueue("w1", "q", 1)
    assert router.estimated_wait("w1") == 1 * 180 / 2  # no call ended yet: the configured guess
    assert router.queue_metrics("q") == {"estimated_wait": 2 * 180 / 2, "service_level": 1.0}

    router.call_ended("c1", 50)  # handle 50 + 1001's own 20 s wrap-up = 70
    router.call_ended("c2", 80)  # handle 80 + the default 10 s = 90
    for n in (2, 3):
        router.enqueue(f"w{n}", "q", 81)
    # Average handle 80 s, 2 agents staffed (both in wrap-up), none available.
    assert [router.estimated_wait(f"w{n}") for n in (1, 2, 3)] == [40.0, 80.0, 120.0]
    assert router.queue_metrics("q")["estimated_wait"] == 160.0
    assert router.explain("w2", 82)["estimated_wait"] == 80.0


def test_estimated_wait_without_staff_ringing_or_unknown():
    router = make_router("q")
    router.enqueue("c1", "q", 0)
    assert router.estimated_wait("c1") is None and router.queue_metrics("q") == {}
    router.login("1001", {"q"}, 1)  # rings c1
    assert router.estimated_wait("c1") == 0.0
    assert router.estimated_wait("nope") is None


# ---- explanations ------------------------------------------------------------------------------


def test_explain_lists_eligible_members_by_state_and_the_next_step():
    router = make_router(queue("billing", steps=WIDENING), "other")
    router.login("1001", {"billing"}, 0, skills={"billing": 9})
    router.enqueue("c0", "billing", 1)
    answer(router, "c0", 2)  # 1001 on a call
    router.login("1002", {"billing"}, 3, skills={"billing": 8})
    router.pause("1002", "lunch", 4)
    router.login("1003", {"billing"}, 5, skills={"billing": 4})
    router.pause("1003", "lunch", 6)
    router.login("1004", {"other"}, 7, skills={"billing": 9})  # not a member
    router.enqueue("c1", "billing", 10)
    assert router.explain("c1", 25) == {
        "call_id": "c1",
        "queue": "billing",
        "state": "waiting",
        "priority": 0,
        "waited": 15,
        "in_queue_for": 15,
        "position": 1,
        "estimated_wait": 180.0,  # one staffed agent (on a call), nobody available
        "step": {"index": 0, "rule": "after 0s: billing >= 7"},
        "steps": ["after 0s: billing >= 7", "after 30s: billing >= 3", "after 90s: true"],
        "requirement": "billing >= 7",
        "next_step_at": 40,
        "eligible_members": {"on_call": ["1001"], "paused": ["1002"]},
        "ineligible_members": 1,
        "agent_id": None,
    }
    assert router.explain("gone", 25) is None


def test_agent_driven_offer_explains_which_calls_were_considered():
    router = make_router("sales", "support")
    router.enqueue("s1", "sales", 1)
    router.enqueue("t1", "support", 2, priority=1)
    explanation = why(router.login("1001", {"sales", "support"}, 10))
    assert explanation["trigger"] == "agent_available"
    assert explanation["winner"] == {"agent_id": "1001", "score": 0}
    assert [c["call_id"] for c in explanation["calls_considered"]] == ["t1", "s1"]
    assert explanation["runner_up_call"] == "s1"


# ---- reconfigure -------------------------------------------------------------------------------


def test_reconfigure_moves_waiting_calls_to_new_steps_including_widening_already_due():
    router = make_router(queue("billing", steps=ladder((0, "billing >= 7"))))
    router.login("1001", {"billing"}, 0, skills={"billing": 4})
    router.enqueue("c1", "billing", 0)
    router.enqueue("c2", "billing", 5)
    effects = router.reconfigure([queue("billing", steps=WIDENING)], 50)
    assert effects == [
        Event("routing_reconfigured", data={"queues": ["billing"]}),
        StartTimer("step:c1", 90),
        StartTimer("step:c2", 95),
        *ringing("c1", 1, "billing", "1001"),
    ]
    assert why(effects)["trigger"] == "reconfigured"
    call = router.call("c2")
    assert (call.enqueued_at, call.requirement.describe()) == (5, "billing >= 3")


def test_reconfigure_changes_the_strategy():
    router = make_router("q")
    router.login("1003", {"q"}, 0)
    router.login("1001", {"q"}, 1)
    assert pick(router, "c1", "q", 2) == "1003"
    router.reconfigure([queue(strategy=Strategy.ROUND_ROBIN)], 3)
    assert pick(router, "c2", "q", 4) == "1001"


def test_reconfigure_changes_queue_weight_and_reorders_waiting_callers():
    router = make_router("std", "gold")
    router.enqueue("std", "std", 0)
    router.enqueue("gold", "gold", 5)
    router.reconfigure(["std", queue("gold", weight=1)], 6)
    assert offered_to(router.login("1001", {"std", "gold"}, 7)) == [("gold", "1001")]


def test_reconfigure_applies_a_max_wait_that_has_already_passed():
    router = make_router("main")
    router.enqueue("c1", "main", 0)
    assert router.reconfigure([queue("main", max_wait=MaxWait(60, MaxWaitAction.VOICEMAIL))], 100) == [
        Event("routing_reconfigured", data={"queues": ["main"]}),
        Event("exited", "c1", "main", None, {"reason": "max_wait:voicemail", "wait": 100, "stage": "waiting"}),
        Divert("c1", "main", "voicemail", {}),
    ]
    assert router.call("c1") is None


def test_reconfigure_that_drops_max_wait_cancels_it_for_a_call_ringing_past_it():
    router = max_wait_ringing_router()
    router.reconfigure(["main"], 61)
    assert offered_to(router.offer_failed("c1/1", "busy", 65)) == []
    assert router.call("c1").state is CallState.WAITING


def test_reconfigure_that_removes_a_queue_with_calls_is_refused_and_changes_nothing():
    router = make_router("sales", "support")
    router.login("1001", {"sales", "support"}, 0)
    router.pause("1001", "lunch", 1)
    router.enqueue("c1", "support", 2)
    with pytest.raises(RoutingError, match="support"):
        router.reconfigure([queue("sales", strategy=Strategy.ROUND_ROBIN)], 3)
    assert router.queues == ("sales", "support")
    assert router.queue_config("sales").strategy is Strategy.LONGEST_IDLE
    assert router.agent("1001").queues == {"sales", "support"}
    assert waiting(router, "support") == ["c1"]
    assert offered_to(router.unpause("1001", 4)) == [("c1", "1001")]


# ---- day rollover ------------------------------------------------------------------------------


def busy_yesterday(strategy: Strategy) -> Router:
    """1001 handles two calls on day 0 (days are 100 s long here), alone."""
    router = make_router(queue(strategy=strategy), wrapup_seconds=0, day_of=lambda t: int(t // 100))
    router.login("1001", {"q"}, 0)
    handle(router, "c1", "q", 10, talk=5)
    handle(router, "c2", "q", 20, talk=5)
    assert (router.agent("1001").calls_today, router.agent("1001").talk_today) == (2, 10)
    return router


@pytest.mark.parametrize("strategy", [Strategy.FEWEST_CALLS, Strategy.LEAST_TALK_TIME])
def test_todays_figures_restart_on_a_new_day(strategy):
    router = busy_yesterday(strategy)
    router.pause("1001", "break", 140)
    router.unpause("1001", 145)
    router.login("1002", {"q"}, 150)
    agent = router.agent("1001")
    assert (agent.calls_today, agent.talk_today) == (0, 0)
    assert handle(router, "c3", "q", 160, talk=5) == "1001"  # tie today: idle since 145 < 150
    assert (agent.calls_today, agent.talk_today) == (1, 5)


@pytest.mark.parametrize("strategy", [Strategy.FEWEST_CALLS, Strategy.LEAST_TALK_TIME])
def test_todays_figures_restart_for_an_agent_idle_across_the_day_change(strategy):
    router = busy_yesterday(strategy)
    router.login("1002", {"q"}, 150)
    assert handle(router, "c3", "q", 160, talk=5) == "1001"  # 0 each today; 1001 idle since 25


# ---- re-skilling -------------------------------------------------------------------------------


def test_raising_an_available_agents_skill_offers_the_waiting_call_at_once():
    router = make_router(queue("billing", steps=ladder((0, "billing >= 5"))))
    router.login("1001", {"billing"}, 0, skills={"billing": 3})
    router.enqueue("c1", "billing", 1)
    assert router.set_profile("1001", 2, skills={"billing": 6}) == [
        Event("agent_profile", None, None, "1001", {"queues": ["billing"], "skills": {"billing": 6}}),
        *ringing("c1", 1, "billing", "1001"),
    ]


def test_lowering_an_agents_skill_applies_to_the_next_call():
    router = make_router(queue("billing", strategy=Strategy.BEST_PROFICIENCY, steps=ladder((0, "billing >= 5"))))
    router.login("1001", {"billing"}, 0, skills={"billing": 9})
    router.login("1002", {"billing"}, 1, skills={"billing": 6})
    assert pick(router, "c1", "billing", 2) == "1001"
    router.set_profile("1001", 3, skills={"billing": 5})
    assert pick(router, "c2", "billing", 4) == "1002"
    router.set_profile("1001", 5, skills={"billing": 4})
    router.logout("1002", 6)
    assert offered_to(router.enqueue("c3", "billing", 7)) == []
