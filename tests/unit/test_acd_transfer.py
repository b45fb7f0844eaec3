"""Blind transfer to one agent, as the router sees it: the identity skill and the steps that ask for
it first, then widen to the queue's own steps."""

from __future__ import annotations

import pytest

from callcenter.acd.config import RoutingConfigError, load_routing
from callcenter.acd.model import Offer
from callcenter.acd.router import Router
from callcenter.acd.steps import validate_steps
from callcenter.acd.transfer import identity_skill, steps_to_agent, with_identity


def offers(effects) -> list[str]:
    return [e.agent_id for e in effects if isinstance(e, Offer)]


def test_the_steps_ask_for_the_agent_then_widen_to_the_queues_own():
    queue_steps = validate_steps([{"after": 0, "require": "billing >= 5"}, {"after": 60, "require": "true"}])
    steps = steps_to_agent("1002", queue_steps, exclusive_seconds=30)
    assert steps.describe() == ["after 0s: agent.1002 >= 1", "after 30s: billing >= 5", "after 90s: true"]
    with pytest.raises(ValueError):
        steps_to_agent("1002", queue_steps, exclusive_seconds=0)


def test_a_transferred_call_waits_for_its_agent_even_when_another_is_free():
    router = Router(["support"], ring_timeout=10, wrapup_seconds=0)
    for agent_id in ("1001", "1002", "1003"):
        router.login(agent_id, ["support"], 0.0, skills=with_identity(agent_id, {"tech": 5}))
    effects = router.enqueue("c1", "support", 10.0, steps=steps_to_agent("1003", router.queue_config("support").steps))
    assert offers(effects) == ["1003"], "longest idle would be 1001; the transfer names 1003"


def test_while_the_agent_is_busy_the_call_goes_to_the_queue_after_the_exclusive_time():
    router = Router(["support"], ring_timeout=10, wrapup_seconds=0)
    for agent_id in ("1001", "1002"):
        router.login(agent_id, ["support"], 0.0, skills=with_identity(agent_id, None))
    router.pause("1002", "break", 1.0)
    effects = router.enqueue("c1", "support", 10.0,
                             steps=steps_to_agent("1002", router.queue_config("support").steps, exclusive_seconds=30))
    assert offers(effects) == [], "1001 is free but not the one asked for"
    timers = [e for e in effects if type(e).__name__ == "StartTimer"]
    (step_timer,) = [t for t in timers if t.key.startswith("step:")]
    assert step_timer.at == pytest.approx(40.0)
    assert offers(router.timer_fired(step_timer.key, 40.0)) == ["1001"]


def test_the_identity_skill_is_hidden_from_views_and_refused_in_the_routing_file(tmp_path):
    router = Router(["support"], ring_timeout=10, wrapup_seconds=0)
    router.login("1001", ["support"], 0.0, skills=with_identity("1001", {"tech": 5}))
    assert router.agent("1001").skills[identity_skill("1001")] == 10
    assert router.agent_snapshot("1001", 1.0)["skills"] == {"tech": 5}
    routing = tmp_path / "routing.yaml"
    routing.write_text('queues: {support: {}}\nagents:\n  "1001": {queues: [support], skills: {agent.1002: 5}}\n')
    with pytest.raises(RoutingConfigError, match="agent.1002.*engine's own"):
        load_routing(routing)
