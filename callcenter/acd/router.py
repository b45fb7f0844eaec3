"""The ACD router: a deterministic state machine from inputs (with ``now``) to effects.

Every public method that changes something returns the effects in the order they logically
happen. Any change that could make a match (a call arrives, an agent frees up, skills change)
runs ``_dispatch`` before returning, so after every call this holds: no available agent coexists
with a waiting call it could serve. There is no polling.

Strategy (one queue per skill):
- callers: higher priority first, then earlier enqueue time, then arrival order at the router;
- agents: longest idle first (earliest ``idle_since``), then lowest agent id.
Matching walks waiting calls in that caller order across all queues and gives each the
longest-idle eligible agent. When one agent frees up this is exactly "the best call among the
queues it serves"; when one call arrives it is exactly "the longest-idle agent for it".
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from callcenter.acd.model import (
    OFFER_FAILURE_REASONS,
    Agent,
    AgentState,
    Call,
    CallState,
    CancelOffer,
    Effect,
    Event,
    Offer,
    RoutingError,
    StartTimer,
)


def call_order(call: Call) -> tuple[int, float, int]:
    """Sort key for callers: the smallest goes first."""
    return (-call.priority, call.enqueued_at, call.sequence)


def agent_id_order(agent_id: str) -> tuple[int, int, str]:
    # Agent ids are extensions ("999", "1001"): compare them as numbers so "999" < "1001".
    if agent_id.isdigit():
        return (0, int(agent_id), agent_id)
    return (1, 0, agent_id)


def agent_order(agent: Agent) -> tuple[float, tuple[int, int, str]]:
    """Sort key for available agents: the smallest is offered the next call."""
    assert agent.idle_since is not None, "available agents always have idle_since"
    return (agent.idle_since, agent_id_order(agent.agent_id))


def failure_event_kind(reason: str) -> str:
    """'ring-no-answer' -> 'ring_no_answer': event kinds are identifiers."""
    return reason.replace("-", "_")


class Router:
    """ACD core for one set of queues. Pure: no I/O, no clock, no randomness."""

    def __init__(self, queues: Iterable[str], ring_timeout: float, wrapup_seconds: float) -> None:
        names = list(queues)
        if not names:
            raise RoutingError("a router needs at least one queue")
        for name in names:
            if not isinstance(name, str) or not name:
                raise RoutingError(f"queue name {name!r} must be a non-empty string")
        if len(set(names)) != len(names):
            raise RoutingError(f"queue names must be unique: {names}")
        if not ring_timeout > 0:
            raise RoutingError(f"ring_timeout must be positive, got {ring_timeout!r}")
        if not wrapup_seconds >= 0:
            raise RoutingError(f"wrapup_seconds must be zero or positive, got {wrapup_seconds!r}")
        self.ring_timeout = float(ring_timeout)
        self.wrapup_seconds = float(wrapup_seconds)
        # Per queue, the calls with no offer outstanding, kept sorted by call_order.
        self._waiting: dict[str, list[Call]] = {name: [] for name in names}
        self._calls: dict[str, Call] = {}
        self._agents: dict[str, Agent] = {}
        self._offers: dict[str, Call] = {}  # outstanding offer id -> its call
        self._next_sequence = 0

    # ---- read-only views ------------------------------------------------------------------

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self._waiting)

    def call(self, call_id: str) -> Call | None:
        """The live call (waiting, ringing or connected), or None once it has ended."""
        return self._calls.get(call_id)

    def agent(self, agent_id: str) -> Agent | None:
        """The agent, or None if it never logged in."""
        return self._agents.get(agent_id)

    def agents_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every known agent as plain data, ordered by agent id."""
        agents = sorted(self._agents.values(), key=lambda a: agent_id_order(a.agent_id))
        return [self._agent_view(agent, now) for agent in agents]

    def queues_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every queue as plain data, in configuration order; waiting calls in offer order."""
        return [self._queue_view(name, now) for name in self._waiting]

    def _agent_view(self, agent: Agent, now: float) -> dict[str, Any]:
        return {
            "agent_id": agent.agent_id,
            "state": agent.state.value,
            "since": agent.state_since,
            "seconds_in_state": now - agent.state_since,
            "idle_since": agent.idle_since,
            "reason": agent.pause_reason,
            "skills": sorted(agent.skills),
            "call_id": agent.call_id,
            "calls_answered": agent.calls_answered,
        }

    def _queue_view(self, name: str, now: float) -> dict[str, Any]:
        ringing = sorted(
            (c for c in self._calls.values() if c.queue == name and c.state is CallState.RINGING),
            key=call_order,
        )
        logged_in = [
            a for a in self._agents.values() if name in a.skills and a.state is not AgentState.LOGGED_OUT
        ]
        return {
            "queue": name,
            "waiting": [
                {"call_id": c.call_id, "priority": c.priority, "wait": now - c.enqueued_at}
                for c in self._waiting[name]
            ],
            "ringing": [
                {
                    "call_id": c.call_id,
                    "priority": c.priority,
                    "wait": now - c.enqueued_at,
                    "agent_id": c.agent_id,
                }
                for c in ringing
            ],
            "agents_available": sum(1 for a in logged_in if a.state is AgentState.AVAILABLE),
            "agents_logged_in": len(logged_in),
        }

    # ---- calls ----------------------------------------------------------------------------

    def enqueue(
        self,
        call_id: str,
        queue: str,
        now: float,
        *,
        priority: int = 0,
        attrs: dict[str, Any] | None = None,
        enqueued_at: float | None = None,
    ) -> list[Effect]:
        """A caller enters ``queue``. Call ids must be unique for the router's lifetime, since
        offer ids (the shell's idempotency keys) are derived from them. ``priority`` and
        ``attrs`` are keyword-only so that a swapped ``priority``/``now`` cannot pass silently.
        ``enqueued_at`` (default ``now``) keeps the place of a caller who was already waiting,
        e.g. one re-adopted after an engine restart."""
        if enqueued_at is not None and enqueued_at > now:
            raise RoutingError(f"enqueued_at {enqueued_at} is in the future (now {now})")
        if queue not in self._waiting:
            raise RoutingError(f"unknown queue {queue!r} (known: {', '.join(self._waiting)})")
        if call_id in self._calls:
            raise RoutingError(f"call {call_id!r} is already in the ACD")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise RoutingError(f"priority must be an int, got {priority!r}")
        call = Call(
            call_id=call_id,
            queue=queue,
            priority=priority,
            enqueued_at=now if enqueued_at is None else enqueued_at,
            sequence=self._next_sequence,
            attrs=dict(attrs or {}),
        )
        self._next_sequence += 1
        self._calls[call_id] = call
        self._add_waiting(call)
        queued = Event("queued", call_id, queue, None, {"priority": priority})
        return [queued, *self._dispatch(now)]

    def offer_answered(self, offer_id: str, now: float) -> list[Effect]:
        """The agent picked up: the call is connected. Stale offer ids are ignored."""
        call = self._offers.pop(offer_id, None)
        if call is None:
            return []
        agent = self._agent_of(call)
        call.state = CallState.CONNECTED
        call.offer_id = None
        call.answered_at = now
        agent.offer_id = None
        agent.calls_answered += 1
        answered = Event(
            "answered", call.call_id, call.queue, agent.agent_id,
            {"offer_id": offer_id, "wait": now - call.enqueued_at},
        )
        return [answered, self._set_state(agent, AgentState.ON_CALL, now)]

    def offer_failed(self, offer_id: str, reason: str, now: float) -> list[Effect]:
        """The agent did not take the offer. The agent is auto-paused with ``reason`` (so it is
        not offered this or any call again until it unpauses) and the call goes back to its
        original place in the queue and is offered on at once. Stale offer ids are ignored."""
        if reason not in OFFER_FAILURE_REASONS:
            raise RoutingError(f"offer failure reason {reason!r} not one of {sorted(OFFER_FAILURE_REASONS)}")
        call = self._offers.pop(offer_id, None)
        if call is None:
            return []
        agent = self._agent_of(call)
        self._withdraw_offer(call, agent, requeue=True)
        failed = Event(
            failure_event_kind(reason), call.call_id, call.queue, agent.agent_id, {"offer_id": offer_id}
        )
        paused = self._set_state(agent, AgentState.PAUSED, now, reason=reason)
        return [failed, paused, *self._dispatch(now)]

    def call_ended(self, call_id: str, now: float) -> list[Effect]:
        """The conversation is over. The agent wraps up (or, with no wrap-up time, is available
        at once). A call that was never connected ended from the caller's side: an abandon.
        Unknown call ids are ignored."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        if call.state is not CallState.CONNECTED:
            return self.abandon(call_id, now)
        del self._calls[call_id]
        agent = self._agent_of(call)
        assert call.answered_at is not None
        ended = Event("ended", call.call_id, call.queue, agent.agent_id, {"talk": now - call.answered_at})
        return [ended, *self._start_wrapup(agent, now)]

    def abandon(self, call_id: str, now: float) -> list[Effect]:
        """The caller hung up. A ringing offer is cancelled and its agent returns to available
        with its idle time intact (ringing is not work). Unknown call ids are ignored."""
        return self._leave(call_id, now, Event("abandoned", call_id, None, None, {}))

    def exit(self, call_id: str, reason: str, now: float) -> list[Effect]:
        """The call left the queue without reaching an agent and without hanging up (e.g. it was
        sent to the fallback route): like an abandon, but logged as ``exited`` with ``reason``.
        A connected call is not affected. Unknown call ids are ignored."""
        call = self._calls.get(call_id)
        if call is None or call.state is CallState.CONNECTED:
            return []
        return self._leave(call_id, now, Event("exited", call_id, None, None, {"reason": reason}))

    def _leave(self, call_id: str, now: float, template: Event) -> list[Effect]:
        call = self._calls.get(call_id)
        if call is None:
            return []
        if call.state is CallState.CONNECTED:
            return self.call_ended(call_id, now)
        del self._calls[call_id]
        abandoned = Event(
            template.kind, call.call_id, call.queue, call.agent_id,
            {**template.data, "wait": now - call.enqueued_at, "stage": call.state.value},
        )
        if call.state is CallState.WAITING:
            self._remove_waiting(call)
            return [abandoned]
        agent = self._agent_of(call)
        cancel = self._cancel_offer(call, agent, requeue=False)
        back = self._set_state(agent, AgentState.AVAILABLE, now, keep_idle_since=True)
        return [cancel, abandoned, back, *self._dispatch(now)]

    # ---- agents ---------------------------------------------------------------------------

    def login(self, agent_id: str, skills: Iterable[str], now: float) -> list[Effect]:
        """The agent starts serving the queues named by ``skills`` and is available at once."""
        if not isinstance(agent_id, str) or not agent_id:
            raise RoutingError(f"agent id {agent_id!r} must be a non-empty string")
        skill_set = self._checked_skills(skills)
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = self._agents[agent_id] = Agent(agent_id=agent_id, skills=skill_set, state_since=now)
        elif agent.state is not AgentState.LOGGED_OUT:
            raise RoutingError(f"agent {agent_id} is already logged in ({agent.state.value})")
        agent.skills = skill_set
        return [self._set_state(agent, AgentState.AVAILABLE, now), *self._dispatch(now)]

    def logout(self, agent_id: str, now: float) -> list[Effect]:
        """The agent stops serving. A ringing offer is withdrawn and its call offered on;
        refused while the agent is on a call."""
        agent = self._known_agent(agent_id)
        if agent.state in (AgentState.LOGGED_OUT, AgentState.ON_CALL):
            raise RoutingError(f"agent {agent_id} cannot log out while {agent.state.value}")
        effects = self._leave_state(agent)
        effects.append(self._set_state(agent, AgentState.LOGGED_OUT, now))
        effects.extend(self._dispatch(now))
        return effects

    def pause(self, agent_id: str, reason: str, now: float) -> list[Effect]:
        """The agent takes a break. Allowed from available, wrap-up (ending it early), paused
        (changing the reason) and reserved (withdrawing the offer); refused on a call."""
        agent = self._known_agent(agent_id)
        if not isinstance(reason, str) or not reason.strip():
            raise RoutingError("a pause needs a non-empty reason")
        if agent.state in (AgentState.LOGGED_OUT, AgentState.ON_CALL):
            raise RoutingError(f"agent {agent_id} cannot pause while {agent.state.value}")
        effects = self._leave_state(agent)
        effects.append(self._set_state(agent, AgentState.PAUSED, now, reason=reason))
        effects.extend(self._dispatch(now))
        return effects

    def unpause(self, agent_id: str, now: float) -> list[Effect]:
        """The agent is back: available, with its idle time starting now."""
        agent = self._known_agent(agent_id)
        if agent.state is not AgentState.PAUSED:
            raise RoutingError(f"agent {agent_id} is {agent.state.value}, not paused")
        return [self._set_state(agent, AgentState.AVAILABLE, now), *self._dispatch(now)]

    def wrapup_done(self, agent_id: str, now: float) -> list[Effect]:
        """The wrap-up timer fired. Ignored unless the agent is still in wrap-up (it may have
        paused or logged out meanwhile)."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is not AgentState.WRAP_UP:
            return []
        done = Event("wrapup_done", agent.call_id, None, agent_id, {})
        return [done, self._set_state(agent, AgentState.AVAILABLE, now), *self._dispatch(now)]

    def set_skills(self, agent_id: str, skills: Iterable[str], now: float) -> list[Effect]:
        """Replace the agent's skills. An offer already ringing stands; the new skills apply
        from the next routing decision, which is made right away if the agent is available."""
        agent = self._known_agent(agent_id)
        agent.skills = self._checked_skills(skills)
        return self._dispatch(now)

    # ---- matching -------------------------------------------------------------------------

    def _dispatch(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        while (match := self._next_match()) is not None:
            call, agent = match
            effects.extend(self._make_offer(call, agent, now))
        return effects

    def _next_match(self) -> tuple[Call, Agent] | None:
        # Within a queue every eligible agent can take any of its calls, so only heads compete.
        heads = sorted((waiting[0] for waiting in self._waiting.values() if waiting), key=call_order)
        for call in heads:
            agent = self._longest_idle_agent(call.queue)
            if agent is not None:
                return call, agent
        return None

    def _longest_idle_agent(self, queue: str) -> Agent | None:
        # A linear scan is plenty for a few hundred agents; a per-queue index can come with
        # proficiency-based skills routing, which changes this choice anyway.
        eligible = [a for a in self._agents.values() if a.state is AgentState.AVAILABLE and queue in a.skills]
        return min(eligible, key=agent_order, default=None)

    def _make_offer(self, call: Call, agent: Agent, now: float) -> list[Effect]:
        self._remove_waiting(call)
        call.offers_made += 1
        offer_id = f"{call.call_id}/{call.offers_made}"
        call.state = CallState.RINGING
        call.agent_id = agent.agent_id
        call.offer_id = offer_id
        agent.call_id = call.call_id
        agent.offer_id = offer_id
        self._offers[offer_id] = call
        offer = Offer(offer_id, call.call_id, agent.agent_id, call.queue, self.ring_timeout)
        offered = Event(
            "offered", call.call_id, call.queue, agent.agent_id,
            {"offer_id": offer_id, "attempt": call.offers_made},
        )
        reserved = self._set_state(agent, AgentState.RESERVED, now)
        return [offer, offered, reserved]

    # ---- helpers --------------------------------------------------------------------------

    def _leave_state(self, agent: Agent) -> list[Effect]:
        """Undo what the agent's current state holds before it logs out or pauses: a ringing
        offer is cancelled and its call goes back to its place in the queue. A pending wrap-up
        timer needs nothing; wrapup_done will find the agent no longer in wrap-up."""
        if agent.state is not AgentState.RESERVED:
            return []
        assert agent.offer_id is not None
        call = self._offers[agent.offer_id]
        return [self._cancel_offer(call, agent, requeue=True)]

    def _cancel_offer(self, call: Call, agent: Agent, *, requeue: bool) -> CancelOffer:
        assert call.offer_id is not None
        cancel = CancelOffer(call.offer_id, call.call_id, agent.agent_id)
        del self._offers[call.offer_id]
        self._withdraw_offer(call, agent, requeue=requeue)
        return cancel

    def _withdraw_offer(self, call: Call, agent: Agent, *, requeue: bool) -> None:
        """Detach an offer (already out of ``_offers``) from both sides."""
        agent.offer_id = None
        agent.call_id = None
        call.offer_id = None
        call.agent_id = None
        if requeue:
            # Same priority, enqueue time and sequence: the caller keeps its place in line.
            call.state = CallState.WAITING
            self._add_waiting(call)

    def _start_wrapup(self, agent: Agent, now: float) -> list[Effect]:
        if self.wrapup_seconds == 0:
            return [self._set_state(agent, AgentState.AVAILABLE, now), *self._dispatch(now)]
        wrapping = self._set_state(agent, AgentState.WRAP_UP, now)
        return [wrapping, StartTimer(key=f"wrapup:{agent.agent_id}", at=now + self.wrapup_seconds)]

    def _set_state(
        self,
        agent: Agent,
        state: AgentState,
        now: float,
        reason: str | None = None,
        keep_idle_since: bool = False,
    ) -> Event:
        agent.state = state
        agent.state_since = now
        agent.pause_reason = reason if state is AgentState.PAUSED else None
        if state is AgentState.AVAILABLE and not keep_idle_since:
            agent.idle_since = now
        if state in (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.LOGGED_OUT):
            agent.call_id = None  # the wrap-up call, if any, is behind the agent now
        data = {"state": state.value, "reason": agent.pause_reason}
        return Event("agent_state", None, None, agent.agent_id, data)

    def _add_waiting(self, call: Call) -> None:
        bisect.insort(self._waiting[call.queue], call, key=call_order)

    def _remove_waiting(self, call: Call) -> None:
        self._waiting[call.queue].remove(call)

    def _checked_skills(self, skills: Iterable[str]) -> frozenset[str]:
        if isinstance(skills, str):
            # A bare string would iterate as letters and fail confusingly below.
            raise RoutingError(f"skills must be a collection of queue names, not the string {skills!r}")
        skill_set = frozenset(skills)
        unknown = sorted(s for s in skill_set if s not in self._waiting)
        if unknown:
            known = ", ".join(self._waiting)
            raise RoutingError(f"unknown skill(s) {unknown}: every skill must be a queue ({known})")
        return skill_set

    def _agent_of(self, call: Call) -> Agent:
        assert call.agent_id is not None, f"call {call.call_id} has no agent"
        return self._agents[call.agent_id]

    def _known_agent(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise RoutingError(f"unknown agent {agent_id!r}")
        return agent
