"""Engines sharing queues (through Redis), seen from one engine without Redis: the router's
ELSEWHERE state (a call another engine holds), served_elsewhere, and the shell driving a fake
SharedOffers (claims refused or won, claims given back, shared event keys, another engine's legs,
a divert done once) and the resync ignoring another engine's legs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callcenter.acd.model import (
    AgentState,
    CallState,
    CancelOffer,
    Divert,
    Event,
    MaxWait,
    MaxWaitAction,
    Offer,
    QueueConfig,
    StartTimer,
)
from callcenter.acd.resync import AgentLegSeen, LiveChannel, parse_leg_id, plan_resync
from callcenter.acd.router import Router
from callcenter.acd.shell import FOREIGN_RELEASE_DELAY, AcdShell, leg_id
from callcenter.asterisk.ami import OriginateResult
from callcenter.desktop.service import DesktopService
from callcenter.events.log import EventLog, read_events
from callcenter.storage import make_engine
from tests.unit.test_acd_shell import Clock, ScriptedAmi, settle

RING = 15.0


def new_router(*queues, **kwargs) -> Router:
    return Router(list(queues) or ["support", "sales"], ring_timeout=RING, wrapup_seconds=0, **kwargs)


def events_of(effects) -> list[Event]:
    return [e for e in effects if isinstance(e, Event)]


def offers(effects) -> list[Offer]:
    return [e for e in effects if isinstance(e, Offer)]


def call_events(effects, call_id: str) -> list[Event]:
    return [e for e in effects if isinstance(e, Event) and e.call_id == call_id]


def held_elsewhere(router: Router, *agents: str, call_id: str = "c1", at: float = 10.0) -> list:
    """``agents`` logged in to support (in that order, one second apart, the first longest idle);
    ``call_id`` arrives at ``at`` and is offered to the first, whose claim another engine beat.
    Returns offer_claimed_elsewhere's effects."""
    for n, agent_id in enumerate(agents):
        router.login(agent_id, ["support"], 1.0 + n)
    effects = router.enqueue(call_id, "support", at)
    assert [o.agent_id for o in offers(effects)] == [agents[0]]
    assert router.call(call_id).offer_id == f"{call_id}/1"
    return router.offer_claimed_elsewhere(f"{call_id}/1", at + 1)


# ---------------------------------------------------------------- router: offer_claimed_elsewhere

def test_claimed_elsewhere_frees_the_agent_with_its_idle_time_and_logs_nothing_for_the_call():
    router = new_router()
    effects = held_elsewhere(router, "1001", "1002")
    assert StartTimer("elsewhere:c1", 11.0 + RING) in effects
    assert call_events(effects, "c1") == []          # the engine holding the call logs it
    assert offers(effects) == []                     # not offered to 1002 either
    assert [(e.kind, e.agent_id, e.data["state"]) for e in events_of(effects)] == [
        ("agent_state", "1001", "available")]
    call = router.call("c1")
    assert call.state is CallState.ELSEWHERE and call.agent_id is None and call.offer_id is None
    agent = router.agent("1001")
    assert agent.state is AgentState.AVAILABLE and agent.idle_since == 1.0  # ringing was not work
    assert agent.call_id is None and agent.offer_id is None
    assert router.agent("1002").state is AgentState.AVAILABLE
    # not in the waiting line here
    support = router.queues_snapshot(12.0)[0]
    assert support["waiting"] == [] and support["ringing"] == []


def test_a_call_held_elsewhere_is_offered_to_nobody_here_until_released():
    router = new_router()
    held_elsewhere(router, "1001", "1002")
    # agents becoming free do not take it
    assert offers(router.pause("1002", "lunch", 12.0)) == []
    assert offers(router.unpause("1002", 13.0)) == []
    assert offers(router.login("1003", ["support"], 14.0)) == []
    assert offers(router.set_profile("1001", 14.5, skills={"fr": 5})) == []
    # a newer caller goes ahead of it, to the longest idle agent
    later = router.enqueue("c2", "support", 15.0)
    assert [(o.call_id, o.agent_id) for o in offers(later)] == [("c2", "1001")]
    assert router.call("c1").state is CallState.ELSEWHERE
    # its step timer does nothing while it is held elsewhere
    assert router.timer_fired("step:c1", 16.0) == []
    # released: back in its place, offered at once to the longest idle agent left (1002)
    back = router.released_elsewhere("c1", 17.0)
    assert [(o.offer_id, o.agent_id) for o in offers(back)] == [("c1/2", "1002")]
    assert [e.kind for e in call_events(back, "c1")] == ["offered"]
    assert router.call("c1").state is CallState.RINGING
    # the retry timer, firing later, changes nothing: the call is no longer held elsewhere
    assert router.timer_fired("elsewhere:c1", 11.0 + RING) == []
    assert router.released_elsewhere("c1", 27.0) == []


def test_the_elsewhere_timer_offers_the_call_again():
    router = new_router()
    held_elsewhere(router, "1001", "1002")
    again = router.timer_fired("elsewhere:c1", 11.0 + RING)
    assert [(o.offer_id, o.agent_id) for o in offers(again)] == [("c1/2", "1001")]  # still the longest idle
    assert router.call("c1").state is CallState.RINGING


def test_released_elsewhere_puts_the_call_back_in_its_original_place():
    router = new_router()
    held_elsewhere(router, "1001")
    router.pause("1001", "lunch", 12.0)
    router.enqueue("c2", "support", 13.0)
    assert router.position(router.call("c2")) == 1
    assert router.released_elsewhere("c1", 14.0) == []  # nobody to offer it to: no effect but the requeue
    assert router.call("c1").state is CallState.WAITING
    assert router.position(router.call("c1")) == 1 and router.position(router.call("c2")) == 2
    assert [c["call_id"] for c in router.queues_snapshot(14.0)[0]["waiting"]] == ["c1", "c2"]


def test_claimed_elsewhere_with_a_stale_or_unknown_offer_id_is_ignored():
    router = new_router()
    held_elsewhere(router, "1001", "1002")
    assert router.offer_claimed_elsewhere("c1/1", 12.0) == []
    assert router.offer_claimed_elsewhere("nope/1", 12.0) == []
    router.released_elsewhere("c1", 13.0)  # offered again as c1/2
    assert router.offer_claimed_elsewhere("c1/1", 14.0) == []
    assert router.call("c1").state is CallState.RINGING and router.call("c1").offer_id == "c1/2"
    # released_elsewhere only concerns a call held elsewhere: not a ringing or waiting one
    assert router.released_elsewhere("c1", 15.0) == []
    router.enqueue("w1", "sales", 16.0)
    assert router.released_elsewhere("w1", 17.0) == [] and router.call("w1").state is CallState.WAITING
    assert router.released_elsewhere("unknown", 17.0) == []


def test_claimed_elsewhere_agent_takes_the_next_waiting_call_at_once():
    router = new_router()
    router.enqueue("c0", "support", 5.0)   # nobody yet
    router.enqueue("c1", "support", 6.0)
    router.login("1001", ["support"], 7.0)  # takes c0, the oldest
    assert router.call("c0").offer_id == "c0/1"
    effects = router.offer_claimed_elsewhere("c0/1", 8.0)
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("c1/1", "1001")]
    assert router.call("c0").state is CallState.ELSEWHERE


# ---------------------------------------------------------------- router: served_elsewhere

def test_served_elsewhere_removes_a_waiting_call_and_the_others_move_up():
    router = new_router()
    for n, call_id in enumerate(["c1", "c2", "c3"]):
        router.enqueue(call_id, "support", 10.0 + n)
    assert router.position(router.call("c3")) == 3
    effects = router.served_elsewhere("c2", 20.0)
    assert effects == [Event("served_elsewhere", "c2", "support", None, {"wait": 9.0})]
    assert router.call("c2") is None
    assert router.position(router.call("c3")) == 2 and router.position(router.call("c1")) == 1
    assert [c["call_id"] for c in router.queues_snapshot(20.0)[0]["waiting"]] == ["c1", "c3"]
    assert router.served_elsewhere("c2", 21.0) == []  # once
    # the queue's line is consistent: a new agent takes c1, then c3
    first = router.login("1001", ["support"], 22.0)
    assert [o.call_id for o in offers(first)] == ["c1"]
    assert router.estimated_wait("c3") is not None


def test_served_elsewhere_removes_a_call_held_elsewhere():
    router = new_router()
    held_elsewhere(router, "1001")
    effects = router.served_elsewhere("c1", 30.0)
    assert events_of(effects) == [Event("served_elsewhere", "c1", "support", None, {"wait": 20.0})]
    assert router.call("c1") is None
    assert router.timer_fired("elsewhere:c1", 26.0) == []
    assert router.released_elsewhere("c1", 31.0) == []


def test_served_elsewhere_ignores_a_call_connected_here():
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.enqueue("k1", "support", 11.0)
    router.offer_answered("k1/1", 12.0)
    assert router.served_elsewhere("k1", 13.0) == [] and router.call("k1").state is CallState.CONNECTED
    assert router.agent("1001").state is AgentState.ON_CALL
    assert router.served_elsewhere("unknown", 13.0) == []


def test_served_elsewhere_withdraws_an_offer_still_ringing_here_and_frees_the_agent():
    # both engines rang an agent for it (the shared store was away): the other one bridged first
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.enqueue("r1", "support", 10.0)
    router.enqueue("w2", "support", 11.0)             # waits behind r1
    effects = router.served_elsewhere("r1", 13.0)
    assert effects[0] == CancelOffer("r1/1", "r1", "1001")
    assert [e for e in events_of(effects) if e.call_id == "r1"] == [
        Event("served_elsewhere", "r1", "support", None, {"wait": 3.0})]
    assert not any(e.kind in ("abandoned", "ring_no_answer") for e in events_of(effects))
    assert router.call("r1") is None
    # the agent, blameless, takes the next caller at once, idle time intact
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("w2/1", "1001")]
    assert router.agent("1001").idle_since == 1.0
    assert router.offer_answered("r1/1", 14.0) == []  # the withdrawn offer is stale


def test_served_elsewhere_lets_an_agent_take_the_next_call():
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.pause("1001", "lunch", 2.0)
    router.enqueue("c1", "support", 10.0)
    router.enqueue("c2", "support", 11.0)
    router.served_elsewhere("c1", 12.0)
    back = router.unpause("1001", 13.0)
    assert [o.call_id for o in offers(back)] == ["c2"]


# ---------------------------------------------------------------- router: leaving while held elsewhere

@pytest.mark.parametrize("leave", ["abandon", "exit", "call_ended"])
def test_a_call_held_elsewhere_leaves_silently(leave):
    router = new_router()
    held_elsewhere(router, "1001", "1002")
    if leave == "abandon":
        effects = router.abandon("c1", 40.0)
    elif leave == "exit":
        effects = router.exit("c1", "fallback:heartbeat", 40.0)
    else:
        effects = router.call_ended("c1", 40.0)
    assert effects == []  # the engine holding it logs how it ended
    assert router.call("c1") is None
    # not an abandon of this engine's queue either (it waited 30 s: it would count)
    assert "service_level" not in router.queue_metrics("support")
    assert router.timer_fired("elsewhere:c1", 26.0) == []
    assert router.agent("1001").state is AgentState.AVAILABLE


def test_an_abandon_while_waiting_here_still_counts():
    router = new_router()
    router.enqueue("c1", "support", 10.0)
    assert [e.kind for e in router.abandon("c1", 40.0)] == ["abandoned"]
    assert router.queue_metrics("support")["service_level"] == 0.0


def voicemail_router() -> Router:
    return new_router(QueueConfig("support", max_wait=MaxWait(30, MaxWaitAction.VOICEMAIL)), "sales")


def test_max_wait_while_held_elsewhere_acts_once_the_call_is_released():
    router = voicemail_router()
    held_elsewhere(router, "1001", at=0.0)
    assert router.timer_fired("maxwait:c1", 30.0) == []
    assert router.call("c1").state is CallState.ELSEWHERE and router.call("c1").max_wait_due
    back = router.released_elsewhere("c1", 35.0)
    assert [e.kind for e in events_of(back) if e.call_id == "c1"] == ["exited"]
    assert events_of(back)[0].data["reason"] == "max_wait:voicemail"
    assert [d.destination for d in back if isinstance(d, Divert)] == ["voicemail"]
    assert offers(back) == []                   # not offered: it is on its way to voicemail
    assert router.call("c1") is None
    assert router.timer_fired("maxwait:c1", 36.0) == []


def test_max_wait_while_held_elsewhere_is_dropped_if_the_call_is_served_there():
    router = voicemail_router()
    held_elsewhere(router, "1001", at=0.0)
    router.timer_fired("maxwait:c1", 30.0)
    effects = router.served_elsewhere("c1", 31.0)
    assert [e.kind for e in events_of(effects)] == ["served_elsewhere"]
    assert not any(isinstance(e, Divert) for e in effects)


def test_max_wait_while_held_elsewhere_overflows_once_released():
    router = new_router(QueueConfig("support", max_wait=MaxWait(30, MaxWaitAction.OVERFLOW, "sales")), "sales")
    held_elsewhere(router, "1001", at=0.0)
    router.timer_fired("maxwait:c1", 30.0)
    back = router.released_elsewhere("c1", 31.0)
    assert [e.kind for e in events_of(back) if e.call_id == "c1"] == ["overflowed"]
    assert router.call("c1").queue == "sales" and router.call("c1").state is CallState.WAITING


# ---------------------------------------------------------------- shell with a fake SharedOffers

class FakeShared:
    """What AcdShell asks of SharedOffers. Claims answer ``outcomes[offer_id]`` (default "ours"),
    after ``gates[offer_id]`` is set if there is one; ``once`` is true only the first time."""

    def __init__(self, engine: str = "e1"):
        self.engine = engine
        self.outcomes: dict[str, str] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.claimed: list[tuple[str, str, str]] = []
        self.connected_offers: list[str] = []
        self.released: list[str] = []
        self.onces: list[str] = []

    async def claim(self, offer_id, call_id, agent_id):
        self.claimed.append((offer_id, call_id, agent_id))
        if offer_id in self.gates:
            await self.gates[offer_id].wait()
        return self.outcomes.get(offer_id, "ours")

    async def connected(self, offer_id):
        self.connected_offers.append(offer_id)

    async def release(self, offer_id):
        self.released.append(offer_id)

    async def once(self, action, ttl=60.0):
        first = action not in self.onces
        self.onces.append(action)
        return first


class RedirectingAmi(ScriptedAmi):
    async def redirect(self, channel, context, exten, priority=1, *, also=None):
        self.actions.append(("redirect", channel, context, exten))


class KeyedEvents:
    def __init__(self):
        self.rows: list[dict] = []

    def record(self, kind, **fields):
        self.rows.append({"kind": kind, **fields})

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.rows]

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.rows if r["kind"] == kind]


def shared_shell(*agents: str, engine: str = "e1", share: bool = True, events=None):
    """``events``: the event sink (default a new KeyedEvents); engines sharing queues may share one."""
    router = Router(["support"], ring_timeout=4, wrapup_seconds=0)
    ami, clock, fake = RedirectingAmi(), Clock(), FakeShared(engine)
    events = KeyedEvents() if events is None else events
    shell = AcdShell(router, ami, events, clock=clock)
    if share:
        shell.share(fake)
    for agent_id in agents:
        shell.apply(router.login(agent_id, ["support"], clock()))
        clock.now += 1
    return shell, router, ami, events, clock, fake


def originates(ami) -> list[tuple]:
    return [a for a in ami.actions if a[0] == "originate"]


def test_shell_call_taken_rings_nothing_logs_no_offer_and_holds_the_call_elsewhere():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001", "1002")
        fake.outcomes["c1/1"] = "call_taken"
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert fake.claimed == [("c1/1", "c1", "1001")]
        assert ami.actions == []                 # no CC_OFFER, no Originate
        assert "offered" not in events.kinds()
        assert router.call("c1").state is CallState.ELSEWHERE
        assert shell.legs == {}
        assert router.agent("1001").state is AgentState.AVAILABLE
        assert router.agent("1002").state is AgentState.AVAILABLE
        assert "elsewhere:c1" in shell._timers     # the retry is armed
        await shell.close()
    asyncio.run(scenario())


def test_shell_agent_taken_pauses_the_agent_busy_elsewhere_and_offers_the_call_on():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001", "1002")
        fake.outcomes["c1/1"] = "agent_taken"
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        agent = router.agent("1001")
        assert agent.state is AgentState.PAUSED and agent.pause_reason == "busy-elsewhere"
        assert [c[:3] for c in fake.claimed] == [("c1/1", "c1", "1001"), ("c1/2", "c1", "1002")]
        assert router.call("c1").state is CallState.RINGING and router.call("c1").agent_id == "1002"
        assert [a[1] for a in originates(ami)] == ["c1-o2.e1"]  # the refused offer never rang
        assert [r["data"]["offer_id"] for r in events.of("offered")] == ["c1/2"]
        await shell.close()
    asyncio.run(scenario())


def test_shell_ours_records_offered_once_the_claim_is_won_and_rings_the_engines_leg():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        fake.gates["c1/1"] = gate = asyncio.Event()
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert "offered" not in events.kinds() and originates(ami) == []  # still claiming
        gate.set()
        await settle()
        offered = events.of("offered")
        assert len(offered) == 1 and offered[0]["data"]["offer_id"] == "c1/1"
        assert offered[0]["agent_id"] == "1001" and offered[0]["key"] is None
        assert ami.actions[0] == ("setvar", "PJSIP/trunk-01", "CC_OFFER", "c1-o1.e1")
        assert originates(ami) == [("originate", "c1-o1.e1", {
            "CC_CALLID": "c1", "CC_AGENT": "1001", "CC_OFFER": "c1-o1.e1", "CC_CALLER_CHANNEL": "PJSIP/trunk-01"})]
        assert set(shell.legs) == {"c1-o1.e1"}
        ami.originates["c1-o1.e1"].set_result(OriginateResult(True, 4, "PJSIP/agent1001-1"))
        await settle()
        assert len(events.of("offered")) == 1
        await shell.close()
    asyncio.run(scenario())


def test_shell_a_claim_won_after_the_offer_was_withdrawn_rings_nothing_and_is_given_back():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        fake.gates["c1/1"] = gate = asyncio.Event()
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        shell.channel_hung_up("c1")            # the caller leaves while the claim is made
        gate.set()
        await settle()
        assert originates(ami) == [] and "offered" not in events.kinds()
        assert "c1/1" in fake.released and shell.legs == {}
        await shell.close()
    asyncio.run(scenario())


def test_shell_an_unanswered_legs_end_gives_the_claim_back():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001", "1002")
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert fake.released == []
        shell.channel_hung_up("c1-o1.e1")
        ami.originates["c1-o1.e1"].set_result(OriginateResult(False, 3, ""))
        await settle()
        assert fake.released == ["c1/1"]
        assert "c1-o1.e1" not in shell.legs and "c1-o2.e1" in shell.legs
        await shell.close()
    asyncio.run(scenario())


def test_shell_an_answered_call_keeps_its_claim_until_the_leg_hangs_up():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        shell.agent_answered("c1-o1.e1")
        shell.leg_bridged("c1-o1.e1")
        shell.leg_bridged("c1", "c1-o1.e1")     # the caller's own BridgeEnter, with our leg as its offer
        await settle()
        assert fake.connected_offers == ["c1/1"] and fake.released == []
        assert router.call("c1").state is CallState.CONNECTED
        assert "served_elsewhere" not in events.kinds()
        clock.now += 30
        shell.channel_hung_up("c1-o1.e1")
        await settle()
        assert fake.released == ["c1/1"]
        assert router.call("c1") is None and "ended" in events.kinds()
        await shell.close()
    asyncio.run(scenario())


def test_shell_caller_side_events_get_shared_keys_and_agent_events_do_not():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell()
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        shell.caller_waiting("c2", "support", 0, "PJSIP/trunk-02", "139")
        shell.caller_left("c1", "fallback:heartbeat")
        shell.apply(router.login("1001", ["support"], clock()))
        await settle()
        keys = {(r["kind"], r["call_id"]): r["key"] for r in events.rows}
        assert keys[("queued", "c1")] == "c1:queued:1"
        assert keys[("queued", "c2")] == "c2:queued:1"
        assert keys[("exited", "c1")] == "c1:exited:1"
        assert keys[("agent_state", None)] is None
        assert keys[("offered", "c2")] is None   # an agent's event: this engine's own
        # a second row of one kind for one call gets the next number (a callback queued again)
        shell.channel_hung_up("c2")
        shell.caller_waiting("c2", "support", 0, "PJSIP/trunk-02", "139")
        assert [r["key"] for r in events.of("queued") if r["call_id"] == "c2"] == ["c2:queued:1", "c2:queued:2"]
        await shell.close()
    asyncio.run(scenario())


def test_shell_alone_keeps_default_event_keys_and_plain_leg_ids():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001", share=False)
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert all(r.get("key") is None for r in events.rows)
        assert [a[1] for a in originates(ami)] == ["c1-o1"]
        assert fake.claimed == []
        await shell.close()
    asyncio.run(scenario())


def test_shell_another_engines_leg_hanging_up_releases_a_call_held_elsewhere():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        fake.outcomes["c1/1"] = "call_taken"
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert router.call("c1").state is CallState.ELSEWHERE
        shell.channel_hung_up("c1-o5.e1")          # a leg of ours we no longer follow: nothing
        await settle()
        assert router.call("c1").state is CallState.ELSEWHERE
        shell.channel_hung_up("c1-o1.otherengine")  # the holder's leg is gone: back here, a moment later
        await settle()
        assert router.call("c1").state is CallState.ELSEWHERE  # the holder gives its claim back first
        await asyncio.sleep(FOREIGN_RELEASE_DELAY + 0.1)
        await settle()
        assert router.call("c1").state is CallState.RINGING and router.call("c1").offer_id == "c1/2"
        assert fake.claimed[-1] == ("c1/2", "c1", "1001")
        assert [a[1] for a in originates(ami)] == ["c1-o2.e1"]
        assert [r["data"]["offer_id"] for r in events.of("offered")] == ["c1/2"]
        # the caller's own call is not ended by another engine's leg
        assert "abandoned" not in events.kinds()
        await shell.close()
    asyncio.run(scenario())


def test_shell_a_waiting_callers_bridge_elsewhere_removes_it_here():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell()
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        shell.caller_waiting("c2", "support", 0, "PJSIP/trunk-02", "139")
        clock.now += 7
        shell.leg_bridged("c1", "c1-o1.e2")     # the caller's CC_OFFER names e2's leg
        await settle()
        assert router.call("c1") is None and router.call("c2") is not None
        assert router.position(router.call("c2")) == 1
        served = events.of("served_elsewhere")
        assert [(r["call_id"], r["key"], r["data"]) for r in served] == [("c1", "c1:served_elsewhere:1", {"wait": 7.0})]
        # the caller's hang-up afterwards is nothing to this engine
        shell.channel_hung_up("c1")
        assert "abandoned" not in events.kinds()
        await shell.close()
    asyncio.run(scenario())


def test_shell_the_callers_bridge_to_our_own_leg_before_the_legs_own_bridge_is_not_elsewhere():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        shell.agent_answered("c1-o1.e1")
        shell.leg_bridged("c1", "c1-o1.e1")     # the caller's BridgeEnter comes first
        await settle()
        assert router.call("c1").state is CallState.RINGING
        assert "served_elsewhere" not in events.kinds() and fake.released == []
        shell.leg_bridged("c1-o1.e1", "c1-o1.e1")
        await settle()
        assert router.call("c1").state is CallState.CONNECTED and fake.connected_offers == ["c1/1"]
        await shell.close()
    asyncio.run(scenario())


def test_shell_a_caller_bridged_by_another_engine_while_ours_rings_withdraws_our_offer():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")   # claimed "unguarded" both sides
        await settle()
        assert set(shell.legs) == {"c1-o1.e1"}
        shell.leg_bridged("c1", "c1-o1.e2")
        await settle()
        assert router.call("c1") is None
        assert [r["key"] for r in events.of("served_elsewhere")] == ["c1:served_elsewhere:1"]
        assert ("hangup", "c1-o1.e1") in ami.actions
        assert fake.released == ["c1/1"]
        assert router.agent("1001").state is AgentState.AVAILABLE
        await shell.close()
    asyncio.run(scenario())


def test_shell_alone_ignores_unknown_bridges_and_other_engines_legs():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell(share=False)
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        shell.leg_bridged("c1")
        shell.channel_hung_up("c1-o1.other")
        await settle()
        assert router.call("c1").state is CallState.WAITING
        assert "served_elsewhere" not in events.kinds()
        await shell.close()
    asyncio.run(scenario())


def test_shell_a_divert_is_done_once_across_engines():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell()
        divert = Divert("c1", "support", "voicemail", {"caller_channel": "PJSIP/trunk-01"})
        shell.apply([divert])
        await settle()
        shell.apply([divert])
        await settle()
        assert fake.onces == ["divert:c1", "divert:c1"]
        assert [a for a in ami.actions if a[0] == "redirect"] == [("redirect", "PJSIP/trunk-01", "cc-divert",
                                                                   "voicemail")]
        await shell.close()
    asyncio.run(scenario())


# ---------------------------------------------------------------- shell: an offer is news once its claim is ours

def offer_news(seen) -> list[tuple[str, str]]:
    """What an observer was told of offers, in order: ("Offer", offer id), ("offered", offer id)."""
    return [("Offer", e.offer_id) if isinstance(e, Offer) else ("offered", e.data["offer_id"])
            for e in seen if isinstance(e, Offer) or (isinstance(e, Event) and e.kind == "offered")]


def watching_desks(shell, router, events) -> tuple[DesktopService, list]:
    """The agents' desks following the shell as the engine wires them (no CRM: a pop says
    "unavailable" at once), and every desk they pushed."""
    desk = DesktopService(router, events, None, dispositions=["resolved"], pause_reasons=["lunch"],
                          clock=shell.clock)
    pushed: list[tuple[str, dict]] = []
    desk.publish = lambda agent_id, event, data: pushed.append((agent_id, data))
    shell.observers.append(desk.on_effect)
    return desk, pushed


@pytest.mark.parametrize("outcome", ["call_taken", "agent_taken"])
def test_shell_an_offer_whose_claim_is_refused_never_reaches_the_observers_or_the_agents_desk(outcome):
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001", "1002")
        seen: list = []
        shell.observers.append(seen.append)
        desk, pushed = watching_desks(shell, router, events)
        fake.outcomes["c1/1"] = outcome
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        # no phantom ringing on 1001's desk, no screen pop: the call was never theirs to take
        assert not any(offer_id == "c1/1" for _, offer_id in offer_news(seen))
        assert desk.desk_view("1001")["call"] is None
        assert all(data["call"] is None for agent_id, data in pushed if agent_id == "1001")
        assert [r["agent_id"] for r in events.of("screen_pop")] == ([] if outcome == "call_taken" else ["1002"])
        if outcome == "agent_taken":  # offered on to 1002, whose claim is ours: news once
            assert sorted(offer_news(seen)) == [("Offer", "c1/2"), ("offered", "c1/2")]
            assert desk.desk_view("1002")["call"]["stage"] == "ringing"
        else:
            assert offer_news(seen) == [] and desk.desk_view("1002")["call"] is None
        await desk.close()
        await shell.close()
    asyncio.run(scenario())


def test_shell_observers_hear_of_a_won_offer_once_and_only_once_its_claim_answered():
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        seen: list = []
        shell.observers.append(seen.append)
        desk, pushed = watching_desks(shell, router, events)
        fake.gates["c1/1"] = gate = asyncio.Event()
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert fake.claimed == [("c1/1", "c1", "1001")]     # claiming: nothing to tell yet
        assert offer_news(seen) == [] and desk.desk_view("1001")["call"] is None
        assert events.of("screen_pop") == []
        gate.set()
        await settle()
        assert sorted(offer_news(seen)) == [("Offer", "c1/1"), ("offered", "c1/1")]
        call = desk.desk_view("1001")["call"]
        assert (call["call_id"], call["stage"]) == ("c1", "ringing")
        assert [r["agent_id"] for r in events.of("screen_pop")] == ["1001"]
        # the agent answers: still told once
        shell.agent_answered("c1-o1.e1")
        shell.leg_bridged("c1-o1.e1")
        await settle()
        assert sorted(offer_news(seen)) == [("Offer", "c1/1"), ("offered", "c1/1")]
        assert desk.desk_view("1001")["call"]["stage"] == "connected"
        await desk.close()
        await shell.close()
    asyncio.run(scenario())


# ---------------------------------------------------------------- shell: how a caller left, once across engines

@pytest.mark.parametrize("leaves", ["abandoned", "exited"])
def test_shell_how_a_caller_left_is_one_row_from_the_engine_ringing_an_agent_and_the_one_it_waits_on(
        leaves, tmp_path):
    async def scenario():
        db = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
        log = EventLog(db)
        e1, router1, _, _, _, _ = shared_shell("1001", engine="e1", events=log)   # rings 1001 for c1
        e2, router2, _, _, _, _ = shared_shell(engine="e2", events=log)           # c1 waits there
        told1: list = []
        e1.observers.append(told1.append)
        for shell in (e1, e2):
            shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert router1.call("c1").state is CallState.RINGING and router2.call("c1").state is CallState.WAITING
        for shell in (e1, e2):
            if leaves == "abandoned":
                shell.channel_hung_up("c1")
            else:
                shell.caller_left("c1", "fallback:heartbeat")
        await settle()
        # e1's event names the agent whose phone rang; it is the caller's news all the same
        assert [e.agent_id for e in told1 if isinstance(e, Event) and e.kind == leaves] == ["1001"]
        await e1.close()
        await e2.close()
        await log.close()
        rows = read_events(db, call_id="c1")
        db.dispose()
        return rows

    rows = asyncio.run(scenario())
    assert [r["event_key"] for r in rows if r["kind"] == leaves] == [f"c1:{leaves}:1"]
    assert [r["event_key"] for r in rows if r["kind"] == "queued"] == ["c1:queued:1"]


def test_shell_a_caller_leaving_while_the_claim_is_pending_names_no_agent():
    """The offer's claim has not answered when the caller hangs up: the phone never rang, so the
    abandon is a waiting caller's (no agent), whichever engine's row the database keeps."""
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        fake.gates["c1/1"] = asyncio.Event()  # the claim never answers in this test
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert router.call("c1").state is CallState.RINGING
        shell.channel_hung_up("c1")
        await settle()
        await shell.close()
        return events.rows

    rows = asyncio.run(scenario())
    abandoned = [r for r in rows if r["kind"] == "abandoned"]
    assert len(abandoned) == 1
    assert abandoned[0]["agent_id"] is None and abandoned[0]["data"]["stage"] == "waiting"
    assert abandoned[0]["key"] == "c1:abandoned:1"


# ---------------------------------------------------------------- shell: a claim answered after the offer was withdrawn

@pytest.mark.parametrize("withdraw", ["pause", "logout"])
@pytest.mark.parametrize("outcome", ["agent_taken", "call_taken", "ours"])
def test_shell_a_claim_answered_after_the_offer_was_withdrawn_is_ignored(outcome, withdraw, caplog):
    async def scenario():
        shell, router, ami, events, clock, fake = shared_shell("1001")
        seen: list = []
        shell.observers.append(seen.append)
        fake.gates["c1/1"] = gate = asyncio.Event()
        fake.outcomes["c1/1"] = outcome
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        clock.now += 1
        if withdraw == "pause":    # the agent steps away while the claim is being made
            shell.apply(router.pause("1001", "lunch", clock()))
        else:
            shell.apply(router.logout("1001", clock()))
        await settle()
        assert router.call("c1").state is CallState.WAITING
        released = len(fake.released)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            gate.set()
            await settle()
        agent = router.agent("1001")
        if withdraw == "pause":    # not paused "busy-elsewhere": the lunch stands
            assert agent.state is AgentState.PAUSED and agent.pause_reason == "lunch"
        else:                      # not paused at all (a logged-out agent cannot be: no RoutingError)
            assert agent.state is AgentState.LOGGED_OUT
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        # the call is not parked elsewhere: it waits here, first in line
        assert router.call("c1").state is CallState.WAITING and "elsewhere:c1" not in shell._timers
        assert router.position(router.call("c1")) == 1
        # nothing rang, nothing was news
        assert originates(ami) == [] and "offered" not in events.kinds() and offer_news(seen) == []
        assert shell.legs == {}
        if outcome == "ours":      # won after the withdrawal: given back, now that it is held
            assert fake.released[released:] == ["c1/1"]
        await shell.close()
    asyncio.run(scenario())


# ---------------------------------------------------------------- leg ids and the resync

def test_leg_ids_carry_the_engine_name_and_parse_back():
    assert leg_id("c1/2", "e1") == "c1-o2.e1" and leg_id("c1/2") == "c1-o2"
    assert parse_leg_id("c1-o2.e1") == ("c1", "c1/2", "e1")
    assert parse_leg_id("c1-o2") == ("c1", "c1/2", "")
    assert parse_leg_id("1711111111.42-o3.engine-b") == ("1711111111.42", "1711111111.42/3", "engine-b")
    assert parse_leg_id("1711111111.42") is None


def _caller(uid: str, bridge: str = "") -> LiveChannel:
    return LiveChannel(uniqueid=uid, channel=f"PJSIP/trunk-{uid}", context="cc-hold", state=6, bridge_id=bridge,
                       variables={"CC_CALLID": uid, "CC_QUEUE": "support"})


def _leg(uid: str, call_id: str, agent: str, state: int = 5) -> LiveChannel:
    return LiveChannel(uniqueid=uid, channel=f"PJSIP/agent{agent}-1", context="cc-agent-connect", state=state,
                       bridge_id="b1" if state == 6 else "", variables={"CC_CALLID": call_id, "CC_AGENT": agent})


def test_resync_follows_its_own_legs_and_leaves_other_engines_alone():
    router = Router(["support"], ring_timeout=4, wrapup_seconds=0)
    router.login("1001", ["support"], 1.0)
    router.login("1002", ["support"], 2.0)
    router.enqueue("c1", "support", 10.0)              # rings 1001 here (c1/1)
    router.enqueue("c2", "support", 11.0)              # offered to 1002, but e2 holds it
    router.offer_claimed_elsewhere("c2/1", 11.5)
    assert router.call("c2").state is CallState.ELSEWHERE
    channels = [_caller("c1"), _leg("c1-o1.e1", "c1", "1001"),
                _caller("c2"), _leg("c2-o1.e2", "c2", "1009"),             # e2 rings its agent
                _caller("c3", bridge="b1"), _leg("c3-o4.e2", "c3", "1010", state=6)]  # e2's conversation
    plan = plan_resync(channels, list(router.calls()), ["c1-o1.e1"], engine="e1")
    assert plan.still_ringing == [AgentLegSeen("c1-o1.e1", "c1/1", "c1", "1001", connected=False, queue="support")]
    assert plan.stray_legs == [] and plan.adopt_connected == []
    assert plan.lost_offers == [] and plan.gone_calls == []
    # the same channels seen by e2: e1's leg is not e2's business, e2's are
    plan_e2 = plan_resync(channels, [], [], engine="e2")
    assert plan_e2.stray_legs == ["c2-o1.e2"]
    assert [leg.uniqueid for leg in plan_e2.adopt_connected] == ["c3-o4.e2"]
    # an engine serving alone does not take named legs for its own
    alone = plan_resync(channels, list(router.calls()), [], engine="")
    assert alone.lost_offers == ["c1/1"] and alone.stray_legs == []
