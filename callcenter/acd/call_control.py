"""What an agent does to the call they are on, from the desktop: hold, resume, blind transfer
(to a queue, or to one agent through the router's skills routing), pausing the recording while a
card number is taken (PCI), and ending wrap-up early.

A thin shell like ``AcdShell``: it checks the request against the router's view of the agent and
the call, moves the channels with AMI Redirects into the dialplan's call-control contexts
(cc-held / cc-agent-held / cc-agent-resume / cc-agent-transferred), and hands the router what
changed. Each action is an event (hold_started, hold_ended, transferred) with the agent and call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from callcenter.acd.model import AgentState, CallState
from callcenter.acd.router import Router
from callcenter.acd.shell import AcdShell
from callcenter.acd.steps import Steps
from callcenter.acd.transfer import steps_to_agent
from callcenter.asterisk.ami import AmiClient, AmiError
from callcenter.runtime import BackgroundTasks

log = logging.getLogger(__name__)


class CallControlError(Exception):
    """The agent's request cannot be carried out now (no call, not on hold, unknown target...)."""


@dataclass
class Held:
    agent_id: str
    leg: str
    caller_channel: str
    since: float


# Remembers how a transferred caller is to be queued (its steps: None for the queue's own) until it
# reaches the hold loop; called while the router still knows the call.
KeepTerms = Callable[[str, Steps | None], None]


class CallControl:
    def __init__(self, router: Router, shell: AcdShell, ami: AmiClient, *, keep_terms: KeepTerms,
                 clock=time.time):
        self.router = router
        self.shell = shell
        self.ami = ami
        self.keep_terms = keep_terms
        self.clock = clock
        self.held: dict[str, Held] = {}  # call id -> its hold
        # call id -> (agent leg, since): recordings muted for card capture (PCI DSS: card data
        # must never be stored, so the span is silence in the file)
        self.recording_paused: dict[str, tuple[str, float]] = {}
        self.on_change: Callable[[str], None] = lambda agent_id: None  # a call of this agent's changed
        self._tasks = BackgroundTasks()

    def _current(self, agent_id: str):
        agent = self.router.agent(agent_id)
        if agent is None or agent.state is not AgentState.ON_CALL or agent.call_id is None:
            raise CallControlError(f"agent {agent_id} is not on a call")
        call = self.router.call(agent.call_id)
        leg = next((uid for uid, leg in self.shell.legs.items()
                    if leg.call_id == agent.call_id and leg.agent_id == agent_id and leg.bridged), None)
        if call is None or call.state is not CallState.CONNECTED or leg is None:
            raise CallControlError(f"agent {agent_id}'s call is not connected")
        return call, leg

    async def hold(self, agent_id: str) -> dict:
        call, leg = self._current(agent_id)
        if call.call_id in self.held:
            raise CallControlError("the call is already on hold")
        caller = call.attrs.get("caller_channel", "")
        await self._move(caller, "cc-held", also=(leg, "cc-agent-held"))
        self.held[call.call_id] = Held(agent_id, leg, caller, self.clock())
        self.shell.events.record("hold_started", call_id=call.call_id, queue=call.queue, agent_id=agent_id)
        self.on_change(agent_id)
        return {"call_id": call.call_id, "held": True}

    async def resume(self, agent_id: str) -> dict:
        call, leg = self._current(agent_id)
        held = self.held.get(call.call_id)
        if held is None:
            raise CallControlError("the call is not on hold")
        await self._move(leg, "cc-agent-resume")
        self._end_hold(call.call_id, "resumed")
        return {"call_id": call.call_id, "held": False}

    async def transfer(self, agent_id: str, *, queue: str | None = None, to_agent: str | None = None) -> dict:
        """Blind transfer: the caller waits again in ``queue`` (default: the call's queue), for
        ``to_agent`` first if given; this agent's part of the call ends (wrap-up follows)."""
        call, leg = self._current(agent_id)
        target_queue = queue or call.queue
        if target_queue not in self.router.queues:
            raise CallControlError(f"no queue {target_queue!r}")
        if to_agent is not None:
            target = self.router.agent(to_agent)
            if to_agent == agent_id:
                raise CallControlError("a call cannot be transferred to the agent who has it")
            if target is None or target.state is AgentState.LOGGED_OUT:
                raise CallControlError(f"agent {to_agent} is not logged in")
            if target_queue not in target.queues:
                raise CallControlError(f"agent {to_agent} does not serve queue {target_queue}")
        self.keep_terms(call.call_id, None if to_agent is None
                        else steps_to_agent(to_agent, self.router.queue_config(target_queue).steps))
        caller = call.attrs.get("caller_channel", "")
        now = self.clock()
        self._end_hold(call.call_id, "transferred")
        # The router first: this agent's part ends now, so the caller can be queued afresh when
        # it reaches the hold loop, and the agent leg's hangup is no longer this call's end.
        self.shell.drop_leg(leg)
        self.shell.events.record("transferred", call_id=call.call_id, queue=call.queue, agent_id=agent_id,
                                 data={"to_queue": target_queue, "to_agent": to_agent})
        self.shell.apply(self.router.call_ended(call.call_id, now, by="transfer"))
        for name, value in (("CC_QUEUE", target_queue), ("CC_ENQUEUED_AT", ""), ("CC_OFFER", "")):
            await self.ami.set_channel_var(caller, name, value)
        await self._move(caller, "cc-hold", also=(leg, "cc-agent-transferred"))
        return {"call_id": call.call_id, "queue": target_queue, "agent": to_agent}

    async def pause_recording(self, agent_id: str, paused: bool) -> dict:
        """Mute (``paused``) or unmute the call's recording: MixMonitor on the agent's leg writes
        silence meanwhile, so the file keeps its length and the span stays where it was."""
        call, leg = self._current(agent_id)
        if paused == (call.call_id in self.recording_paused):
            raise CallControlError("the recording is already paused" if paused else "the recording is not paused")
        try:
            await self.ami.action("MixMonitorMute", Channel=leg, Direction="both", State=1 if paused else 0)
        except (AmiError, TimeoutError, ConnectionError) as exc:
            raise CallControlError(f"Asterisk refused: {exc}") from None
        now = self.clock()
        if paused:
            self.recording_paused[call.call_id] = (leg, now)
            self.shell.events.record("recording_paused", call_id=call.call_id, queue=call.queue, agent_id=agent_id)
        else:
            self._recording_resumed(call.call_id, agent_id, "resumed")
        self.on_change(agent_id)
        return {"call_id": call.call_id, "recording_paused": paused}

    def _recording_resumed(self, call_id: str, agent_id: str | None, how: str) -> None:
        paused = self.recording_paused.pop(call_id, None)
        if paused is not None:
            self.shell.events.record("recording_resumed", call_id=call_id, agent_id=agent_id,
                                     data={"seconds": round(self.clock() - paused[1], 3), "how": how})

    def end_wrapup(self, agent_id: str) -> dict:
        agent = self.router.agent(agent_id)
        if agent is None or agent.state is not AgentState.WRAP_UP:
            raise CallControlError(f"agent {agent_id} is not in wrap-up")
        self.shell.apply(self.router.wrapup_done(agent_id, self.clock()))
        return {"agent": agent_id, "state": "available"}

    def channel_gone(self, uniqueid: str) -> None:
        """A channel hung up. If one side of a held call went, the other is hung up too (nobody
        else would ever end it: the caller hears music, the agent silence)."""
        for call_id, (leg, _) in list(self.recording_paused.items()):
            if uniqueid in (call_id, leg):  # the recording ended paused
                self._recording_resumed(call_id, None, "hangup")
        for call_id, held in list(self.held.items()):
            if uniqueid in (call_id, held.leg):
                other = held.leg if uniqueid == call_id else held.caller_channel
                self._end_hold(call_id, "hangup")
                self._tasks.spawn(self._hang_up(other), f"end held call {call_id}")

    def _end_hold(self, call_id: str, how: str) -> None:
        held = self.held.pop(call_id, None)
        if held is not None:
            self.shell.events.record("hold_ended", call_id=call_id, agent_id=held.agent_id,
                                     data={"seconds": round(self.clock() - held.since, 3), "how": how})
            self.on_change(held.agent_id)

    async def _move(self, channel: str, context: str, *, also: tuple[str, str] | None = None) -> None:
        try:
            await self.ami.redirect(channel, context, "s", also=also)
        except (AmiError, TimeoutError, ConnectionError) as exc:
            raise CallControlError(f"Asterisk refused: {exc}") from None

    async def _hang_up(self, channel: str) -> None:
        try:
            await self.ami.hangup(channel)
        except (AmiError, TimeoutError, ConnectionError) as exc:
            log.info("held call's other side %s not hung up: %s", channel, exc)


    async def close(self) -> None:
        await self._tasks.close()
