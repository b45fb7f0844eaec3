"""The engine side of callbacks: offers virtual hold to waiting callers, turns an accepted offer or
a web request into an agent-first dial-out that keeps its place in the queue, follows each
attempt (the ACD's effects say how it went) and spaces the retries. Decisions about attempts are
``model``'s; rows are ``store``'s; the ACD router owns the place in line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from callcenter.acd.announcements import AnnouncementSchedule
from callcenter.acd.model import CallState, Effect, Event
from callcenter.acd.router import Router, RoutingError
from callcenter.acd.shell import AcdShell
from callcenter.asterisk.ami import AmiClient, AmiError
from callcenter.callback.model import Callback, CallbackPolicy, after_attempt, callable_number, eligible_at
from callcenter.callback.store import CallbackStore
from callcenter.events.log import EventLog
from callcenter.ivr.flow import QueueCallbackOffer
from callcenter.runtime import BackgroundTasks

log = logging.getLogger(__name__)

KIND = "callback"  # the dial_out kind the ACD carries for these calls


class CallbackService:
    def __init__(self, router: Router, acd: AcdShell, ami: AmiClient, events: EventLog, store: CallbackStore,
                 policy: CallbackPolicy, *, caller_id: str = "", clock=time.time):
        self.router = router
        self.acd = acd
        self.ami = ami
        self.events = events
        self.store = store
        self.policy = policy
        self.clock = clock
        self.caller_id = caller_id  # what the customer's phone shows
        # An attempt's start and its outcome are written in the order they happened.
        self._attempt_lock = asyncio.Lock()
        # waiting callers whose queue node offers callbacks (the schedule reads only the offer's
        # first_after and every, which QueueCallbackOffer has like an AnnouncementPlan)
        self.offers = AnnouncementSchedule()
        self._open: dict[str, Callback] = {}  # call id -> its callback, while it is not final
        self._offers_made: dict[str, int] = {}  # call id -> ACD offers so far (offer ids stay distinct)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks = BackgroundTasks()

    # ------------------------------------------------------------------ virtual hold
    def watch(self, call_id: str, offer: QueueCallbackOffer, waiting_since: float) -> None:
        """A caller reached the hold loop from a queue node that offers callbacks."""
        self.offers.add(call_id, offer, waiting_since)

    def offer_due(self) -> None:
        """Ask the hold loop to offer a callback to waiting callers whose turn for an offer has
        come and whose estimated wait is over their node's threshold (no estimate: nobody staffs
        the queue, the longest wait of all)."""
        for call_id, offer in self.offers.due(self.clock()):
            call = self.router.call(call_id)
            if call is None or call.state is CallState.CONNECTED or call.attrs.get("dial_out"):
                self.offers.remove(call_id)
                continue
            if call.state is not CallState.WAITING:
                continue
            wait = self.router.estimated_wait(call_id)
            if wait is not None and wait <= offer.when_wait_over:
                continue
            self.events.record("callback_offered", call_id=call_id, queue=call.queue,
                               data={"estimated_wait": wait})
            self._tasks.spawn(self._ask_hold_loop(call.attrs.get("caller_channel", ""), call_id),
                              f"callback offer {call_id}")

    async def _ask_hold_loop(self, channel: str, call_id: str) -> None:
        try:
            await self.ami.set_channel_var(channel, "CC_CALLBACK_OFFER", "1")
        except (AmiError, TimeoutError, ConnectionError) as exc:
            log.info("callback offer for call %s not delivered: %s", call_id, exc)

    async def accept_from_hold(self, call_id: str, typed_number: str) -> None:
        """The caller pressed the key and confirmed (or typed) a number, and is hanging up: the
        call stays in the queue at its place, to be dialled out agent-first."""
        call = self.router.call(call_id)
        number = callable_number(typed_number, self.policy)
        if call is None or number is None or call.state is CallState.CONNECTED:
            reason = "unknown call" if call is None else "number not callable" if number is None else "connected"
            self.events.record("callback_refused", call_id=call_id, queue=call.queue if call else None,
                               data={"reason": reason})
            return
        self.offers.remove(call_id)
        self.acd.announcements.remove(call_id)
        effects = self.router.make_dial_out(call_id, self._dial_out(number), self.clock())
        if effects is None:
            return
        call.attrs["caller_number"] = number
        self.acd.apply(effects)
        callback = await asyncio.to_thread(self.store.add_hold, call_id, call.queue, number, call.priority,
                                           call.enqueued_at, self.clock())
        self._open[call_id] = callback
        self.events.record("callback_accepted", call_id=call_id, queue=call.queue,
                           data={"callback_id": callback.id, "source": "hold"})

    def declined(self, call_id: str) -> None:
        call = self.router.call(call_id)
        self.events.record("callback_declined", call_id=call_id, queue=call.queue if call else None)

    # ------------------------------------------------------------------ web and restart
    async def add_web(self, callback: Callback, deferred: bool) -> None:
        """A stored web request: queue it when it is due."""
        self.events.record("callback_requested", call_id=callback.call_id, queue=callback.queue,
                           data={"callback_id": callback.id, "source": "web", "not_before": callback.not_before,
                                 "not_after": callback.not_after, "deferred_to_opening": deferred})
        self._schedule(callback)

    async def restore(self) -> int:
        """At engine start: every callback not final goes back in line (or waits for its time).
        One that was being dialled when the engine stopped counts as a failed attempt: whether
        the customer was reached is unknown, and calling twice in a row is worse than later."""
        now = self.clock()
        restored = 0
        for callback in await asyncio.to_thread(self.store.open_callbacks):
            if callback.status == "dialing":
                callback = await self._finish(callback, "failed", now, agent_id=callback.agent_id)
                if callback is None:
                    continue
            self._schedule(callback)
            restored += 1
        return restored

    def _schedule(self, callback: Callback) -> None:
        self._open[callback.call_id] = callback
        at = eligible_at(callback)
        delay = at - self.clock()
        if delay <= 0:
            self._enqueue(callback)
        else:
            self._arm(callback.call_id, delay, lambda: self._enqueue(callback))
        if callback.not_after is not None:
            self._arm(f"expire:{callback.call_id}", callback.not_after - self.clock(),
                      lambda: self._tasks.spawn(self._expire(callback.call_id), f"expire {callback.call_id}"))

    def _enqueue(self, callback: Callback) -> None:
        now = self.clock()
        if self.router.call(callback.call_id) is not None:
            return  # still in line from the hold loop (an accepted offer)
        try:
            self.acd.apply(self.router.enqueue(
                callback.call_id, callback.queue, now, priority=callback.priority,
                enqueued_at=min(callback.enqueued_at, now),
                prior_offers=self._offers_made.get(callback.call_id, 0),
                attrs={"dial_out": self._dial_out(callback.number), "caller_number": callback.number,
                       "caller_name": callback.name or "", "callback_id": callback.id}))
        except RoutingError as exc:  # e.g. its queue was removed from routing.yaml meanwhile
            log.error("callback %s not queued: %s", callback.id, exc)
            self.events.record("callback_failed", call_id=callback.call_id, queue=callback.queue,
                               data={"callback_id": callback.id, "attempts": callback.attempts,
                                     "reason": str(exc)[:200]})
            self._open.pop(callback.call_id, None)
            self._tasks.spawn(asyncio.to_thread(self.store.set_status, callback.call_id, "failed", now),
                              f"fail callback {callback.id}")

    async def _expire(self, call_id: str) -> None:
        callback = self._open.get(call_id)
        call = self.router.call(call_id)
        if callback is None or (call is not None and call.state is not CallState.WAITING):
            return  # final already, or being dialled: that attempt decides
        if call is not None:
            self.acd.apply(self.router.exit(call_id, "callback_expired", self.clock()))
        self._open.pop(call_id, None)
        await asyncio.to_thread(self.store.set_status, call_id, "expired", self.clock())
        self.events.record("callback_expired", call_id=call_id, queue=callback.queue,
                           data={"callback_id": callback.id, "attempts": callback.attempts})

    async def cancel(self, callback_id: int) -> Callback | None:
        callback = await asyncio.to_thread(self.store.get, callback_id)
        if callback is None or not callback.is_open:
            return callback
        call = self.router.call(callback.call_id)
        if call is not None and call.state is not CallState.WAITING:
            raise RoutingError(f"callback {callback_id} is being dialled now")
        if call is not None:
            self.acd.apply(self.router.exit(callback.call_id, "callback_cancelled", self.clock()))
        self._open.pop(callback.call_id, None)
        self._disarm(callback.call_id)
        await asyncio.to_thread(self.store.set_status, callback.call_id, "cancelled", self.clock())
        self.events.record("callback_cancelled", call_id=callback.call_id, queue=callback.queue,
                           data={"callback_id": callback.id})
        return await asyncio.to_thread(self.store.get, callback_id)

    # ------------------------------------------------------------------ attempts (from the ACD)
    def dial_started(self, call_id: str, agent_id: str) -> None:
        """The agent answered; the customer is being dialled: one attempt."""
        if call_id in self._open:
            self._tasks.spawn(self._start(call_id, agent_id), f"attempt {call_id}")

    async def _start(self, call_id: str, agent_id: str) -> None:
        async with self._attempt_lock:
            started = await asyncio.to_thread(self.store.start_attempt, call_id, agent_id, self.clock())
        if started is not None:
            self._open[call_id] = started

    def on_effect(self, effect: Effect) -> None:
        """ACD observer: the outcome of a dial-out attempt of one of our calls."""
        if not isinstance(effect, Event) or effect.call_id not in self._open:
            return
        if effect.kind == "offered":
            self._offers_made[effect.call_id] = self._offers_made.get(effect.call_id, 0) + 1
        elif effect.kind == "answered":
            self._tasks.spawn(self._after(effect.call_id, "answered", effect.agent_id), f"answered {effect.call_id}")
        elif effect.kind == "dial_out_failed":
            self._tasks.spawn(self._after(effect.call_id, effect.data.get("outcome", "failed"), effect.agent_id),
                              f"attempt failed {effect.call_id}")

    async def _after(self, call_id: str, outcome: str, agent_id: str | None) -> None:
        async with self._attempt_lock:  # after the attempt's start (spawned before us) is stored
            callback = await asyncio.to_thread(self.store.by_call_id, call_id)
            if callback is None or not callback.is_open:
                return
            after = await self._finish(callback, outcome, self.clock(), agent_id=agent_id)
        if after is not None:
            self._schedule(after)

    async def _finish(self, callback: Callback, outcome: str, now: float, *, agent_id: str | None) -> Callback | None:
        """Store the attempt's outcome; the callback back in line for a retry, or None if final."""
        decision = after_attempt(self.policy, callback, outcome, now)
        await asyncio.to_thread(self.store.finish_attempt, callback.call_id, decision, outcome, now)
        self.events.record("callback_attempt", call_id=callback.call_id, queue=callback.queue, agent_id=agent_id,
                           data={"callback_id": callback.id, "attempt": callback.attempts, "outcome": outcome})
        if decision.final:
            self._open.pop(callback.call_id, None)
            self._disarm(callback.call_id)
            self.events.record(f"callback_{decision.status}", call_id=callback.call_id, queue=callback.queue,
                               agent_id=agent_id, data={"callback_id": callback.id, "attempts": callback.attempts})
            return None
        return await asyncio.to_thread(self.store.by_call_id, callback.call_id)

    # ------------------------------------------------------------------ helpers
    def _dial_out(self, number: str) -> Mapping[str, Any]:
        return {"kind": KIND, "number": number, "ring": self.policy.ring_seconds, "label": "callback",
                "caller_id": self.caller_id}

    def _arm(self, key: str, delay: float, action) -> None:
        self._disarm(key)
        self._timers[key] = asyncio.get_running_loop().call_later(max(0.0, delay), self._fire, key, action)

    def _fire(self, key: str, action) -> None:
        self._timers.pop(key, None)
        action()

    def _disarm(self, call_id: str) -> None:
        for key in (call_id, f"expire:{call_id}"):
            handle = self._timers.pop(key, None)
            if handle is not None:
                handle.cancel()

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self._tasks.close()
