"""The engine side of outbound campaigns: every tick, for each running campaign inside its calling
window, start as many lines as the pacing allows (``model.lines_to_start``), with the do-not-call
list checked at the moment of dialling; record each attempt's outcome and let ``model`` decide
about retries. Campaign states live in the database, so the CLI's start/pause/stop reach a
running engine at its next tick and a restarted engine carries on where it stopped.

Progressive: the customer is dialled first (AMI Originate into ``cc-campaign-answered``) and, once
they answer, waits in the campaign queue's hold loop for the next agent like any caller. Preview:
the contact is queued in the ACD as an agent-first dial-out, like a callback: the agent sees the
contact while the phone rings, answers, and only then is the customer dialled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callcenter.acd.model import AgentState, Effect, Event
from callcenter.acd.router import Router, RoutingError
from callcenter.acd.shell import AcdShell
from callcenter.asterisk.ami import AmiClient, AmiError
from callcenter.campaign import model
from callcenter.campaign.store import CampaignRow, CampaignStore, ContactRow
from callcenter.events.log import EventLog
from callcenter.runtime import BackgroundTasks

log = logging.getLogger(__name__)

KIND = "campaign"  # the dial_out kind the ACD carries for preview contacts
# Why a customer's channel hung up before answering (Q.931 cause of its Hangup event): more
# reliable than OriginateResponse's Reason, which reads a 486 Busy Here as ringing or a hang-up.
HANGUP_CAUSES = {17: model.BUSY, 18: model.NO_ANSWER, 19: model.NO_ANSWER}
CAUSE_WAIT_SECONDS = 1.0  # how long the Hangup event may trail the OriginateResponse


@dataclass
class Line:
    """One call of a campaign the dialer is following."""

    campaign: CampaignRow
    contact: ContactRow
    attempt: int
    stage: str = "dialing"  # dialing -> waiting (for an agent) -> talking
    outcome_recorded: bool = False


class CampaignDialer:
    def __init__(self, store: CampaignStore, router: Router, acd: AcdShell, ami: AmiClient, events: EventLog, *,
                 expect_caller: Callable[[str, dict], None], tick_seconds: float = 1.0, clock=time.time):
        self.store = store
        self.router = router
        self.acd = acd
        self.ami = ami
        self.events = events
        self.expect_caller = expect_caller  # how a progressive customer is queued when they answer
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.lines: dict[str, Line] = {}  # call id -> line
        self._tasks = BackgroundTasks()
        self._warned: set[str] = set()
        self._causes: dict[str, asyncio.Future] = {}  # call id -> its Hangup cause, while dialling

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        await self.recover()
        while True:
            try:
                await self.tick()
            except Exception:  # a bad tick is logged; the next one tries again
                log.exception("campaign dialer tick failed")
            await asyncio.sleep(self.tick_seconds)

    async def recover(self) -> None:
        """After a restart: calls claimed before it whose outcome was never recorded. A customer's
        channel still up (ringing, or waiting in the hold loop) is followed again; anything else
        was lost and counts as ``interrupted`` (retried by the campaign's rule)."""
        for contact in await asyncio.to_thread(self.store.dialing_contacts):
            campaign = await asyncio.to_thread(self.store.get_by_id, contact.campaign_id)
            call_id = contact.call_id or ""
            line = Line(campaign, contact, contact.attempts)
            if call_id and campaign.spec.pacing.mode == model.PROGRESSIVE and await self._channel_alive(call_id):
                self.lines[call_id] = line
                self.expect_caller(call_id, self._context(campaign, contact))
                log.info("campaign %s: call %s survived the restart", campaign.name, call_id)
            else:
                await self._record(call_id, line, model.INTERRUPTED)

    async def tick(self) -> None:
        now = self.clock()
        for campaign in await asyncio.to_thread(self.store.list):
            if campaign.state != model.RUNNING:
                continue
            if await asyncio.to_thread(self.store.all_done, campaign.id):
                if not any(line.campaign.id == campaign.id for line in self.lines.values()):
                    await asyncio.to_thread(self.store.set_state, campaign.name, model.COMPLETED)
                    self.events.record("campaign_state", queue=campaign.spec.queue,
                                       data={"campaign": campaign.name, "state": model.COMPLETED})
                continue
            if not model.in_window(campaign.spec, now):
                continue
            if campaign.spec.queue not in self.router.queues:
                if campaign.name not in self._warned:
                    self._warned.add(campaign.name)
                    log.error("campaign %s: queue %s is not in the routing file", campaign.name, campaign.spec.queue)
                continue
            await self._start_lines(campaign, now)

    async def _start_lines(self, campaign: CampaignRow, now: float) -> None:
        spec = campaign.spec
        mine = [line for line in self.lines.values() if line.campaign.id == campaign.id]
        free = sum(1 for a in self.router.agents()
                   if a.state is AgentState.AVAILABLE and spec.queue in a.queues)
        unserved = sum(1 for line in mine if line.stage != "talking")
        wanted = model.lines_to_start(spec.pacing.mode, free, unserved, spec.pacing.lines_per_agent,
                                      spec.pacing.max_lines)
        wanted = min(wanted, spec.pacing.max_lines - len(mine))  # the cap counts every line up
        if wanted <= 0:
            return
        for contact in await asyncio.to_thread(self.store.due_contacts, campaign.id, now, wanted):
            if await asyncio.to_thread(self.store.dnc_listed, contact.number):  # the list always wins
                await self._record("", Line(campaign, contact, contact.attempts), model.DNC)  # never dialled
                continue
            attempt = contact.attempts + 1
            call_id = f"cp{contact.id}a{attempt}"
            if not await asyncio.to_thread(self.store.claim_for_dialing, contact.id, call_id, now):
                continue  # someone else took it (or it is no longer due)
            line = Line(campaign, contact, attempt)
            self.lines[call_id] = line
            self.events.record("campaign_dialed", call_id=call_id, queue=spec.queue,
                               data={"campaign": campaign.name, "contact_id": contact.id, "attempt": attempt,
                                     "mode": spec.pacing.mode})
            if spec.pacing.mode == model.PROGRESSIVE:
                self._tasks.spawn(self._dial_customer(call_id, line), f"campaign call {call_id}")
            else:
                self._queue_preview(call_id, line)

    # ------------------------------------------------------------------ progressive
    async def _dial_customer(self, call_id: str, line: Line) -> None:
        spec = line.campaign.spec
        self.expect_caller(call_id, self._context(line.campaign, line.contact))
        cause = self._causes[call_id] = asyncio.get_running_loop().create_future()
        try:
            result = await self.ami.originate_to_context(
                channel=f"PJSIP/{line.contact.number}@trunk", context="cc-campaign-answered", exten="s",
                ring_timeout=spec.ring_seconds, channel_id=call_id,
                caller_id=f'"{line.campaign.name}" <{spec.caller_id}>',
                variables={"CC_QUEUE": spec.queue, "CC_PRIORITY": "0", "CC_CAMPAIGN": line.campaign.name,
                           "CC_DIAL_NUMBER": line.contact.number})
            outcome = model.map_originate_reason(result.reason, result.answered)
            if outcome != model.CONNECTED:
                try:
                    outcome = HANGUP_CAUSES.get(await asyncio.wait_for(cause, CAUSE_WAIT_SECONDS), outcome)
                except TimeoutError:
                    pass
        except (AmiError, TimeoutError, ConnectionError, ValueError) as exc:
            log.warning("campaign %s: call %s not placed: %s", line.campaign.name, call_id, exc)
            outcome = model.FAILED
        finally:
            self._causes.pop(call_id, None)
        if outcome == model.CONNECTED:
            if line.stage == "dialing":
                line.stage = "waiting"
        else:
            self.lines.pop(call_id, None)
        await self._record(call_id, line, outcome)

    # ------------------------------------------------------------------ preview
    def _queue_preview(self, call_id: str, line: Line) -> None:
        spec = line.campaign.spec
        contact = line.contact
        try:
            self.acd.apply(self.router.enqueue(call_id, spec.queue, self.clock(), attrs={
                "dial_out": {"kind": KIND, "number": contact.number, "ring": spec.ring_seconds,
                             "label": line.campaign.name, "caller_id": spec.caller_id},
                **self._context(line.campaign, contact)}))
        except RoutingError as exc:
            log.error("campaign %s: contact %s not queued: %s", line.campaign.name, contact.id, exc)
            self.lines.pop(call_id, None)
            self._tasks.spawn(self._record(call_id, line, model.FAILED), f"record {call_id}")

    # ------------------------------------------------------------------ what happens to the calls
    def on_effect(self, effect: Effect) -> None:
        """ACD observer: our lines being answered by an agent, ended, or failed (preview)."""
        if not isinstance(effect, Event) or effect.call_id not in self.lines:
            return
        line = self.lines[effect.call_id]
        if effect.kind == "answered":
            line.stage = "talking"
            if line.campaign.spec.pacing.mode == model.PREVIEW:  # the customer picked up
                self._tasks.spawn(self._record(effect.call_id, line, model.CONNECTED), f"record {effect.call_id}")
        elif effect.kind == "dial_out_failed":
            self.lines.pop(effect.call_id, None)
            outcome = effect.data.get("outcome")  # busy, no_answer or failed: the customer never answered
            if outcome not in model.OUTCOMES:
                outcome = model.FAILED
            self._tasks.spawn(self._record(effect.call_id, line, outcome), f"record {effect.call_id}")
        elif effect.kind in ("ended", "abandoned", "exited"):
            self.lines.pop(effect.call_id, None)

    def caller_queued(self, call_id: str) -> None:
        """A progressive customer reached the hold loop (also one followed again after a restart)."""
        line = self.lines.get(call_id)
        if line is not None and line.stage == "dialing":
            line.stage = "waiting"
            if not line.outcome_recorded:
                self._tasks.spawn(self._record(call_id, line, model.CONNECTED), f"record {call_id}")

    def channel_gone(self, call_id: str, cause: str = "") -> None:
        """A customer's channel hung up. One followed after a restart that never reached the hold
        loop did not answer."""
        waiting = self._causes.get(call_id)
        if waiting is not None and not waiting.done():
            waiting.set_result(int(cause) if cause.isdigit() else 0)
            return  # _dial_customer records the outcome
        line = self.lines.pop(call_id, None)
        if line is not None and not line.outcome_recorded and line.stage == "dialing":
            self._tasks.spawn(self._record(call_id, line, model.NO_ANSWER), f"record {call_id}")

    async def _record(self, call_id: str, line: Line, outcome: str) -> None:
        if line.outcome_recorded:
            return
        line.outcome_recorded = True
        now = self.clock()
        decision = model.after_outcome(line.campaign.spec, outcome, line.contact.outcomes, now)
        stored = await asyncio.to_thread(self.store.record_outcome, line.contact.id, outcome, decision, now,
                                         call_id=call_id or None)
        if not stored:
            return
        self.events.record("campaign_outcome", call_id=call_id or None, queue=line.campaign.spec.queue,
                           data={"campaign": line.campaign.name, "contact_id": line.contact.id,
                                 "attempt": line.attempt, "outcome": outcome,
                                 "final": decision.status != model.PENDING})

    def disposition_saved(self, event: dict) -> None:
        """Event-log listener: an agent's wrap-up code lands on the campaign contact of the call."""
        if event["kind"] == "disposition" and str(event.get("call_id") or "").startswith("cp"):
            self._tasks.spawn(asyncio.to_thread(self.store.set_disposition, event["call_id"],
                                                str(event["data"].get("disposition", ""))),
                              f"disposition {event['call_id']}")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _context(campaign: CampaignRow, contact: ContactRow) -> dict[str, Any]:
        """What travels with the call to the agent's screen pop and the events."""
        return {"campaign": campaign.name, "campaign_contact": contact.id, "caller_number": contact.number,
                "caller_name": contact.name or "", "customer_id": contact.customer_id or ""}

    async def _channel_alive(self, channel_id: str) -> bool:
        try:
            await self.ami.action("Getvar", Channel=channel_id, Variable="CC_CAMPAIGN")
            return True
        except (AmiError, TimeoutError, ConnectionError):
            return False

    async def close(self) -> None:
        await self._tasks.close()
