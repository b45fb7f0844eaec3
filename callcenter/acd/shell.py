"""The ACD's thin shell: feeds the pure router what happens on Asterisk and the API, and carries
out what it decides — ring an agent (AMI Originate), stop a ringing phone, arm a wrap-up timer,
log an event. All decisions stay in the router; nothing here chooses an agent."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable

from callcenter.acd.router import CancelOffer, Event, Offer, Router, StartTimer
from callcenter.asterisk.ami import AmiClient, AmiError
from callcenter.events.log import EventLog

log = logging.getLogger(__name__)

# Asterisk's OriginateResponse Reason codes (channel.h AST_CONTROL_*): what a failed ring means for the agent.
FAILURE_REASONS = {3: "ring-no-answer", 5: "busy", 1: "unreachable", 8: "unreachable", 0: "unreachable"}
CALLER_NUMBER = re.compile(r"[^0-9+*#]")


class AcdShell:
    def __init__(self, router: Router, ami: AmiClient, events: EventLog, *, ring_timeout: float,
                 clock=time.time):
        self.router = router
        self.ami = ami
        self.events = events
        self.ring_timeout = ring_timeout
        self.clock = clock
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()
        self._ringing_channels: dict[str, str] = {}   # offer id -> agent channel id (Asterisk uniqueid)
        self._connected_legs: dict[str, str] = {}     # agent channel id -> call id, once answered

    # ------------------------------------------------------------------ inputs
    def apply(self, effects: Iterable) -> None:
        for effect in effects:
            if isinstance(effect, Event):
                self.events.record(effect.kind, call_id=effect.call_id, queue=effect.queue,
                                   agent_id=effect.agent_id, data=effect.data)
            elif isinstance(effect, Offer):
                self._spawn(self._ring(effect), f"offer {effect.offer_id}")
            elif isinstance(effect, CancelOffer):
                self._spawn(self._cancel(effect), f"cancel {effect.offer_id}")
            elif isinstance(effect, StartTimer):
                self._arm(effect)
            else:  # a new effect type the shell does not know yet is a programming error, loudly
                log.error("unknown ACD effect %r", effect)

    def caller_waiting(self, call_id: str, queue: str, priority: int, caller_channel: str, caller_number: str) -> None:
        self.apply(self.router.enqueue(call_id, queue, self.clock(), priority=priority,
                                       attrs={"caller_channel": caller_channel, "caller_number": caller_number}))

    def channel_hung_up(self, uniqueid: str) -> None:
        if uniqueid in self._connected_legs:
            self.apply(self.router.call_ended(self._connected_legs.pop(uniqueid), self.clock()))
        elif self.router.call(uniqueid) is not None:
            # the caller's own channel: abandon while waiting/ringing, or the end of a connected call
            self.apply(self.router.abandon(uniqueid, self.clock()))

    # ------------------------------------------------------------------ effects
    def _spawn(self, coro, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ring(self, offer: Offer) -> None:
        call = self.router.call(offer.call_id)
        if call is None:
            return
        channel_id = offer.offer_id.replace("/", "-o")
        self._ringing_channels[offer.offer_id] = channel_id
        number = CALLER_NUMBER.sub("", str(call.attrs.get("caller_number", "")))[:32]
        try:
            result = await self.ami.originate_to_context(
                channel=f"PJSIP/agent{offer.agent_id}", context="cc-agent-connect", exten="s",
                ring_timeout=offer.ring_timeout, channel_id=channel_id,
                caller_id=f'"{offer.queue}" <{number or "anonymous"}>',
                variables={"CC_CALLID": offer.call_id, "CC_AGENT": offer.agent_id,
                           "CC_CALLER_CHANNEL": call.attrs.get("caller_channel", "")},
            )
        except (AmiError, TimeoutError, ConnectionError, ValueError) as exc:
            log.warning("offer %s to agent %s failed: %s", offer.offer_id, offer.agent_id, exc)
            self._ringing_channels.pop(offer.offer_id, None)
            await self._hangup_agent_leg(offer.agent_id)
            self.apply(self.router.offer_failed(offer.offer_id, "unreachable", self.clock()))
            return
        self._ringing_channels.pop(offer.offer_id, None)
        if result.answered:
            self._connected_legs[channel_id] = offer.call_id
            self.apply(self.router.offer_answered(offer.offer_id, self.clock()))
        else:
            reason = FAILURE_REASONS.get(result.reason, "unreachable")
            self.apply(self.router.offer_failed(offer.offer_id, reason, self.clock()))

    async def _cancel(self, cancel: CancelOffer) -> None:
        self._ringing_channels.pop(cancel.offer_id, None)
        await self._hangup_agent_leg(cancel.agent_id)

    async def _hangup_agent_leg(self, agent_id: str) -> None:
        # The ringing leg's name is only known to Asterisk; an agent has one leg at most while
        # an offer is out, so hang up every channel of that agent's endpoint.
        try:
            await self.ami.hangup(f"/^PJSIP\\/agent{agent_id}-[0-9a-f]+$/")
        except (AmiError, TimeoutError, ConnectionError) as exc:
            log.info("no ringing leg to hang up for agent %s: %s", agent_id, exc)

    def _arm(self, timer: StartTimer) -> None:
        old = self._timers.pop(timer.key, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, timer.at - self.clock())
        self._timers[timer.key] = asyncio.get_running_loop().call_later(delay, self._fire, timer.key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        kind, _, agent_id = key.partition(":")
        if kind == "wrapup":
            self.apply(self.router.wrapup_done(agent_id, self.clock()))
        else:
            log.error("unknown timer %r", key)

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
