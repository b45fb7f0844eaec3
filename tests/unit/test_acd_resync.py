"""The resync after an AMI gap: the pure planner (acd.resync), the router's offer_lost and
adopt_connected, the shell carrying a plan out (with the scripted AMI of test_acd_shell), and
the AMI client's list action and lost-connection failure against a loopback AMI peer.

Calls are made through a real Router so that their states are the router's own.
"""

from __future__ import annotations

import asyncio

import pytest

from callcenter.acd.model import AgentState, CallState, Event, Offer, RoutingError
from callcenter.acd.resync import (
    AgentLegSeen,
    LiveChannel,
    ResyncPlan,
    WaitingCaller,
    parse_variables,
    plan_resync,
)
from callcenter.acd.router import Router
from callcenter.acd.shell import AcdShell
from callcenter.asterisk.ami import (
    AmiClient,
    AmiConnectionLost,
    AmiIncompleteList,
    AmiNotConnected,
)
from tests.unit.test_acd_shell import Clock, Events, ScriptedAmi, ringing, settle

UP, RINGING = 6, 5


# ---------------------------------------------------------------- channels and router states

def caller_channel(uid: str, queue: str = "support", *, context: str = "cc-hold", bridge: str = "",
                   state: int = UP, **variables: str) -> LiveChannel:
    """A caller's channel as cc-ivr leaves it: CC_CALLID is its own uniqueid."""
    return LiveChannel(uniqueid=uid, channel=f"PJSIP/trunk-{uid}", context=context, state=state,
                       bridge_id=bridge, variables={"CC_CALLID": uid, "CC_QUEUE": queue, **variables},
                       caller_number="5550100", caller_name="Ann")


def leg_channel(call_id: str, n: int, agent: str, *, state: int = RINGING, callid: str | None = None,
                uid: str | None = None) -> LiveChannel:
    """An agent leg the shell originated (uniqueid "<call>-o<n>")."""
    return LiveChannel(uniqueid=uid or f"{call_id}-o{n}", channel=f"PJSIP/agent{agent}-0000001",
                       context="cc-agent-connect", state=state, bridge_id="b1" if state == UP else "",
                       variables={"CC_CALLID": call_id if callid is None else callid, "CC_AGENT": agent})


def new_router(**kwargs) -> Router:
    return Router(["support", "sales"], ring_timeout=4, wrapup_seconds=0, **kwargs)


def kinds(effects) -> list[str]:
    return [e.kind for e in effects if isinstance(e, Event)]


def offers(effects) -> list[Offer]:
    return [e for e in effects if isinstance(e, Offer)]


def states_of(effects, agent_id: str) -> list[str]:
    return [e.data["state"] for e in effects
            if isinstance(e, Event) and e.kind == "agent_state" and e.agent_id == agent_id]


def router_with_calls() -> Router:
    """support: r1 ringing agent 1001 (offer r1/1), k1 connected to agent 1002 (offer k1/1);
    sales (nobody serves it): w1 waiting inbound, d1 a waiting dial-out."""
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.login("1002", ["support"], 2.0)
    router.enqueue("r1", "support", 10.0)
    router.enqueue("k1", "support", 11.0)
    router.offer_answered("k1/1", 12.0)
    router.enqueue("w1", "sales", 13.0)
    router.enqueue("d1", "sales", 14.0, attrs={"dial_out": {"kind": "callback", "number": "5550199"}})
    assert router.call("r1").state is CallState.RINGING and router.call("r1").offer_id == "r1/1"
    assert router.call("r1").agent_id == "1001"
    assert router.call("k1").state is CallState.CONNECTED and router.call("k1").agent_id == "1002"
    assert router.call("w1").state is CallState.WAITING and router.call("d1").state is CallState.WAITING
    return router


def plan_for(router: Router, channels, watched=(), **kwargs) -> ResyncPlan:
    return plan_resync(channels, list(router.calls()), watched, **kwargs)


# Every channel the router's calls need to be "kept": the callers, r1's ringing leg, k1's Up leg.
def agreeing_channels() -> list[LiveChannel]:
    return [caller_channel("r1"), leg_channel("r1", 1, "1001"),
            caller_channel("k1", bridge="b1"), leg_channel("k1", 1, "1002", state=UP),
            caller_channel("w1", "sales")]


# ---------------------------------------------------------------- plan_resync

def test_an_unknown_caller_in_the_hold_loop_is_adopted_with_its_own_enqueue_time_and_priority():
    router = new_router()
    hold = caller_channel("u1", "sales", CC_ENQUEUED_AT="1234.5", CC_PRIORITY="3")
    announcing = caller_channel("u2", "support", context="cc-announce")
    plan = plan_for(router, [hold, announcing])
    assert plan.adopt_waiting == [
        WaitingCaller("u1", "sales", 3, 1234.5, "PJSIP/trunk-u1", "5550100", "Ann"),
        WaitingCaller("u2", "support", 0, None, "PJSIP/trunk-u2", "5550100", "Ann"),
    ]
    assert plan.gone_calls == [] and plan.adopt_connected == [] and plan.stray_legs == []


def test_a_caller_in_a_bridge_or_outside_the_hold_loop_or_without_a_queue_is_not_waiting():
    router = new_router()
    bridged = caller_channel("u1", "sales", bridge="bridge-7", CC_ENQUEUED_AT="1234.5")
    in_ivr = caller_channel("u2", "sales", context="cc-ivr")
    no_queue = caller_channel("u3", "", CC_ENQUEUED_AT="1234.5")
    plan = plan_for(router, [bridged, in_ivr, no_queue])
    assert plan.adopt_waiting == []
    assert plan == ResyncPlan()


def test_a_known_waiting_inbound_call_without_its_channel_is_gone_but_a_waiting_dial_out_is_kept():
    router = router_with_calls()
    everything = plan_for(router, agreeing_channels())
    assert everything.gone_calls == [] and everything.kept == 3  # k1, w1, d1 (r1 rings on)
    assert [s.offer_id for s in everything.still_ringing] == ["r1/1"]

    without_w1 = [c for c in agreeing_channels() if c.uniqueid != "w1"]
    plan = plan_for(router, without_w1)
    assert plan.gone_calls == ["w1"]           # the caller left during the gap
    assert plan.kept == 2                      # k1, and d1 which has no channel until it is dialled
    assert plan.adopt_waiting == []


def test_a_ringing_call_whose_leg_is_missing_is_a_lost_offer():
    router = router_with_calls()
    channels = [c for c in agreeing_channels() if c.uniqueid != "r1-o1"]
    plan = plan_for(router, channels)
    assert plan.lost_offers == ["r1/1"]
    assert plan.answered_in_gap == [] and plan.still_ringing == []


def test_a_ringing_call_whose_leg_is_up_was_answered_in_the_gap():
    router = router_with_calls()
    channels = [c for c in agreeing_channels() if c.uniqueid != "r1-o1"] + [leg_channel("r1", 1, "1001", state=UP)]
    plan = plan_for(router, channels)
    assert plan.answered_in_gap == [AgentLegSeen("r1-o1", "r1/1", "r1", "1001", connected=True, queue="support")]
    assert plan.still_ringing == [] and plan.lost_offers == []
    assert plan.adopt_connected == [] and plan.stray_legs == []  # our own leg, not a stranger


def test_a_ringing_call_whose_leg_is_not_up_still_rings():
    router = router_with_calls()
    for state in (0, 4, RINGING):  # Down, Ring, Ringing: anything but Up
        channels = [c for c in agreeing_channels() if c.uniqueid != "r1-o1"] + [leg_channel("r1", 1, "1001",
                                                                                            state=state)]
        plan = plan_for(router, channels)
        assert [(s.uniqueid, s.connected) for s in plan.still_ringing] == [("r1-o1", False)], state
        assert plan.answered_in_gap == [] and plan.lost_offers == [] and plan.stray_legs == []


def test_a_connected_call_is_kept_with_its_up_leg_and_gone_without_it():
    router = router_with_calls()
    assert plan_for(router, agreeing_channels()).gone_calls == []

    no_leg = [c for c in agreeing_channels() if c.uniqueid != "k1-o1"]
    assert plan_for(router, no_leg).gone_calls == ["k1"]

    # its leg still there but no longer Up (being torn down): not a conversation any more
    leg_down = no_leg + [leg_channel("k1", 1, "1002", state=0)]
    plan = plan_for(router, leg_down)
    assert plan.gone_calls == ["k1"]
    assert plan.adopt_connected == []


def test_an_unknown_up_leg_is_adopted_with_the_queue_of_its_callers_channel():
    router = new_router()
    channels = [caller_channel("x1", "sales", bridge="b9"), leg_channel("x1", 3, "1003", state=UP),
                leg_channel("x2", 1, "1004", state=UP)]  # x2's caller is not (or no longer) there
    plan = plan_for(router, channels)
    assert plan.adopt_connected == [
        AgentLegSeen("x1-o3", "x1/3", "x1", "1003", connected=True, queue="sales"),
        AgentLegSeen("x2-o1", "x2/1", "x2", "1004", connected=True, queue=""),
    ]
    assert plan.adopt_waiting == [] and plan.stray_legs == [] and plan.gone_calls == []


def test_an_unknown_ringing_leg_is_a_stray_to_hang_up():
    router = router_with_calls()
    channels = agreeing_channels() + [leg_channel("z9", 1, "1009"),
                                      leg_channel("r1", 7, "1005")]  # an old offer of a known call
    plan = plan_for(router, channels)
    assert sorted(plan.stray_legs) == ["r1-o7", "z9-o1"]
    assert plan.adopt_connected == []
    # a leg the shell watches for a call it knows is left to its own events
    plan = plan_for(router, channels, watched={"r1-o7"})
    assert plan.stray_legs == ["z9-o1"]


def test_channels_hung_up_since_the_read_are_never_adopted():
    router = router_with_calls()
    channels = agreeing_channels() + [caller_channel("u1", "sales"), caller_channel("x1", bridge="b9"),
                                      leg_channel("x1", 1, "1003", state=UP), leg_channel("z9", 1, "1009")]
    assert len(plan_for(router, channels).adopt_waiting) == 1  # the control: u1 would be adopted
    plan = plan_for(router, channels, gone_since_read=["u1", "x1-o1", "z9-o1"])
    assert plan.adopt_waiting == [] and plan.adopt_connected == [] and plan.stray_legs == []
    assert plan.gone_calls == [] and plan.kept == 3


def test_channels_of_other_kinds_are_ignored():
    router = new_router()
    channels = [
        # a Local channel that inherited the caller's variables: its uniqueid is its own
        LiveChannel("1700000000.41", "Local/s@cc-divert-00000001;1", "cc-hold", UP, "",
                    {"CC_CALLID": "c1", "CC_QUEUE": "support"}),
        # a supervisor listening in: an agent variable, but not a leg's uniqueid
        LiveChannel("1700000000.42", "PJSIP/agent1900-00000002", "cc-supervise", UP, "b1",
                    {"CC_AGENT": "1900", "CC_CALLID": "c1"}),
        # leg-shaped uniqueids whose CC_CALLID does not match, or with no agent
        leg_channel("m1", 1, "1001", state=UP, callid="m9"),
        leg_channel("m2", 1, "1001", callid=""),
        LiveChannel("m3-o1", "PJSIP/agent1001-00000003", "cc-agent-connect", UP, "b2", {"CC_CALLID": "m3"}),
        # no variables at all
        LiveChannel("1700000000.43", "PJSIP/trunk-00000004", "from-trunk", RINGING, "", {}),
    ]
    assert plan_for(router, channels) == ResyncPlan()


# ---------------------------------------------------------------- parse_variables, LiveChannel

def test_parse_variables_reads_repeated_headers_a_single_string_and_values_with_equals():
    assert parse_variables({"ChanVariable": ["CC_CALLID=1700.5", "CC_QUEUE=support", "CC_OFFER="]}) == {
        "CC_CALLID": "1700.5", "CC_QUEUE": "support", "CC_OFFER": ""}
    assert parse_variables({"ChanVariable": "CC_QUEUE=sales"}) == {"CC_QUEUE": "sales"}
    assert parse_variables({"ChanVariable": ["CC_ANNOUNCE=a=b", "X==y"]}) == {"CC_ANNOUNCE": "a=b", "X": "=y"}
    assert parse_variables({"ChanVariable": "CC_ANNOUNCE=you are number=2"}) == {"CC_ANNOUNCE": "you are number=2"}


def test_parse_variables_of_nothing_is_empty():
    assert parse_variables({}) == {}
    assert parse_variables({"ChanVariable": ""}) == {}
    assert parse_variables({"ChanVariable": []}) == {}
    assert parse_variables({"ChanVariable": ["no equals sign"]}) == {}


def test_live_channel_from_event_drops_unknown_caller_ids_and_unreadable_states():
    event = {"Uniqueid": "1700.5", "Channel": "PJSIP/trunk-1", "Context": "cc-hold", "ChannelState": "Up",
             "CallerIDNum": "<unknown>", "CallerIDName": "<unknown>"}
    channel = LiveChannel.from_event(event, {"CC_QUEUE": " support "})
    assert channel.caller_number == "" and channel.caller_name == ""
    assert channel.state == -1 and channel.bridge_id == ""
    assert channel.var("CC_QUEUE") == "support" and channel.var("CC_MISSING") == ""
    assert LiveChannel.from_event({**event, "ChannelState": ""}, {}).state == -1
    known = LiveChannel.from_event({**event, "ChannelState": "6", "BridgeId": "b-1", "CallerIDNum": "5550100",
                                    "CallerIDName": "Ann"}, {})
    assert (known.state, known.bridge_id, known.caller_number, known.caller_name) == (6, "b-1", "5550100", "Ann")


# ---------------------------------------------------------------- Router.offer_lost

def test_offer_lost_puts_the_agent_back_available_without_counting_a_no_answer():
    router = new_router(max_no_answers=3)
    router.login("1001", ["support"], 1.0)
    router.login("1002", ["support"], 2.0)
    router.enqueue("c0", "support", 5.0)
    router.offer_failed("c0/1", "ring-no-answer", 9.0)  # 1001 missed one: counted, not paused yet
    # c0 went to 1002 at once; end it so that both are free again (1001 is still the longest idle)
    router.offer_answered("c0/2", 9.5)
    router.call_ended("c0", 9.8)
    assert router.agent("1001").consecutive_no_answers == 1
    idle_since = router.agent("1001").idle_since
    effects = router.enqueue("c1", "support", 10.0)
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("c1/1", "1001")]

    effects = router.offer_lost("c1/1", 20.0)
    assert kinds(effects)[0] == "offer_lost"
    lost = effects[0]
    assert (lost.call_id, lost.agent_id, lost.data) == ("c1", "1001", {"offer_id": "c1/1"})
    agent = router.agent("1001")
    assert agent.state is AgentState.AVAILABLE and agent.pause_reason is None
    assert "available" in states_of(effects, "1001") and "paused" not in states_of(effects, "1001")
    assert agent.consecutive_no_answers == 1
    assert agent.idle_since == idle_since
    # offered again, at once, to the other free agent
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("c1/2", "1002")]
    assert router.call("c1").state is CallState.RINGING and router.call("c1").offer_id == "c1/2"
    assert "ring_no_answer" not in kinds(effects) and "unreachable" not in kinds(effects)


def test_offer_lost_with_a_single_agent_offers_the_call_to_them_again():
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.enqueue("c1", "support", 10.0)
    effects = router.offer_lost("c1/1", 20.0)
    assert kinds(effects)[0] == "offer_lost"
    assert states_of(effects, "1001") == ["available", "reserved"]
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("c1/2", "1001")]


def test_offer_lost_for_a_stale_offer_id_does_nothing():
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.enqueue("c1", "support", 10.0)
    router.offer_answered("c1/1", 11.0)
    assert router.offer_lost("c1/1", 20.0) == []
    assert router.offer_lost("nope/1", 20.0) == []
    assert router.agent("1001").state is AgentState.ON_CALL
    assert router.call("c1").state is CallState.CONNECTED


# ---------------------------------------------------------------- Router.adopt_connected

def test_adopting_a_connected_call_puts_an_available_agent_on_it_and_follows_it_to_its_end():
    router = new_router()
    router.login("1001", ["support", "sales"], 1.0)
    effects = router.adopt_connected("x1", "support", "1001", 100.0, answered_at=60.0, offers_made=2)
    assert kinds(effects)[0] == "resync_adopted" and "answered" not in kinds(effects)
    assert effects[0].data == {"stage": "connected"} and effects[0].agent_id == "1001"
    assert states_of(effects, "1001") == ["on_call"]
    call = router.call("x1")
    assert call.state is CallState.CONNECTED and call.agent_id == "1001" and call.answered_at == 60.0
    assert router.agent("1001").state is AgentState.ON_CALL and router.agent("1001").call_id == "x1"
    # a caller arriving in the same queue is not offered to the agent on the adopted call
    effects = router.enqueue("w1", "support", 101.0)
    assert offers(effects) == [] and router.call("w1").state is CallState.WAITING

    effects = router.call_ended("x1", 130.0, by="caller")
    ended = [e for e in effects if isinstance(e, Event) and e.kind == "ended"]
    assert [(e.call_id, e.agent_id, e.data) for e in ended] == [("x1", "1001", {"talk": 70.0, "by": "caller"})]
    # free again (no wrap-up): now it takes the waiting caller, offer numbering of a fresh call
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("w1/1", "1001")]


def test_an_adopted_calls_answer_time_is_never_in_the_future():
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.adopt_connected("x1", "support", "1001", 100.0)
    assert router.call("x1").answered_at == 100.0
    router.adopt_connected("x2", "sales", "1002", 100.0, answered_at=500.0)
    assert router.call("x2").answered_at == 100.0


def test_an_agent_not_logged_in_here_gets_the_adopted_call_on_login_and_no_offer():
    router = new_router()
    router.enqueue("w1", "support", 50.0)  # nobody serves support yet
    effects = router.adopt_connected("x1", "support", "1001", 100.0, answered_at=90.0)
    assert kinds(effects) == ["resync_adopted"]
    assert router.agent("1001").state is AgentState.LOGGED_OUT
    assert router.call("w1").state is CallState.WAITING

    effects = router.login("1001", ["support"], 110.0)
    assert states_of(effects, "1001") == ["on_call"] and offers(effects) == []
    assert router.agent("1001").state is AgentState.ON_CALL and router.agent("1001").call_id == "x1"
    assert router.call("w1").state is CallState.WAITING

    effects = router.call_ended("x1", 150.0)
    assert [(e.kind, e.data) for e in effects if isinstance(e, Event) and e.kind == "ended"] == [
        ("ended", {"talk": 60.0})]
    assert states_of(effects, "1001")[0] == "available"  # wrap-up 0: available, then takes w1
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("w1/1", "1001")]


def test_an_adopted_call_that_ends_before_its_agent_logs_in_leaves_them_logged_out_and_free():
    router = new_router()
    router.adopt_connected("x1", "support", "1001", 100.0, answered_at=90.0)
    effects = router.call_ended("x1", 120.0, by="agent")
    assert [(e.kind, e.data) for e in effects if isinstance(e, Event)] == [("ended", {"talk": 30.0, "by": "agent"})]
    assert router.agent("1001").state is AgentState.LOGGED_OUT and router.agent("1001").call_id is None
    router.enqueue("w1", "support", 121.0)
    effects = router.login("1001", ["support"], 130.0)
    assert states_of(effects, "1001")[0] == "available"
    assert [(o.offer_id, o.agent_id) for o in offers(effects)] == [("w1/1", "1001")]


def test_adopting_for_a_paused_or_reserved_agent_or_into_an_unknown_queue_is_refused():
    router = new_router()
    router.login("1001", ["support"], 1.0)
    router.login("1002", ["support"], 2.0)
    router.pause("1002", "lunch", 3.0)
    router.enqueue("c1", "support", 10.0)
    assert router.agent("1001").state is AgentState.RESERVED
    with pytest.raises(RoutingError):
        router.adopt_connected("x1", "support", "1001", 20.0)
    with pytest.raises(RoutingError):
        router.adopt_connected("x1", "support", "1002", 20.0)
    with pytest.raises(RoutingError):
        router.adopt_connected("x1", "nope", "1003", 20.0)
    with pytest.raises(RoutingError):
        router.adopt_connected("c1", "support", "1003", 20.0)  # already in the ACD
    assert router.call("x1") is None
    assert router.agent("1001").state is AgentState.RESERVED and router.agent("1001").call_id == "c1"
    assert router.agent("1002").state is AgentState.PAUSED and router.agent("1002").call_id is None


# ---------------------------------------------------------------- the shell

def make_shell():
    router = new_router()
    ami, events, clock = ScriptedAmi(), Events(), Clock()
    return AcdShell(router, ami, events, clock=clock), router, ami, events, clock


FAILURE_KINDS = {"offer_failed", "offer_lost", "ring_no_answer", "busy", "unreachable"}


async def ringing_shell(*agents: str):
    """Agents logged in to support (longest idle first), call c1 ringing the first (leg c1-o1)."""
    shell, router, ami, events, clock = await ringing(*agents, make=make_shell)
    assert ami.actions[-1][:2] == ("originate", "c1-o1")
    return shell, router, ami, events, clock


async def connection_lost_while_ringing(*agents: str):
    shell, router, ami, events, clock = await ringing_shell(*agents)
    ami.originates["c1-o1"].set_exception(AmiConnectionLost("AMI connection lost before the answer"))
    await settle()
    return shell, router, ami, events, clock


def test_an_originate_lost_with_the_connection_keeps_the_leg_and_the_offer():
    async def scenario():
        shell, router, ami, events, _clock = await connection_lost_while_ringing("1001", "1002")
        assert set(shell.legs) == {"c1-o1"} and not shell.legs["c1-o1"].uncertain
        assert router.call("c1").state is CallState.RINGING and router.call("c1").offer_id == "c1/1"
        assert router.agent("1001").state is AgentState.RESERVED
        assert FAILURE_KINDS.isdisjoint(events.kinds())
        assert [a for a in ami.actions if a[0] == "hangup"] == []  # never hung up blind
        assert [a[1] for a in ami.actions if a[0] == "originate"] == ["c1-o1"]  # never resent
    asyncio.run(scenario())


def test_a_leg_still_ringing_after_the_gap_is_watched_and_its_hangup_gives_the_offer_up():
    async def scenario():
        shell, router, ami, events, clock = await connection_lost_while_ringing("1001", "1002")
        plan = plan_resync([caller_channel("c1"), leg_channel("c1", 1, "1001")], list(router.calls()), shell.legs)
        assert [s.uniqueid for s in plan.still_ringing] == ["c1-o1"]
        clock.now += 2
        shell.resync(plan, clock(), {})
        assert shell.legs["c1-o1"].uncertain
        assert router.call("c1").offer_id == "c1/1" and FAILURE_KINDS.isdisjoint(events.kinds())

        clock.now += 3
        shell.channel_hung_up("c1-o1")  # rang out, no OriginateResponse will ever say why
        await settle()
        assert "offer_lost" in events.kinds()
        assert not {"ring_no_answer", "offer_failed", "unreachable"} & set(events.kinds())
        assert "c1-o1" not in shell.legs
        assert router.agent("1001").state is AgentState.AVAILABLE
        assert router.call("c1").offer_id == "c1/2" and router.call("c1").agent_id == "1002"
        assert ami.actions[-1][:2] == ("originate", "c1-o2")
    asyncio.run(scenario())


def test_an_uncertain_leg_that_is_answered_and_bridged_connects_the_call():
    async def scenario():
        shell, router, _ami, events, clock = await connection_lost_while_ringing("1001")
        plan = plan_resync([caller_channel("c1"), leg_channel("c1", 1, "1001")], list(router.calls()), shell.legs)
        shell.resync(plan, clock(), {})
        shell.agent_answered("c1-o1")
        shell.leg_bridged("c1-o1")
        assert router.call("c1").state is CallState.CONNECTED and "answered" in events.kinds()
        clock.now += 20
        shell.channel_hung_up("c1-o1")
        assert next(r for r in events.rows if r[0] == "ended")[3]["talk"] == 20
        assert "offer_lost" not in events.kinds()
    asyncio.run(scenario())


def test_an_originate_never_sent_gives_the_offer_up_without_pausing_the_agent():
    async def scenario():
        shell, router, ami, events, _clock = await ringing_shell("1001", "1002")
        ami.originates["c1-o1"].set_exception(AmiNotConnected("AMI Originate: not connected"))
        await settle()
        assert "offer_lost" in events.kinds()
        assert not {"ring_no_answer", "unreachable", "offer_failed"} & set(events.kinds())
        agent = router.agent("1001")
        assert agent.state is AgentState.AVAILABLE and agent.pause_reason is None
        assert "c1-o1" not in shell.legs
        assert router.call("c1").offer_id == "c1/2"
    asyncio.run(scenario())


def test_an_offer_answered_in_the_gap_is_answered_on_resync():
    async def scenario():
        shell, router, _ami, events, clock = await connection_lost_while_ringing("1001")
        plan = plan_resync([caller_channel("c1", bridge="b1"), leg_channel("c1", 1, "1001", state=UP)],
                           list(router.calls()), shell.legs)
        assert [s.offer_id for s in plan.answered_in_gap] == ["c1/1"]
        clock.now += 5
        shell.resync(plan, clock(), {})
        assert "answered" in events.kinds()
        assert router.agent("1001").state is AgentState.ON_CALL
        assert router.call("c1").state is CallState.CONNECTED
        assert shell.legs["c1-o1"].answered and shell.legs["c1-o1"].bridged
        clock.now += 10
        shell.channel_hung_up("c1-o1")
        assert [(r[0], r[1], r[3]["talk"]) for r in events.rows if r[0] == "ended"] == [("ended", "c1", 10.0)]
    asyncio.run(scenario())


def test_a_lost_offer_on_resync_is_offered_again():
    async def scenario():
        shell, router, ami, events, clock = await connection_lost_while_ringing("1001")
        plan = plan_resync([caller_channel("c1")], list(router.calls()), shell.legs)
        assert plan.lost_offers == ["c1/1"]
        shell.resync(plan, clock(), {})
        await settle()
        assert "offer_lost" in events.kinds() and "c1-o1" not in shell.legs
        assert ami.actions[-1][:2] == ("originate", "c1-o2")
    asyncio.run(scenario())


def test_a_bridged_call_the_router_cannot_take_is_still_followed_to_its_end():
    async def scenario():
        shell, router, _ami, events, clock = make_shell()
        shell.apply(router.login("1001", ["support"], clock()))
        shell.apply(router.pause("1001", "lunch", clock()))
        plan = plan_resync([caller_channel("x1", "support", bridge="b9"), leg_channel("x1", 2, "1001", state=UP)],
                           list(router.calls()), shell.legs)
        assert [s.uniqueid for s in plan.adopt_connected] == ["x1-o2"]
        shell.resync(plan, clock(), {"x1": clock() - 50})
        adopted = [r for r in events.rows if r[0] == "resync_adopted"]
        assert adopted == [("resync_adopted", "x1", "1001", {"stage": "connected", "routed": False})]
        assert router.call("x1") is None and router.agent("1001").state is AgentState.PAUSED
        assert shell.legs["x1-o2"].adopted

        clock.now += 10
        shell.channel_hung_up("x1-o2")
        ended = [r for r in events.rows if r[0] == "ended"]
        assert ended == [("ended", "x1", "1001", {"talk": 60.0, "by": "agent", "resync": True})]
        assert shell.legs == {}
        assert router.agent("1001").state is AgentState.PAUSED
    asyncio.run(scenario())


def test_a_bridged_call_adopted_for_a_free_agent_is_routed():
    async def scenario():
        shell, router, _ami, events, clock = make_shell()
        shell.apply(router.login("1001", ["support"], clock()))
        plan = plan_resync([caller_channel("x1", "sales", bridge="b9"), leg_channel("x1", 1, "1001", state=UP)],
                           list(router.calls()), shell.legs)
        shell.resync(plan, clock(), {"x1": clock() - 30})
        assert [r[3] for r in events.rows if r[0] == "resync_adopted"] == [{"stage": "connected"}]
        assert router.agent("1001").state is AgentState.ON_CALL
        assert router.call("x1").queue == "sales" and router.call("x1").offers_made == 1
        clock.now += 10
        shell.channel_hung_up("x1-o1")
        assert [r[3] for r in events.rows if r[0] == "ended"] == [{"talk": 40.0, "by": "agent"}]
        assert router.agent("1001").state is AgentState.AVAILABLE
    asyncio.run(scenario())


def test_calls_asterisk_no_longer_has_are_closed_as_unknown_or_absent():
    async def scenario():
        shell, router, _ami, events, clock = await ringing_shell("1001")
        shell.agent_answered("c1-o1")
        shell.leg_bridged("c1-o1")
        shell.caller_waiting("c2", "support", 0, "PJSIP/trunk-02", "139")  # waits: 1001 is on c1
        clock.now += 30
        plan = plan_resync([], list(router.calls()), shell.legs)
        assert sorted(plan.gone_calls) == ["c1", "c2"]
        shell.resync(plan, clock(), {})
        ended = [r for r in events.rows if r[0] == "ended"]
        assert [(r[1], r[3]) for r in ended] == [("c1", {"talk": 30.0, "by": "unknown"})]
        exited = [r for r in events.rows if r[0] == "exited"]
        assert [(r[1], r[3]["reason"]) for r in exited] == [("c2", "resync:absent")]
        assert router.call("c1") is None and router.call("c2") is None
        assert "c1-o1" not in shell.legs
        assert router.agent("1001").state is AgentState.AVAILABLE
    asyncio.run(scenario())


def test_a_stray_leg_is_hung_up_by_its_uniqueid():
    async def scenario():
        shell, _router, ami, _events, clock = make_shell()
        plan = plan_resync([leg_channel("z9", 1, "1009")], [], shell.legs)
        assert plan.stray_legs == ["z9-o1"]
        shell.resync(plan, clock(), {})
        await settle()
        assert ami.actions == [("hangup", "z9-o1")]
    asyncio.run(scenario())


# ---------------------------------------------------------------- defects the first version had

def test_a_ringing_call_whose_caller_is_gone_too_is_closed_not_offered_again():
    async def scenario():
        shell, router, ami, _events, clock = await connection_lost_while_ringing("1001")
        plan = plan_resync([], list(router.calls()), shell.legs)  # Asterisk has nothing any more
        shell.resync(plan, clock(), {})
        await settle()
        assert router.call("c1") is None
        assert [a[1] for a in ami.actions if a[0] == "originate"] == ["c1-o1"]
    asyncio.run(scenario())


def test_a_routed_adopted_call_is_ended_once_whichever_side_hangs_up_first():
    async def scenario():
        shell, router, _ami, events, clock = make_shell()
        shell.apply(router.login("1001", ["support"], clock()))
        plan = plan_resync([caller_channel("x1", "support", bridge="b9"), leg_channel("x1", 1, "1001", state=UP)],
                           list(router.calls()), shell.legs)
        shell.resync(plan, clock(), {"x1": clock() - 30})
        clock.now += 10
        shell.hangup_requested("x1")
        shell.channel_hung_up("x1")      # the caller's channel first...
        shell.channel_hung_up("x1-o1")   # ...then the agent leg torn down by the bridge
        assert events.kinds().count("ended") == 1
    asyncio.run(scenario())


class BlockedAmi(ScriptedAmi):
    """The AMI link is down until the test lets it come back."""

    def __init__(self):
        super().__init__()
        self.up = asyncio.Event()

    async def wait_connected(self, timeout):
        await self.up.wait()
        return True


def test_an_offer_withdrawn_while_the_link_was_down_is_not_rung_when_it_returns():
    async def scenario():
        router = new_router()
        ami, events, clock = BlockedAmi(), Events(), Clock()
        shell = AcdShell(router, ami, events, clock=clock)
        shell.apply(router.login("1001", ["support"], clock()))
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
        await settle()
        assert ami.actions == []         # the offer waits for the link
        shell.apply(router.pause("1001", "lunch", clock()))
        await settle()
        ami.up.set()
        await settle()
        assert ("originate", "c1-o1") not in [a[:2] for a in ami.actions]
        assert ("setvar", "PJSIP/trunk-01", "CC_OFFER", "c1-o1") not in ami.actions
    asyncio.run(scenario())


# ---------------------------------------------------------------- AmiClient against a loopback peer

class ListPeer:
    """A TCP peer speaking just enough AMI: accepts the Login, answers Ping, answers
    CoreShowChannels with ``channels`` (and ``list_items`` in the closing event, the true count
    unless set), and drops the connection on receiving ``drop_on`` without answering it."""

    def __init__(self, channels: list[dict[str, str | list[str]]], *, list_items: int | None = None,
                 drop_on: str = ""):
        self.channels = channels
        self.list_items = list_items
        self.drop_on = drop_on.lower()
        self.received: list[str] = []

    @staticmethod
    def message(headers: list[tuple[str, str]]) -> bytes:
        return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    buffer += chunk
                block, buffer = buffer.split(b"\r\n\r\n", 1)
                headers = {}
                for line in block.decode().split("\r\n"):
                    name, sep, value = line.partition(": ")
                    if sep:
                        headers.setdefault(name.lower(), value)
                action, action_id = headers.get("action", "").lower(), headers.get("actionid", "")
                self.received.append(action)
                if action and action == self.drop_on:
                    return  # closes without answering
                if action == "coreshowchannels":
                    writer.write(self.list_answer(action_id))
                else:
                    writer.write(self.message([("Response", "Success"), ("ActionID", action_id),
                                               ("Message", "Authentication accepted" if action == "login"
                                                else "ok")]))
                await writer.drain()
        finally:
            writer.close()

    def list_answer(self, action_id: str) -> bytes:
        out = self.message([("Response", "Success"), ("ActionID", action_id), ("EventList", "start"),
                            ("Message", "Channels will follow")])
        for channel in self.channels:
            headers = [("Event", "CoreShowChannel"), ("ActionID", action_id)]
            for name, value in channel.items():
                for v in value if isinstance(value, list) else [value]:
                    headers.append((name, v))
            out += self.message(headers)
        count = len(self.channels) if self.list_items is None else self.list_items
        out += self.message([("Event", "CoreShowChannelsComplete"), ("ActionID", action_id),
                             ("EventList", "Complete"), ("ListItems", str(count))])
        return out


def three_channels() -> list[dict[str, str | list[str]]]:
    return [{"Channel": f"PJSIP/trunk-{n}", "Uniqueid": f"1700.{n}", "Context": "cc-hold", "ChannelState": "6",
             "ChanVariable": [f"CC_CALLID=1700.{n}", "CC_QUEUE=support"]} for n in range(3)]


async def with_peer(peer: ListPeer, body):
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AmiClient("127.0.0.1", port, "callcenter", "secret-x", action_timeout=5)
    try:
        await client.connect(timeout=5)
        return await body(client)
    finally:
        client.close()
        server.close()


def test_list_action_returns_every_item_when_the_count_agrees():
    peer = ListPeer(three_channels())

    async def body(client):
        return await client.list_action("CoreShowChannels", "CoreShowChannel", timeout=5)

    items = asyncio.run(with_peer(peer, body))
    assert [item["Uniqueid"] for item in items] == ["1700.0", "1700.1", "1700.2"]
    assert parse_variables(items[1]) == {"CC_CALLID": "1700.1", "CC_QUEUE": "support"}
    channel = LiveChannel.from_event(items[1], parse_variables(items[1]))
    assert (channel.uniqueid, channel.state, channel.var("CC_QUEUE")) == ("1700.1", 6, "support")
    assert "coreshowchannels" in peer.received


def test_list_action_with_no_items_is_an_empty_list():
    async def body(client):
        return await client.list_action("CoreShowChannels", "CoreShowChannel", timeout=5)

    assert asyncio.run(with_peer(ListPeer([]), body)) == []


def test_list_action_whose_items_disagree_with_list_items_is_incomplete():
    for announced in (4, 2):
        peer = ListPeer(three_channels(), list_items=announced)

        async def body(client):
            with pytest.raises(AmiIncompleteList):
                await client.list_action("CoreShowChannels", "CoreShowChannel", timeout=5)
            return True

        assert asyncio.run(with_peer(peer, body)), announced


def test_an_action_in_flight_when_the_connection_drops_fails_at_once_as_connection_lost():
    peer = ListPeer([], drop_on="Originate")

    async def body(client):
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(AmiConnectionLost):
            await client.action("Originate", timeout=8, Channel="PJSIP/agent1001", Context="cc-agent-connect",
                                Exten="s", Priority=1)
        return loop.time() - start

    took = asyncio.run(with_peer(peer, body))
    assert took < 2.0, took                 # not its 8 s timeout
    assert peer.received[-1] == "originate"
    assert issubclass(AmiConnectionLost, AmiNotConnected)
