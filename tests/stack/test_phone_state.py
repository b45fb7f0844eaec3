"""Agents' phones as Asterisk sees them, on the real stack: with ``phone_qualify_seconds`` set,
Asterisk checks every agent phone (SIP OPTIONS, which the SIPp phones answer) and the engine
pauses an agent whose phone stops answering (``phone-offline``), then makes them available again
when it answers. A phone that was already gone before the engine started is known from the
resync's DeviceStateList at its first login: the agent is paused as they log in."""

from __future__ import annotations

import asyncio
import time

import pytest

from callcenter.asterisk.process import AsteriskInstance
from callcenter.config import Settings
from tests.stack.conftest import TEST_SETTINGS, new_caller
from tests.stack.harness import write_settings

QUALIFY = 1


@pytest.fixture(scope="module")
def asterisk(stack_dir):
    """This module's Asterisk checks the agents' phones every second."""
    config = write_settings(stack_dir / "settings-phones.yaml", data_dir=stack_dir / "data", **TEST_SETTINGS,
                            phone_qualify_seconds=QUALIFY)
    instance = AsteriskInstance(Settings.load(config))
    instance.start()
    yield instance
    instance.stop()


def agent_state(engine, agent_id: str) -> dict:
    return next(a for a in engine.api("GET", "/api/agents") if a["agent_id"] == agent_id)


def wait_for_state(engine, agent_id: str, state: str, reason: str | None, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        seen = agent_state(engine, agent_id)
        if seen["state"] == state and seen["reason"] == reason:
            return seen
        assert time.monotonic() < deadline, f"agent {agent_id} is {seen['state']} ({seen['reason']}), not {state}"
        time.sleep(0.2)


def test_an_agent_whose_phone_stops_answering_is_paused_until_it_answers_again(
        asterisk, engine_with_routing, phones):
    time.sleep(QUALIFY + 3.5)  # Asterisk has found 1004's phone (never started) unreachable
    engine = engine_with_routing(None, phone_qualify_seconds=QUALIFY)
    resynced = engine.wait_for_event("resynced", timeout=10)
    assert resynced["data"]["phones"] >= 10, resynced["data"]  # every agent's device, read at the first login
    # gone before the engine started: known from the resync's device list, paused at login
    engine.login("1004", "support")
    assert agent_state(engine, "1004")["state"] == "paused"
    assert agent_state(engine, "1004")["reason"] == "phone-offline"
    # the phone comes up: Asterisk's next check answers, and the agent is available
    phone = phones("1004", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=800)
    wait_for_state(engine, "1004", "available", None, seconds=QUALIFY + 6)
    caller = new_caller("2", "13900000370", hold_ms=None, play_audio=False, max_wait_for_bye_ms=30_000)
    result = asyncio.run(caller.run(timeout=40))
    assert result.ok and result.received_bye_from_far_end, result.describe()
    call_id = engine.call_id_for("13900000370")
    assert engine.wait_for_event("answered", call_id=call_id)["agent_id"] == "1004"
    # the phone goes away while the agent is logged in: paused, and no call is offered to it
    phone.stop()
    wait_for_state(engine, "1004", "paused", "phone-offline", seconds=QUALIFY + 8)
    # a pause the agent chose is theirs: the phone coming back does not end it
    engine.api("POST", "/api/agents/1004/pause", {"reason": "lunch"})
    phones("1004", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=800)
    time.sleep(QUALIFY + 4)
    assert agent_state(engine, "1004")["reason"] == "lunch"
