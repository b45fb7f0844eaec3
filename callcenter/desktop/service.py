"""Each agent's desk: the call they are being offered, talking to or wrapping up, its screen pop,
and what they record about it.

Follows the ACD's effects (``AcdShell.observers``): an ``Offer`` is the moment the agent's phone
starts ringing, so the pop goes out then, first with what the engine knows (queue, wait, caller
ID), then completed with the CRM's answer (customer, last contacts, open issues) and the IVR path,
within the CRM timeout; a slow or failing CRM leaves it at "unknown caller" and never touches the
offer itself. Every change of an agent's desk is pushed whole to that agent's live channel.

When a call ends, its interaction is written to the CRM's log; the agent's wrap-up form
(disposition, resolved on first contact, notes) completes the same row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from callcenter.acd.model import AgentState, Effect, Event, Offer
from callcenter.acd.router import Router
from callcenter.crm.lookup import CustomerDirectory
from callcenter.crm.store import CrmStore
from callcenter.desktop.figures import agent_day_figures
from callcenter.desktop.pop import HISTORY_LIMIT, OPEN_ISSUES_LIMIT, CrmFacts, RingingCall, matched_by_ivr, screen_pop
from callcenter.desktop.webhook import PopWebhook
from callcenter.events.log import EventLog, read_agent_day
from callcenter.runtime import BackgroundTasks

log = logging.getLogger(__name__)

OFFER_ENDINGS = frozenset({"ring_no_answer", "busy", "unreachable", "abandoned", "exited"})
MAX_NOTES = 4000
RECENT_CALLS = 50  # the calls an agent may still write a disposition for


class DesktopError(Exception):
    """The agent's request is refused (unknown disposition, notes too long...)."""


class NotYourCall(DesktopError):
    """The call was never offered to this agent (or is too long ago)."""


@dataclass
class Desk:
    call: RingingCall | None = None
    stage: str | None = None  # ringing | connected | wrap_up | done
    pop: dict[str, Any] | None = None
    customer_id: int | None = None
    outcome: dict[str, Any] = field(default_factory=dict)  # what the agent saved for this call
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_CALLS))


# (agent id, event name, data) -> pushes it to whoever watches that agent
Publish = Callable[[str, str, object], object]


class DesktopService:
    def __init__(self, router: Router, events: EventLog, db: Engine, *, dispositions: Sequence[str],
                 pause_reasons: Sequence[str], webhook: PopWebhook | None = None,
                 held: Callable[[str], bool] = lambda call_id: False,
                 recording_paused: Callable[[str], bool] = lambda call_id: False, clock=time.time):
        self.router = router
        self.events = events
        self.db = db
        self.dispositions = tuple(dispositions)
        self.pause_reasons = tuple(pause_reasons)
        self.webhook = webhook
        self.held = held
        self.recording_paused = recording_paused
        self.clock = clock
        self.crm: CustomerDirectory | None = None  # once the CRM tables exist (engine start)
        self.publish: Publish = lambda agent_id, event, data: None
        self.desks: dict[str, Desk] = {}
        self._tasks = BackgroundTasks()
        # one interaction write at a time: the call's end and the agent's form may race to create its row
        self._writes = asyncio.Lock()

    # ------------------------------------------------------------------ following the ACD
    def on_effect(self, effect: Effect) -> None:
        if isinstance(effect, Offer):
            self._ringing(effect)
        elif isinstance(effect, Event) and effect.agent_id:
            self._on_event(effect)

    def _ringing(self, offer: Offer) -> None:
        call = self.router.call(offer.call_id)
        if call is None:
            return
        attrs = call.attrs
        ringing = RingingCall(
            call_id=call.call_id, offer_id=offer.offer_id, agent_id=offer.agent_id, queue=call.queue,
            enqueued_at=call.enqueued_at, caller_number=attrs.get("caller_number", ""),
            caller_name=attrs.get("caller_name", ""), ivr_flow=attrs.get("ivr_flow"),
            ivr_variables=attrs.get("ivr_variables") or {}, ivr_trail=attrs.get("ivr_trail") or ())
        desk = self.desks.setdefault(offer.agent_id, Desk())
        desk.call, desk.stage, desk.customer_id, desk.outcome = ringing, "ringing", None, {}
        desk.pop = screen_pop(ringing, CrmFacts("pending"), self.clock())
        desk.recent.append(call.call_id)
        self._push(offer.agent_id)
        self._tasks.spawn(self._complete_pop(offer.agent_id, ringing), f"screen pop {offer.offer_id}")

    async def _complete_pop(self, agent_id: str, ringing: RingingCall) -> None:
        if self.crm is None:
            facts = CrmFacts("unavailable")
        else:
            answered, facts = await self.crm.bounded(f"screen pop for call {ringing.call_id}", self._crm_facts,
                                                     self.crm.store, ringing)
            facts = facts if answered else CrmFacts("unavailable")
        pop = screen_pop(ringing, facts, self.clock())
        desk = self.desks.get(agent_id)
        if desk is not None and desk.call is not None and desk.call.offer_id == ringing.offer_id:
            desk.pop = pop
            desk.customer_id = facts.customer.id if facts.customer else None
            self._push(agent_id)
        self.events.record("screen_pop", call_id=ringing.call_id, agent_id=agent_id,
                           data={"crm": facts.status, "customer_id": pop["customer"]["id"] if pop["customer"] else None})
        if self.webhook is not None:
            failure = await self.webhook.send(pop)
            if failure is not None:
                log.warning("screen-pop webhook for call %s: %s", ringing.call_id, failure)
                self.events.record("pop_webhook_failed", call_id=ringing.call_id, agent_id=agent_id,
                                   data={"error": failure})

    @staticmethod
    def _crm_facts(store: CrmStore, call: RingingCall) -> CrmFacts:
        """In a worker thread: the customer (the IVR's, else by calling number), their contacts."""
        customer_id = call.ivr_variables.get("customer_id")
        if customer_id and str(customer_id).isdigit():
            card = store.card(int(customer_id), matched_by_ivr(call.ivr_trail) or "phone")
        else:
            card = store.lookup_by_number(call.caller_number) if call.caller_number else None
        if card is None:
            return CrmFacts("not_found")
        return CrmFacts("found", card, store.recent_interactions(card.id, HISTORY_LIMIT),
                        store.open_issues(card.id, OPEN_ISSUES_LIMIT))

    def _on_event(self, event: Event) -> None:
        agent_id = event.agent_id
        desk = self.desks.setdefault(agent_id, Desk())
        current = desk.call is not None and desk.call.call_id == event.call_id
        if event.kind == "answered" and current:
            desk.stage = "connected"
        elif event.kind in OFFER_ENDINGS and current and desk.stage == "ringing":
            desk.call, desk.stage, desk.pop = None, None, None
        elif event.kind == "ended" and current:
            desk.stage = "wrap_up"
            self._tasks.spawn(self._store_outcome(agent_id, event.call_id, desk.call, desk.customer_id, {}),
                              f"interaction {event.call_id}")
        elif event.kind == "wrapup_done" and current:
            desk.stage = "done"
        elif event.kind != "agent_state":
            return
        self._push(agent_id)

    # ------------------------------------------------------------------ what the agent sees
    def desk_view(self, agent_id: str) -> dict[str, Any]:
        now = self.clock()
        agent = self.router.agent_snapshot(agent_id, now)
        desk = self.desks.get(agent_id) or Desk()
        call = None
        if desk.call is not None:
            call = {"call_id": desk.call.call_id, "stage": desk.stage, "held": self.held(desk.call.call_id),
                    "recording_paused": self.recording_paused(desk.call.call_id),
                    "pop": desk.pop, "outcome": desk.outcome}
        state = agent["state"] if agent else AgentState.LOGGED_OUT.value
        return {
            "agent": {"id": agent_id, "state": state, "since": agent["since"] if agent else None,
                      "reason": agent["reason"] if agent else None, "queues": agent["queues"] if agent else []},
            "call": call,
            "now": now,
        }

    def options(self, agent_id: str) -> dict[str, Any]:
        """What the agent's forms offer: pause reasons, dispositions, where a call can go."""
        agents = [a["agent_id"] for a in self.router.agents_snapshot(self.clock())
                  if a["agent_id"] != agent_id and a["state"] != AgentState.LOGGED_OUT.value]
        return {"pause_reasons": list(self.pause_reasons), "dispositions": list(self.dispositions),
                "queues": list(self.router.queues), "agents": agents}

    def pop_for(self, call_id: str, agent_id: str | None) -> dict[str, Any]:
        """The call's latest pop; an agent may read only the pops of calls offered to them."""
        for owner, desk in self.desks.items():
            if desk.call is not None and desk.call.call_id == call_id and desk.pop is not None:
                if agent_id is not None and owner != agent_id:
                    break
                return desk.pop
        # the same answer for someone else's call as for no call: an agent learns nothing of others
        raise NotYourCall(f"no screen pop for call {call_id}")

    async def figures(self, agent_id: str) -> dict[str, Any]:
        now = self.clock()
        day_start = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        rows = await asyncio.to_thread(read_agent_day, self.db, agent_id, day_start)
        return agent_day_figures(rows, agent_id, day_start, now)

    # ------------------------------------------------------------------ what the agent records
    async def save_outcome(self, agent_id: str, call_id: str, *, disposition: str | None,
                           resolved: bool | None, notes: str | None) -> dict[str, Any]:
        desk = self.desks.get(agent_id)
        if desk is None or call_id not in desk.recent:
            raise NotYourCall(f"call {call_id} is not one of agent {agent_id}'s recent calls")
        if disposition is not None and disposition not in self.dispositions:
            raise DesktopError(f"unknown disposition {disposition!r}; expected one of {list(self.dispositions)}")
        if resolved is not None and not isinstance(resolved, bool):
            raise DesktopError("resolved must be true, false or null")
        if notes is not None and (not isinstance(notes, str) or len(notes) > MAX_NOTES):
            raise DesktopError(f"notes must be text of at most {MAX_NOTES} characters")
        outcome = {k: v for k, v in (("disposition", disposition), ("resolved", resolved), ("notes", notes))
                   if v is not None}
        call = desk.call if desk.call is not None and desk.call.call_id == call_id else None
        await self._store_outcome(agent_id, call_id, call, desk.customer_id if call else None, outcome)
        if call is not None:
            desk.outcome.update(outcome)
            self._push(agent_id)
        self.events.record("disposition", call_id=call_id, agent_id=agent_id,
                           data={"disposition": disposition, "resolved": resolved})
        return {"call_id": call_id, **outcome}

    async def _store_outcome(self, agent_id: str, call_id: str, call: RingingCall | None, customer_id: int | None,
                             outcome: dict[str, Any]) -> None:
        """``call``: what the desk still knows of it (None once the agent has moved on: the row exists)."""
        if self.crm is None:
            raise DesktopError("the CRM is not ready")
        async with self._writes:
            await asyncio.to_thread(
                self.crm.store.save_call_outcome, call_id=call_id, agent_id=agent_id,
                customer_id=customer_id, caller_number=call.caller_number if call else None,
                queue=call.queue if call else None, **outcome)

    def refresh(self, agent_id: str) -> None:
        """Something the ACD does not report changed on the agent's desk (a hold)."""
        self._push(agent_id)

    def _push(self, agent_id: str) -> None:
        self.publish(agent_id, "desk", self.desk_view(agent_id))

    async def close(self) -> None:
        await self._tasks.close()
