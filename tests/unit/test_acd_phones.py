"""Agents' phones as Asterisk reports them (DeviceStateChange / DeviceStateList) and what the router
does with it: a phone that stops answering pauses its agent (phone-offline) until it answers again."""

from __future__ import annotations

import pytest

from callcenter.acd.model import AgentState, CallState, CancelOffer, Offer
from callcenter.acd.phones import device_agent, reachable
from callcenter.acd.router import PHONE_OFFLINE, Router
from tests.unit.acd_effects import RING, WRAPUP


@pytest.fixture
def router() -> Router:
    return Router(["support"], ring_timeout=RING, wrapup_seconds=WRAPUP)


@pytest.mark.parametrize("device, agent", [("PJSIP/agent1001", "1001"), (" PJSIP/agent123456 ", "123456"),
                                           ("PJSIP/agent12", None), ("PJSIP/trunk-out", None), ("SIP/agent1001", None),
                                           ("PJSIP/agent1001-00000001", None), ("", None)])
def test_device_agent_names_only_agents_phones(device, agent):
    assert device_agent(device) == agent


@pytest.mark.parametrize("state, expected", [("NOT_INUSE", True), ("INUSE", True), ("RINGING", True), ("BUSY", True),
                                             ("ONHOLD", True), ("unavailable", False), ("INVALID", False),
                                             ("UNKNOWN", None), ("", None)])
def test_reachable_reads_the_device_state(state, expected):
    assert reachable(state) is expected


def test_an_available_agent_whose_phone_goes_is_paused_and_back_when_it_answers(router):
    router.login("1001", ["support"], 0.0)
    paused = router.phone_reachability("1001", False, 1.0)
    assert [(e.kind, e.data) for e in paused] == [("agent_state", {"state": "paused", "reason": PHONE_OFFLINE})]
    assert router.phone_reachability("1001", False, 2.0) == []  # still gone: nothing new
    back = router.phone_reachability("1001", True, 3.0)
    assert [(e.kind, e.data["state"]) for e in back] == [("agent_state", "available")]
    assert router.agent("1001").state is AgentState.AVAILABLE


def test_a_ringing_offer_to_a_phone_that_went_goes_back_to_the_caller(router):
    router.login("1001", ["support"], 0.0)
    router.login("1002", ["support"], 0.5)
    effects = router.enqueue("c1", "support", 1.0)
    assert [o.agent_id for o in effects if isinstance(o, Offer)] == ["1001"]
    effects = router.phone_reachability("1001", False, 2.0)
    assert any(isinstance(e, CancelOffer) and e.agent_id == "1001" for e in effects)
    assert [o.agent_id for o in effects if isinstance(o, Offer)] == ["1002"]  # offered on at once
    assert router.call("c1").state is CallState.RINGING


def test_a_pause_the_agent_chose_and_a_call_are_left_alone(router):
    router.login("1001", ["support"], 0.0)
    router.pause("1001", "lunch", 1.0)
    assert router.phone_reachability("1001", False, 2.0) == []
    assert router.phone_reachability("1001", True, 3.0) == []
    assert router.agent("1001").pause_reason == "lunch"
    router.login("1002", ["support"], 0.0)
    router.enqueue("c2", "support", 4.0)
    router.offer_answered("c2/1", 5.0)
    assert router.phone_reachability("1002", False, 6.0) == []
    assert router.agent("1002").state is AgentState.ON_CALL


def test_agents_not_logged_in_are_ignored(router):
    assert router.phone_reachability("1009", False, 1.0) == []
    router.login("1001", ["support"], 0.0)
    router.logout("1001", 1.0)
    assert router.phone_reachability("1001", False, 2.0) == []
