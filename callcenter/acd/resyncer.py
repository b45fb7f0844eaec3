"""The resync's shell: after every AMI login (the engine's first included) wait for Asterisk's
FullyBooted, read every live channel with one CoreShowChannels (its ListItems count checked),
carry out the plan ``acd.resync`` makes of it, then read every device's state (DeviceStateList)
so that agents' phones that went away or came back in the gap are known. Waiting callers go through the engine's usual
"caller waiting" path; the rest through the ACD shell. Each resync is logged as a ``resynced``
event saying what it found and did, so a gap is visible in the log rather than papered over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from sqlalchemy import Engine, select

from callcenter.acd.resync import LiveChannel, ResyncPlan, WaitingCaller, parse_variables, plan_resync
from callcenter.acd.shell import AcdShell
from callcenter.asterisk.ami import AmiClient, AmiError, AmiIncompleteList
from callcenter.events.log import EventLog, events_table

log = logging.getLogger(__name__)

LIST_ATTEMPTS = 3  # a short list is read again before the resync gives up (and says so)


def answered_times(db: Engine, call_ids: list[str]) -> dict[str, float]:
    """When the event log says each call was last answered (calls found bridged after a gap)."""
    if not call_ids:
        return {}
    t = events_table.c
    query = select(t.call_id, t.ts).where(t.kind == "answered", t.call_id.in_(call_ids)).order_by(t.id)
    with db.connect() as conn:
        return {row.call_id: row.ts for row in conn.execute(query)}


class Resyncer:
    def __init__(self, ami: AmiClient, acd: AcdShell, events: EventLog, db: Engine, *,
                 caller_waiting: Callable[[str, Mapping[str, str]], None], boot_timeout: float = 10.0,
                 phone_state: Callable[[str, str], None] | None = None, clock=time.time):
        self.ami = ami
        self.acd = acd
        self.events = events
        self.db = db
        self.caller_waiting = caller_waiting  # the engine's own path for a CCHoldEnter
        self.phone_state = phone_state  # the engine's own path for a DeviceStateChange (device, state)
        self.boot_timeout = boot_timeout
        self.clock = clock
        self._lock = asyncio.Lock()  # one resync at a time, however fast the logins come
        self._gone: set[str] | None = None  # hung up while a resync reads and plans
        self.last: dict | None = None  # the last resync's summary (health, tests)

    def channel_gone(self, uniqueid: str) -> None:
        if self._gone is not None:
            self._gone.add(uniqueid)

    async def run(self) -> None:
        async with self._lock:
            started = time.monotonic()
            self._gone = set()
            try:
                booted = await self.ami.wait_fully_booted(self.boot_timeout)
                if not booted:
                    log.warning("no FullyBooted within %.0f s of the AMI login; reading the channels anyway",
                                self.boot_timeout)
                channels = await self._read_channels()
                plan = self._plan(channels)
                # when the log says the bridged calls were answered; hang-ups meanwhile are kept out
                answered = await asyncio.to_thread(answered_times, self.db,
                                                   [seen.call_id for seen in plan.adopt_connected])
                plan = self._plan(channels)
                self._carry_out(plan, answered)
                phones = await self._refresh_phones()
            except (AmiError, ConnectionError, TimeoutError) as exc:
                # the next login resyncs again; meanwhile the hold loop re-announces callers
                log.error("resync failed: %s", exc)
                self.events.record("resync_failed", data={"error": str(exc)[:200]})
                return
            finally:
                self._gone = None
            self.last = {**plan.summary(), "channels": len(channels), "phones": phones, "fully_booted": booted,
                         "ms": round((time.monotonic() - started) * 1000, 1)}
            self.events.record("resynced", data={**self.last, "calls": sorted(
                {w.call_id for w in plan.adopt_waiting} | set(plan.gone_calls)
                | {s.call_id for s in plan.adopt_connected + plan.answered_in_gap})[:200]})
            log.info("resync: %s", self.last)

    async def _read_channels(self) -> list[LiveChannel]:
        for attempt in range(1, LIST_ATTEMPTS + 1):
            try:
                items = await self.ami.list_action("CoreShowChannels", "CoreShowChannel", timeout=10)
                return [LiveChannel.from_event(item, parse_variables(item)) for item in items]
            except AmiIncompleteList as exc:
                if attempt == LIST_ATTEMPTS:
                    raise
                log.warning("CoreShowChannels came back short (%s); reading it again", exc)
        raise AssertionError("unreachable")

    async def _refresh_phones(self) -> int | None:
        """Every device's state now (DeviceStateList), to the engine's ``phone_state``: a phone
        that went away or came back while no engine watched is known before the next offer.
        How many devices were read; None if the list could not be read (the resync stands)."""
        if self.phone_state is None:
            return None
        try:
            items = await self.ami.list_action("DeviceStateList", "DeviceStateChange", timeout=10)
        except (AmiError, ConnectionError, TimeoutError) as exc:
            log.warning("device states not read at resync: %s", exc)
            return None
        for item in items:
            self.phone_state(item.get("Device", ""), item.get("State", ""))
        return len(items)

    def _plan(self, channels: list[LiveChannel]) -> ResyncPlan:
        return plan_resync(channels, list(self.acd.router.calls()), self.acd.legs, gone_since_read=self._gone or (),
                           engine=self.acd.engine_tag)

    def _carry_out(self, plan: ResyncPlan, answered: dict[str, float]) -> None:
        for waiting in plan.adopt_waiting:
            self.caller_waiting(waiting.call_id, hold_enter_fields(waiting))
        self.acd.resync(plan, self.clock(), answered)


def hold_enter_fields(waiting: WaitingCaller) -> dict[str, str]:
    """A waiting caller found by the resync, in the shape of the hold loop's CCHoldEnter event."""
    return {"Channel": waiting.channel, "Queue": waiting.queue, "CCPriority": str(waiting.priority),
            "EnqueuedAt": "" if waiting.enqueued_at is None else repr(waiting.enqueued_at),
            "CallerIDNum": waiting.caller_number, "CallerIDName": waiting.caller_name}
