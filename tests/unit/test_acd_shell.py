"""The ACD shell's handling of Asterisk's event order, with the real router and a scripted AMI.

The real-stack tests cover the common paths; these pin down the orderings that are hard to force
on a live Asterisk (a leg's Hangup before its OriginateResponse, an answer after a withdrawal...).
"""

from __future__ import annotations

import asyncio

from callcenter.acd.router import Router
from callcenter.acd.shell import AcdShell
from callcenter.asterisk.ami import AmiError, OriginateResult


class ScriptedAmi:
    """Records every action; each Originate waits until the test settles it."""

    def __init__(self):
        self.actions: list[tuple] = []
        self.originates: dict[str, asyncio.Future] = {}
        self.missing_channels: set[str] = set()

    async def wait_connected(self, timeout):
        return True

    async def set_channel_var(self, channel, name, value):
        self.actions.append(("setvar", channel, name, value))

    async def originate_to_context(self, *, channel_id, variables, **kwargs):
        self.actions.append(("originate", channel_id, dict(variables)))
        self.originates[channel_id] = asyncio.get_running_loop().create_future()
        return await self.originates[channel_id]

    async def hangup(self, channel, cause=16):
        self.actions.append(("hangup", channel))
        if channel in self.missing_channels:
            raise AmiError("AMI Hangup: No such channel")


class Events:
    def __init__(self):
        self.rows = []

    def record(self, kind, **fields):
        self.rows.append((kind, fields.get("call_id"), fields.get("agent_id"), fields.get("data") or {}))

    def kinds(self):
        return [r[0] for r in self.rows]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_shell():
    router = Router(["support"], ring_timeout=4, wrapup_seconds=0)
    ami, events, clock = ScriptedAmi(), Events(), Clock()
    return AcdShell(router, ami, events, clock=clock), router, ami, events, clock


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def ringing(*agents: str, make=None):
    """A shell (from ``make``, default make_shell) with ``agents`` logged in to support (longest
    idle first) and call c1 ringing the first."""
    shell, router, ami, events, clock = (make or make_shell)()
    for agent_id in agents:
        shell.apply(router.login(agent_id, ["support"], clock()))
        clock.now += 1
    shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138")
    await settle()
    return shell, router, ami, events, clock


def test_ring_timeout_reported_after_the_legs_hangup_still_pauses_and_reoffers():
    async def scenario():
        shell, router, ami, events, clock = make_shell()
        shell.apply(router.login("1001", ["support"], clock()))
        clock.now += 1
        shell.apply(router.login("1002", ["support"], clock()))
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138 0000,Queue: x")
        await settle()
        # the caller's channel carries the offer before the phone rings
        assert ami.actions[:2] == [("setvar", "PJSIP/trunk-01", "CC_OFFER", "c1-o1"),
                                   ("originate", "c1-o1", {"CC_CALLID": "c1", "CC_AGENT": "1001", "CC_OFFER": "c1-o1",
                                                           "CC_CALLER_CHANNEL": "PJSIP/trunk-01"})]
        assert router.call("c1").attrs["caller_number"] == "1380000"  # only dialable characters kept
        shell.channel_hung_up("c1-o1")          # Asterisk: the unanswered leg is gone...
        ami.originates["c1-o1"].set_result(OriginateResult(False, 3, ""))  # ...then: no answer
        await settle()
        assert "ring_no_answer" in events.kinds()
        assert router.agent("1001").pause_reason == "ring-no-answer"
        assert ("originate", "c1-o2") == ami.actions[-1][:2]
        assert set(shell.legs) == {"c1-o2"}
    asyncio.run(scenario())


def test_answered_bridged_call_ends_on_the_legs_hangup_before_originate_resolves():
    async def scenario():
        shell, router, ami, events, clock = await ringing("1001")
        shell.agent_answered("c1-o1")
        shell.leg_bridged("c1-o1")
        clock.now += 30
        shell.channel_hung_up("c1-o1")
        shell.channel_hung_up("c1")             # the caller goes too (Bridge option x)
        ami.originates["c1-o1"].set_result(OriginateResult(True, 4, "PJSIP/agent1001-1"))
        await settle()
        assert [k for k in events.kinds() if k != "agent_state"] == ["queued", "offered", "answered", "ended"]
        talk = next(r for r in events.rows if r[0] == "ended")[3]["talk"]
        assert talk == 30
        assert shell.legs == {} and router.call("c1") is None
    asyncio.run(scenario())


def test_agent_who_answers_and_hangs_up_before_the_bridge_does_not_take_the_call():
    async def scenario():
        shell, router, ami, events, clock = await ringing("1001", "1002")
        shell.agent_answered("c1-o1")
        shell.channel_hung_up("c1-o1")
        await settle()
        assert router.agent("1001").state.value == "paused"
        assert router.call("c1").state.value == "ringing" and router.call("c1").agent_id == "1002"
        ami.originates["c1-o1"].set_result(OriginateResult(True, 4, ""))  # late success changes nothing
        await settle()
        assert router.call("c1").agent_id == "1002"
    asyncio.run(scenario())


def test_withdrawn_offer_is_voided_on_the_caller_and_hung_up_by_uniqueid():
    async def scenario():
        shell, router, ami, events, clock = await ringing("1001")
        ami.missing_channels.add("c1-o1")       # the Hangup races the leg's creation and misses
        shell.apply(router.pause("1001", "lunch", clock()))
        await settle()
        assert ("setvar", "PJSIP/trunk-01", "CC_OFFER", "") in ami.actions
        assert ("hangup", "c1-o1") in ami.actions
        # the phone is answered anyway; the dialplan's offer check stops the bridge, and if the
        # bridge still happened the event log says so instead of corrupting the router
        shell.agent_answered("c1-o1")
        shell.leg_bridged("c1-o1")
        assert "late_answer" in events.kinds()
        assert router.call("c1").state.value == "waiting"
    asyncio.run(scenario())


def test_repeated_announcements_are_ignored_and_a_readopted_caller_keeps_its_place():
    async def scenario():
        shell, router, ami, events, clock = make_shell()
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138", enqueued_at=990.0)
        shell.caller_waiting("c1", "support", 0, "PJSIP/trunk-01", "138", enqueued_at=995.0)
        shell.caller_waiting("c2", "support", 0, "PJSIP/trunk-02", "139", enqueued_at=5000.0)  # future: now
        assert events.kinds().count("queued") == 2
        assert router.call("c1").enqueued_at == 990.0 and router.call("c2").enqueued_at == 1000.0
        shell.caller_left("c1", "fallback:heartbeat")
        assert router.call("c1") is None
        assert ("exited", "c1", None, {"reason": "fallback:heartbeat", "wait": 10.0, "stage": "waiting"}) in events.rows
    asyncio.run(scenario())
