"""The ACD router: a deterministic state machine from inputs (with ``now``) to effects.

Every public method that changes something returns the effects in the order they logically
happen, and leaves this true (the dispatch is work-conserving): no available agent coexists
with a waiting call whose current step it satisfies in a queue it serves. There is no polling:
a change that could make a match runs a dispatch for exactly what changed, and every widening
step and max-wait has its own timer (StartTimer effects, fired back through ``timer_fired``).

Callers are ordered by ``call_key``: priority plus queue weight first, then enqueue time, then
arrival order; with priority aging, a level of priority is worth a fixed number of seconds of
waiting, so a low-priority caller moves ahead of anyone who arrived long enough after it.

Two dispatch directions:
- a call becomes waiting (arrives, comes back from a failed offer, widens a step, overflows):
  the queue's strategy picks among the available members satisfying the call's current step;
- an agent becomes available (logs in, unpauses, ends wrap-up, is back from a cancelled offer):
  it takes the best waiting call, by ``call_key``, among all the queues it serves whose current
  step it satisfies.
Waiting calls are grouped per queue by their current requirement, so an agent tests each
distinct requirement once, not every waiting call; available agents are kept per queue in the
strategy's order, so a call usually finds its agent among the first few.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from callcenter.acd.estimates import QueueStats
from callcenter.acd.model import (
    OFFER_FAILURE_REASONS,
    Agent,
    AgentState,
    Call,
    CallState,
    CancelOffer,
    Divert,
    Effect,
    Event,
    MaxWait,
    MaxWaitAction,
    Offer,
    QueueConfig,
    RoutingError,
    StartTimer,
    Strategy,
)
from callcenter.acd.requirements import Always, Requirement, SkillError, check_skills
from callcenter.acd.transfer import is_identity_skill
from callcenter.acd.steps import MetricStep, Steps, active_step_at, next_change_at

# States in which an agent counts as staffing its queues (for the estimated wait).
STAFFED = frozenset({AgentState.AVAILABLE, AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP})
# Strategies whose pool order is the whole decision: the first eligible agent wins.
ORDERED_STRATEGIES = frozenset({Strategy.LONGEST_IDLE, Strategy.FEWEST_CALLS, Strategy.LEAST_TALK_TIME})
EXPLAIN_CANDIDATES = 5  # how many candidates an explanation lists


PHONE_OFFLINE = "phone-offline"  # the pause reason while an agent's phone does not answer Asterisk


def agent_id_order(agent_id: str) -> tuple[int, int, str]:
    # Agent ids are extensions ("999", "1001"): compare them as numbers so "999" < "1001".
    if agent_id.isdigit():
        return (0, int(agent_id), agent_id)
    return (1, 0, agent_id)


def utc_day(now: float) -> int:
    return int(now // 86400)


def failure_event_kind(reason: str) -> str:
    """'ring-no-answer' -> 'ring_no_answer': event kinds are identifiers."""
    return reason.replace("-", "_")


def _remove_sorted(agents: list[Agent], agent: Agent, key: Callable[[Agent], tuple]) -> None:
    index = bisect.bisect_left(agents, key(agent), key=key)
    assert agents[index] is agent, f"agent {agent.agent_id} missing from an index"
    del agents[index]


def eligible_key(strategy: Strategy, requirement: Requirement) -> Callable[[Agent], tuple]:
    """The order of a queue's available members who satisfy one of its requirements."""
    if strategy is Strategy.BEST_PROFICIENCY:
        return lambda a: (-(requirement.score(a.skills) or 0), a.idle_since, a.id_order)
    return pool_key(strategy)


def pool_key(strategy: Strategy) -> Callable[[Agent], tuple]:
    """The order a queue keeps its available agents in. Every key is fixed while the agent stays
    available (idle_since and today's figures only change off the pool), so the pool stays sorted."""
    if strategy is Strategy.FEWEST_CALLS:
        return lambda a: (a.calls_today, a.idle_since, a.id_order)
    if strategy is Strategy.LEAST_TALK_TIME:
        return lambda a: (a.talk_today, a.idle_since, a.id_order)
    if strategy in (Strategy.ROUND_ROBIN, Strategy.RANDOM_WEIGHTED):
        return lambda a: a.id_order
    return lambda a: (a.idle_since, a.id_order)  # longest idle, and best proficiency's tie-break


def checked_queue_configs(queues: Iterable[str | QueueConfig]) -> list[QueueConfig]:
    """Queue names unique, overflow targets known, and no overflow chain that circles."""
    configs = [q if isinstance(q, QueueConfig) else QueueConfig(q) for q in queues]
    if not configs:
        raise RoutingError("a router needs at least one queue")
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise RoutingError(f"queue names must be unique: {names}")
    known = set(names)
    for config in configs:
        target = config.max_wait.target if config.max_wait else None
        if target is not None and target not in known:
            raise RoutingError(f"queue {config.name}: max_wait overflows to unknown queue {target!r}")
    by_name = {c.name: c for c in configs}
    for config in configs:  # an overflow chain must end somewhere, or callers circle forever
        seen, current = {config.name}, config
        while current.max_wait is not None and current.max_wait.target is not None:
            current = by_name[current.max_wait.target]
            if current.name in seen:
                raise RoutingError(f"queue {config.name}: max_wait overflows in a circle back to {current.name}")
            seen.add(current.name)
    return configs


class Router:
    """ACD core for one set of queues. Pure: no I/O, no clock; randomness only from a seeded
    generator (the random-weighted strategy), so a run is reproducible."""

    def __init__(
        self,
        queues: Iterable[str | QueueConfig],
        ring_timeout: float,
        wrapup_seconds: float,
        *,
        max_no_answers: int = 1,
        priority_aging_seconds: float = 0.0,
        seed: int = 0,
        day_of: Callable[[float], int] = utc_day,
    ) -> None:
        if not ring_timeout > 0:
            raise RoutingError(f"ring_timeout must be positive, got {ring_timeout!r}")
        if not wrapup_seconds >= 0:
            raise RoutingError(f"wrapup_seconds must be zero or positive, got {wrapup_seconds!r}")
        self._check_tuning(priority_aging_seconds, max_no_answers)
        self.ring_timeout = float(ring_timeout)
        self.wrapup_seconds = float(wrapup_seconds)
        self.max_no_answers = max_no_answers
        self.priority_aging_seconds = float(priority_aging_seconds)
        self._random = random.Random(seed)
        self._day_of = day_of
        self._configs: dict[str, QueueConfig] = {}
        # Per queue: waiting calls (no offer outstanding) grouped by their current requirement,
        # each group sorted by order_key; and the available members in the strategy's order.
        self._groups: dict[str, dict[Requirement, list[Call]]] = {}
        self._pools: dict[str, list[Agent]] = {}
        self._pool_keys: dict[str, Callable[[Agent], tuple]] = {}
        # Per queue and requirement of its steps: the available members satisfying it, in the
        # strategy's order (by score first for best-proficiency), so a call's agent is the head.
        self._eligible: dict[str, dict[Requirement, tuple[list[Agent], Callable[[Agent], tuple]]]] = {}
        self._waiting_count: dict[str, int] = {}
        self._staffed: dict[str, int] = {}
        self._stats: dict[str, QueueStats] = {}
        self._round_robin_last: dict[str, tuple[int, int, str] | None] = {}
        # Per queue and steps ladder: the metric steps that held at the last look.
        self._metric_holding: dict[tuple[str, Steps], frozenset[int]] = {}
        # Per queue: how many waiting calls use each ladder that has metric steps.
        self._metric_ladders: dict[str, Counter[Steps]] = {}
        self._calls: dict[str, Call] = {}
        self._agents: dict[str, Agent] = {}
        self._offers: dict[str, Call] = {}  # outstanding offer id -> its call
        self._next_sequence = 0
        self._pools_day: int | None = None  # the day the pools' "today" figures belong to
        self._install_queues(checked_queue_configs(queues))

    # ---- configuration --------------------------------------------------------------------

    def _install_queues(self, configs: list[QueueConfig]) -> None:
        old_stats = self._stats
        self._configs = {c.name: c for c in configs}
        self._groups = {c.name: self._groups.get(c.name, {}) for c in configs}
        self._waiting_count = {c.name: self._waiting_count.get(c.name, 0) for c in configs}
        self._metric_ladders = {c.name: self._metric_ladders.get(c.name, Counter()) for c in configs}
        self._staffed = {c.name: 0 for c in configs}
        self._pool_keys = {c.name: pool_key(c.strategy) for c in configs}
        self._pools = {c.name: [] for c in configs}
        self._eligible = {c.name: {step.require: ([], eligible_key(c.strategy, step.require))
                                   for step in c.steps.steps if not isinstance(step.require, Always)}
                          for c in configs}
        self._round_robin_last = {c.name: self._round_robin_last.get(c.name) for c in configs}
        self._stats = {}
        for c in configs:
            stats = old_stats.get(c.name)
            if stats is None:
                stats = QueueStats(c.initial_handle_seconds, c.service_level_seconds)
            else:
                stats.initial_handle_seconds = c.initial_handle_seconds
                stats.service_level_seconds = c.service_level_seconds
            self._stats[c.name] = stats
        self._metric_holding.clear()
        for agent in self._agents.values():
            self._count_staffed(agent, +1)
            if agent.state is AgentState.AVAILABLE:
                self._pool_add(agent)

    def reconfigure(
        self,
        queues: Iterable[str | QueueConfig],
        now: float,
        *,
        priority_aging_seconds: float | None = None,
        max_no_answers: int | None = None,
    ) -> list[Effect]:
        """Swap in new queue rules without dropping a call: waiting calls keep their enqueue time
        and move to the new rules at once (steps, weight, strategy, max wait, aging). Refused,
        changing nothing, if the new rules are invalid or drop a queue that still has calls."""
        configs = checked_queue_configs(queues)
        aging = self.priority_aging_seconds if priority_aging_seconds is None else priority_aging_seconds
        no_answers = self.max_no_answers if max_no_answers is None else max_no_answers
        self._check_tuning(aging, no_answers)
        names = {c.name for c in configs}
        busy = sorted({c.queue for c in self._calls.values() if c.queue not in names})
        if busy:
            raise RoutingError(f"queue(s) {busy} still have calls; drain them before removing the queue")
        waiting = [c for c in self._calls.values() if c.state is CallState.WAITING]
        self.priority_aging_seconds, self.max_no_answers = float(aging), no_answers
        for call in waiting:
            self._remove_waiting(call)
        for agent in self._agents.values():
            agent.queues = agent.queues & names
        self._install_queues(configs)  # rebuilds the pools and staffing counts from the agents
        effects: list[Effect] = [Event("routing_reconfigured", data={"queues": sorted(names)})]
        for call in self._calls.values():
            if not call.steps_overridden:
                call.steps = self._configs[call.queue].steps
            override = call.max_wait_override
            if override is not None and override.target is not None and override.target not in names:
                call.max_wait_override = None  # its overflow queue is gone: the queue's own applies
            call.order_key = self.call_key(call)
            call.step_index = self._active_index(call, now)
            # Re-derived from the new max wait: now for a waiting call, when a ringing one is back.
            call.max_wait_due = False
            if call.state is CallState.WAITING:
                self._add_waiting(call)
                effects.extend(self._call_timers(call, now))
        # Many things changed at once: match every waiting call, best first.
        for call in sorted(waiting, key=lambda c: c.order_key):
            if call.state is CallState.WAITING and call.max_wait_due:
                effects.extend(self._max_wait_action(call, now))
            elif call.state is CallState.WAITING:
                effects.extend(self._offer_call(call, now, "reconfigured"))
        effects.extend(self._settle(now))
        return effects

    def queue_config(self, name: str) -> QueueConfig:
        return self._configs[name]

    # ---- read-only views ------------------------------------------------------------------

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self._configs)

    def call(self, call_id: str) -> Call | None:
        """The live call (waiting, ringing or connected), or None once it has ended."""
        return self._calls.get(call_id)

    def agent(self, agent_id: str) -> Agent | None:
        """The agent, or None if it never logged in."""
        return self._agents.get(agent_id)

    def calls(self) -> Iterator[Call]:
        return iter(self._calls.values())

    def agents(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def call_key(self, call: Call) -> tuple:
        """Sort key for callers: the smallest goes first. Aging keeps it fixed over time: all
        callers age at the same rate, so only their arrival times and levels matter."""
        level = call.priority + self._configs[call.queue].weight
        if self.priority_aging_seconds:
            return (0, call.enqueued_at - level * self.priority_aging_seconds, call.sequence)
        return (-level, call.enqueued_at, call.sequence)

    def queue_metrics(self, queue: str) -> dict[str, float]:
        """The figures metric steps test: estimated wait for a new caller, recent service level.
        A figure with no data is left out (and so never triggers a step)."""
        stats = self._stats[queue]
        metrics: dict[str, float] = {}
        # a new caller starts at the queue's first step: only members satisfying it can take it now
        first = self._configs[queue].steps.steps[0].require
        index = self._eligible[queue].get(first)
        free = len(self._pools[queue]) if index is None else len(index[0])
        wait = stats.estimated_wait(self._waiting_count[queue] + 1, self._staffed[queue], free)
        if wait is not None:
            metrics["estimated_wait"] = wait
        if stats.service_level is not None:
            metrics["service_level"] = stats.service_level
        return metrics

    def position(self, call: Call) -> int:
        """1-based place among the queue's waiting calls (any requirement)."""
        return 1 + sum(
            bisect.bisect_left(group, call.order_key, key=lambda c: c.order_key)
            for group in self._groups[call.queue].values()
        )

    def estimated_wait(self, call_id: str) -> float | None:
        """Seconds until this waiting caller is expected to reach an agent (see estimates)."""
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.WAITING:
            return 0.0 if call is not None else None
        q = call.queue
        # A waiting call has no free agent it could take (or it would be ringing one), so it
        # waits for members to free up, whatever the number of free but unsuitable ones.
        return self._stats[q].estimated_wait(self.position(call), self._staffed[q], 0)

    def agents_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every known agent as plain data, ordered by agent id."""
        agents = sorted(self._agents.values(), key=lambda a: a.id_order)
        return [self._agent_view(agent, now) for agent in agents]

    def agent_snapshot(self, agent_id: str, now: float) -> dict[str, Any] | None:
        """One agent as plain data (None: never logged in since the engine started)."""
        agent = self._agents.get(agent_id)
        return None if agent is None else self._agent_view(agent, now)

    def queues_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every queue as plain data, in configuration order; waiting calls in offer order."""
        return [self._queue_view(name, now) for name in self._configs]

    def _agent_view(self, agent: Agent, now: float) -> dict[str, Any]:
        return {
            "agent_id": agent.agent_id,
            "state": agent.state.value,
            "since": agent.state_since,
            "seconds_in_state": now - agent.state_since,
            "idle_since": agent.idle_since,
            "reason": agent.pause_reason,
            "queues": sorted(agent.queues),
            # the identity skill (transfer to one agent) is the engine's plumbing, not a skill to show
            "skills": {name: level for name, level in sorted(agent.skills.items()) if not is_identity_skill(name)},
            "call_id": agent.call_id,
            "calls_answered": agent.calls_answered,
            "calls_today": agent.calls_today,
            "talk_today": agent.talk_today,
            "wrapup_today": agent.wrapup_today,
        }

    def _queue_view(self, name: str, now: float) -> dict[str, Any]:
        config = self._configs[name]
        live = sorted((c for c in self._calls.values() if c.queue == name), key=lambda c: c.order_key)
        members = [a for a in self._agents.values() if name in a.queues and a.state is not AgentState.LOGGED_OUT]
        metrics = self.queue_metrics(name)
        return {
            "queue": name,
            "strategy": config.strategy.value,
            "waiting": [
                {"call_id": c.call_id, "priority": c.priority, "wait": now - c.enqueued_at,
                 "requirement": c.requirement.describe()}
                for c in live if c.state is CallState.WAITING
            ],
            "ringing": [
                {"call_id": c.call_id, "priority": c.priority, "wait": now - c.enqueued_at, "agent_id": c.agent_id}
                for c in live if c.state is CallState.RINGING
            ],
            "agents_available": len(self._pools[name]),
            "agents_staffed": self._staffed[name],
            "agents_logged_in": len(members),
            "estimated_wait": metrics.get("estimated_wait"),
            "service_level": metrics.get("service_level"),
            "service_level_target": config.service_level_target,
            "service_level_seconds": config.service_level_seconds,
        }

    def explain(self, call_id: str, now: float) -> dict[str, Any] | None:
        """Where a live call stands and why: its step, requirement, next widening, and which of
        its queue's logged-in members satisfy the requirement, by state."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        requirement = call.requirement
        eligible: dict[str, list[str]] = {}
        ineligible = 0
        for agent in sorted(self._agents.values(), key=lambda a: a.id_order):
            if call.queue not in agent.queues or agent.state is AgentState.LOGGED_OUT:
                continue
            if requirement.matches(agent.skills):
                eligible.setdefault(agent.state.value, []).append(agent.agent_id)
            else:
                ineligible += 1
        due = next_change_at(call.steps, call.queue_entered_at, now)
        return {
            "call_id": call.call_id,
            "queue": call.queue,
            "state": call.state.value,
            "priority": call.priority,
            "waited": now - call.enqueued_at,
            "in_queue_for": now - call.queue_entered_at,
            "position": self.position(call) if call.state is CallState.WAITING else None,
            "estimated_wait": self.estimated_wait(call_id),
            "step": {"index": call.step_index, "rule": call.steps.describe()[call.step_index]},
            "steps": call.steps.describe(),
            "requirement": requirement.describe(),
            "next_step_at": due,
            "eligible_members": eligible,
            "ineligible_members": ineligible,
            "agent_id": call.agent_id,
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
        steps: Steps | None = None,
        max_wait: MaxWait | None = None,
        prior_offers: int = 0,
    ) -> list[Effect]:
        """A caller enters ``queue``. Call ids must be unique for the router's lifetime, since
        offer ids (the shell's idempotency keys) are derived from them. ``enqueued_at`` (default
        ``now``) keeps the place of a caller who was already waiting, e.g. one re-adopted after
        an engine restart. ``steps`` and ``max_wait`` override the queue's widening steps and max
        wait for this call (an IVR queue node's own), while it is in this first queue.
        ``prior_offers`` continues the offer numbering of a call id that was in the ACD before
        (a callback queued again for its next attempt), so its offer ids stay distinct."""
        if enqueued_at is not None and enqueued_at > now:
            raise RoutingError(f"enqueued_at {enqueued_at} is in the future (now {now})")
        if queue not in self._configs:
            raise RoutingError(f"unknown queue {queue!r} (known: {', '.join(self._configs)})")
        if call_id in self._calls:
            raise RoutingError(f"call {call_id!r} is already in the ACD")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise RoutingError(f"priority must be an int, got {priority!r}")
        if max_wait is not None and max_wait.target is not None and max_wait.target not in self._configs:
            raise RoutingError(f"max_wait overflows to unknown queue {max_wait.target!r}")
        arrived = now if enqueued_at is None else enqueued_at
        call = Call(
            call_id=call_id,
            queue=queue,
            priority=priority,
            enqueued_at=arrived,
            sequence=self._next_sequence,
            steps=steps or self._configs[queue].steps,
            queue_entered_at=arrived,
            steps_overridden=steps is not None,
            max_wait_override=max_wait,
            attrs=dict(attrs or {}),
            offers_made=max(0, int(prior_offers)),
        )
        call.order_key = self.call_key(call)
        self._next_sequence += 1
        self._calls[call_id] = call
        self._join_waiting(call, now)
        queued = Event("queued", call_id, queue, None,
                       {"priority": priority, "requirement": call.requirement.describe(),
                        **({"dial_out": call.attrs["dial_out"].get("kind", ""), "enqueued_at": arrived}
                           if call.attrs.get("dial_out") else {}),
                        **({"campaign": call.attrs["campaign"]} if call.attrs.get("campaign") else {})})
        effects: list[Effect] = [queued]
        effects.extend(self._call_timers(call, now))
        if call.max_wait_due:
            return effects + self._max_wait_action(call, now) + self._settle(now)
        return effects + self._settle(now, arriving=call, trigger="call_arrived")

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
        agent.consecutive_no_answers = 0
        self._roll_day(agent, now)
        agent.calls_today += 1
        waited = now - call.enqueued_at
        self._stats[call.queue].answered(now - call.queue_entered_at)
        answered = Event("answered", call.call_id, call.queue, agent.agent_id, {"offer_id": offer_id, "wait": waited})
        return [answered, self._set_state(agent, AgentState.ON_CALL, now), *self._settle(now)]

    def offer_failed(self, offer_id: str, reason: str, now: float) -> list[Effect]:
        """The agent did not take the offer; the call goes back to its original place in the
        queue and is offered on at once. A busy or unreachable phone pauses the agent with that
        reason; ring-no-answer does so after ``max_no_answers`` in a row (before that the agent
        stays available, at the back of the idle line). Stale offer ids are ignored."""
        if reason not in OFFER_FAILURE_REASONS:
            raise RoutingError(f"offer failure reason {reason!r} not one of {sorted(OFFER_FAILURE_REASONS)}")
        call = self._offers.pop(offer_id, None)
        if call is None:
            return []
        agent = self._agent_of(call)
        failed = Event(failure_event_kind(reason), call.call_id, call.queue, agent.agent_id, {"offer_id": offer_id})
        effects: list[Effect] = [failed]
        if reason == "ring-no-answer":
            agent.consecutive_no_answers += 1
        pause = reason != "ring-no-answer" or agent.consecutive_no_answers >= self.max_no_answers
        if pause:
            agent.consecutive_no_answers = 0
            effects.append(self._set_state(agent, AgentState.PAUSED, now, reason=reason))
        # The call is offered on before the agent rejoins the pool: to another agent if one can
        # take it; otherwise the agent takes its best waiting call, which may not be this one.
        effects.extend(self._requeue(call, now))
        if not pause:
            effects.append(self._set_state(agent, AgentState.AVAILABLE, now))
        effects.extend(self._serve_agent(agent, now, "agent_available"))
        effects.extend(self._settle(now))
        return effects

    def offer_lost(self, offer_id: str, now: float) -> list[Effect]:
        """The offer's agent leg vanished while the engine could not watch it (a resync found it
        missing): whether the phone rang is unknown, so it is not held against the agent. The
        call goes back to its place and the agent is available again. Stale offer ids are ignored."""
        call = self._offers.get(offer_id)
        if call is None:
            return []
        agent = self._agent_of(call)
        self._cancel_offer(call, agent)  # the leg is gone already: nothing to cancel in Asterisk
        lost = Event("offer_lost", call.call_id, call.queue, agent.agent_id, {"offer_id": offer_id})
        effects: list[Effect] = [lost, *self._requeue(call, now)]
        effects.append(self._set_state(agent, AgentState.AVAILABLE, now, keep_idle_since=True))
        return effects + self._serve_agent(agent, now, "agent_available") + self._settle(now)

    # ---- several engines on shared queues ------------------------------------------------

    def offer_claimed_elsewhere(self, offer_id: str, now: float) -> list[Effect]:
        """Another engine holds the call (its claim in the shared store came first): no leg was
        made, so the offer is simply undone and the agent, blameless, takes other work. The
        call is not offered here until that engine lets it go (``released_elsewhere``) or, at
        the latest, a ring timeout from now, when it is tried again. No event: the holder logs."""
        call = self._offers.get(offer_id)
        if call is None:
            return []
        agent = self._agent_of(call)
        self._cancel_offer(call, agent)
        call.state = CallState.ELSEWHERE
        retry = StartTimer(f"elsewhere:{call.call_id}", now + self.ring_timeout)
        back = self._set_state(agent, AgentState.AVAILABLE, now, keep_idle_since=True)
        return [retry, back, *self._serve_agent(agent, now, "agent_available"), *self._settle(now)]

    def released_elsewhere(self, call_id: str, now: float) -> list[Effect]:
        """The engine that held the call let it go unanswered: it is back in its place here and
        offered at once. Ignored unless the call is held elsewhere."""
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.ELSEWHERE:
            return []
        return self._requeue(call, now)

    def served_elsewhere(self, call_id: str, now: float) -> list[Effect]:
        """The caller was bridged to another engine's agent: that engine follows the call from
        here on, and this router forgets it (``served_elsewhere``, the one event). An offer of
        ours still ringing for it (both rang while the shared store was away) is withdrawn, its
        agent blameless. Ignored for a call connected here."""
        call = self._calls.get(call_id)
        if call is None or call.state is CallState.CONNECTED:
            return []
        del self._calls[call_id]
        served = Event("served_elsewhere", call_id, call.queue, None, {"wait": now - call.enqueued_at})
        if call.state is CallState.WAITING:
            self._remove_waiting(call)
        if call.state is not CallState.RINGING:
            return [served, *self._settle(now)]
        agent = self._agent_of(call)
        cancel = self._cancel_offer(call, agent)
        back = self._set_state(agent, AgentState.AVAILABLE, now, keep_idle_since=True)
        return [cancel, served, back, *self._serve_agent(agent, now, "agent_available"), *self._settle(now)]

    def adopt_connected(self, call_id: str, queue: str, agent_id: str, now: float, *,
                        answered_at: float | None = None, enqueued_at: float | None = None,
                        attrs: dict[str, Any] | None = None, offers_made: int = 0) -> list[Effect]:
        """A call found bridged to ``agent_id`` by a resync (it was answered while the engine was
        away): from now on it is followed to its end like any connected call, and the agent is on
        it. The agent must be available, or logged out (an engine that restarted has not seen
        them log in yet: they log in onto this call, on_call); otherwise RoutingError, and the
        shell follows the call alone. No ``answered`` event: the answer happened in the gap."""
        if call_id in self._calls:
            raise RoutingError(f"call {call_id!r} is already in the ACD")
        if queue not in self._configs:
            raise RoutingError(f"unknown queue {queue!r}")
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = Agent(agent_id=agent_id, queues=frozenset(), skills={}, id_order=agent_id_order(agent_id),
                          state_since=now)
            self._agents[agent_id] = agent
        if agent.state not in (AgentState.AVAILABLE, AgentState.LOGGED_OUT) or agent.call_id is not None:
            raise RoutingError(f"agent {agent_id} is {agent.state.value}, not free for an adopted call")
        arrived = min(enqueued_at or now, now)
        call = Call(call_id=call_id, queue=queue, priority=0, enqueued_at=arrived, sequence=self._next_sequence,
                    steps=self._configs[queue].steps, queue_entered_at=arrived, attrs=dict(attrs or {}),
                    offers_made=max(0, int(offers_made)))
        call.order_key = self.call_key(call)
        self._next_sequence += 1
        call.state = CallState.CONNECTED
        call.agent_id = agent_id
        call.answered_at = min(answered_at or now, now)
        self._calls[call_id] = call
        adopted = Event("resync_adopted", call_id, queue, agent_id, {"stage": "connected"})
        if agent.state is AgentState.LOGGED_OUT:
            agent.call_id = call_id  # login puts them on it
            return [adopted]
        on_call = self._set_state(agent, AgentState.ON_CALL, now)
        agent.call_id = call_id
        return [adopted, on_call, *self._settle(now)]

    def call_ended(self, call_id: str, now: float, by: str | None = None) -> list[Effect]:
        """The conversation is over. The agent wraps up (or, with no wrap-up time, is available
        at once). A call that was never connected ended from the caller's side: an abandon.
        ``by`` says whose side ended it (caller, agent, transfer) when the shell knows.
        Unknown call ids are ignored."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        if call.state is not CallState.CONNECTED:
            return self.abandon(call_id, now)
        del self._calls[call_id]
        agent = self._agent_of(call)
        assert call.answered_at is not None
        talk = now - call.answered_at
        self._roll_day(agent, now)
        agent.talk_today += talk
        wrapup = self._wrapup_of(agent)
        self._stats[call.queue].handled(talk + wrapup)
        ended = Event("ended", call.call_id, call.queue, agent.agent_id,
                      {"talk": talk} if by is None else {"talk": talk, "by": by})
        if agent.state is AgentState.LOGGED_OUT:  # an adopted call whose agent never logged in here
            agent.call_id = None
            return [ended]
        return [ended, *self._start_wrapup(agent, wrapup, now), *self._settle(now)]

    def make_dial_out(self, call_id: str, dial_out: Mapping[str, Any], now: float) -> list[Effect] | None:
        """A waiting caller chose to be called back instead (virtual hold): the call keeps its
        place, and from now on its offers are agent-first dial-outs to ``dial_out["number"]``.
        A ringing offer is withdrawn (the agent would be bridged to a caller about to hang up)
        and the call offered again. None when the call is unknown or already connected."""
        call = self._calls.get(call_id)
        if call is None or call.state is CallState.CONNECTED:
            return None
        call.attrs["dial_out"] = dict(dial_out)
        if call.state is not CallState.RINGING:
            return []
        agent = self._agent_of(call)
        cancel = self._cancel_offer(call, agent)
        back = self._set_state(agent, AgentState.AVAILABLE, now, keep_idle_since=True)
        return [cancel, back, *self._requeue(call, now), *self._serve_agent(agent, now, "agent_available")]

    def dial_out_failed(self, offer_id: str, outcome: str, now: float) -> list[Effect]:
        """An agent-first dial-out's agent answered but the customer did not (busy, no answer,
        failed): the call leaves the ACD (its owner decides when to try again) and the agent is
        free at once, with no wrap-up and no pause (the agent did nothing wrong). Stale offer
        ids are ignored."""
        call = self._offers.pop(offer_id, None)
        if call is None:
            return []
        agent = self._agent_of(call)
        del self._calls[call.call_id]
        agent.offer_id = agent.call_id = None
        failed = Event("dial_out_failed", call.call_id, call.queue, agent.agent_id,
                       {"offer_id": offer_id, "outcome": outcome, "wait": now - call.enqueued_at})
        back = self._set_state(agent, AgentState.AVAILABLE, now, keep_idle_since=True)
        return [failed, back, *self._serve_agent(agent, now, "agent_available"), *self._settle(now)]

    def abandon(self, call_id: str, now: float) -> list[Effect]:
        """The caller hung up. A ringing offer is cancelled and its agent returns to available
        with its idle time intact (ringing is not work). Unknown call ids are ignored."""
        call = self._calls.get(call_id)
        if call is not None and call.state in (CallState.WAITING, CallState.RINGING):
            self._stats[call.queue].abandoned(now - call.queue_entered_at)
        return self._leave(call_id, now, Event("abandoned", call_id, None, None, {}))

    def move_call(self, call_id: str, queue: str, now: float, *, by: str | None = None) -> list[Effect]:
        """A supervisor sends a waiting call to another queue: it keeps its enqueue time and takes
        the target queue's steps and max wait from now (``moved`` event, with ``by``). Only a
        waiting call moves: one ringing an agent or connected is refused (RoutingError)."""
        call = self._waiting_call(call_id)
        if queue not in self._configs:
            raise RoutingError(f"unknown queue {queue!r} (known: {', '.join(self._configs)})")
        if queue == call.queue:
            raise RoutingError(f"call {call_id} is already in queue {queue}")
        self._remove_waiting(call)
        return self._move(call, queue, now, "moved", by=by)

    def set_priority(self, call_id: str, priority: int, now: float, *, by: str | None = None) -> list[Effect]:
        """A supervisor changes a waiting call's priority; it takes its new place at once."""
        call = self._waiting_call(call_id)
        if not isinstance(priority, int) or isinstance(priority, bool) or not -1000 <= priority <= 1000:
            raise RoutingError(f"priority must be a whole number from -1000 to 1000, got {priority!r}")
        before = call.priority
        self._remove_waiting(call)
        call.priority = priority
        call.order_key = self.call_key(call)
        self._add_waiting(call)
        changed = Event("priority_changed", call.call_id, call.queue, None,
                        {"from": before, "to": priority, "by": by})
        return [changed, *self._settle(now, arriving=call, trigger="priority_changed")]

    def _waiting_call(self, call_id: str) -> Call:
        call = self._calls.get(call_id)
        if call is None:
            raise RoutingError(f"no call {call_id} in the ACD")
        if call.state is not CallState.WAITING:
            raise RoutingError(f"call {call_id} is {call.state.value}, not waiting: only a waiting call can be changed")
        return call

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
        if call.state is CallState.ELSEWHERE:
            return []  # the engine holding it logs how it ended
        left = Event(
            template.kind, call.call_id, call.queue, call.agent_id,
            {**template.data, "wait": now - call.enqueued_at, "stage": call.state.value},
        )
        if call.state is CallState.WAITING:
            self._remove_waiting(call)
            return [left, *self._settle(now)]
        agent = self._agent_of(call)
        cancel = self._cancel_offer(call, agent)
        back = self._set_state(agent, AgentState.AVAILABLE, now, keep_idle_since=True)
        return [cancel, left, back, *self._serve_agent(agent, now, "agent_available"), *self._settle(now)]

    # ---- timers ---------------------------------------------------------------------------

    def timer_fired(self, key: str, now: float) -> list[Effect]:
        """A StartTimer came due. Timers for what is already over are ignored."""
        kind, _, subject = key.partition(":")
        if kind == "wrapup":
            return self.wrapup_done(subject, now)
        if kind == "step":
            return self._step_due(subject, now)
        if kind == "maxwait":
            return self._max_wait_due(subject, now)
        if kind == "elsewhere":
            return self.released_elsewhere(subject, now)
        raise RoutingError(f"unknown timer {key!r}")

    def _step_due(self, call_id: str, now: float) -> list[Effect]:
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.WAITING:
            return []  # a ringing call re-reads its step if it comes back to the queue
        effects = self._restep(call, now)
        due = next_change_at(call.steps, call.queue_entered_at, now)
        if due is not None:
            effects.append(StartTimer(f"step:{call.call_id}", due))
        return effects + self._settle(now, arriving=call if effects[:1] else None, trigger="step_changed")

    def _max_wait_due(self, call_id: str, now: float) -> list[Effect]:
        call = self._calls.get(call_id)
        if call is None or call.state is CallState.CONNECTED:
            return []
        limit = self._max_wait_of(call)
        if limit is None or call.queue_entered_at + limit.seconds > now:
            return []  # reconfigured since the timer was armed; the new timer stands
        if call.state is not CallState.WAITING:
            call.max_wait_due = True  # let the ring finish (here or elsewhere); act if it comes back
            return []
        return self._max_wait_action(call, now) + self._settle(now)

    def _max_wait_action(self, call: Call, now: float) -> list[Effect]:
        limit = self._max_wait_of(call)
        assert limit is not None
        call.max_wait_due = False
        self._remove_waiting(call)
        if limit.action is MaxWaitAction.OVERFLOW:
            assert limit.target is not None
            self._stats[call.queue].missed()  # not answered there in time
            return self._move(call, limit.target, now, "overflowed")
        del self._calls[call.call_id]
        self._stats[call.queue].abandoned(now - call.queue_entered_at)  # not served in time
        exited = Event("exited", call.call_id, call.queue, None,
                       {"reason": f"max_wait:{limit.action.value}", "wait": now - call.enqueued_at, "stage": "waiting"})
        return [exited, Divert(call.call_id, call.queue, limit.action.value, dict(call.attrs))]

    def _move(self, call: Call, target: str, now: float, kind: str, **data: Any) -> list[Effect]:
        """A call (already out of its waiting group) joins ``target``'s line, keeping its
        enqueue time: the wait so far still counts for its place and for aging."""
        source = call.queue
        call.queue = target
        call.queue_entered_at = now
        # the call's own steps and max wait were for the first queue
        call.steps = self._configs[target].steps
        call.steps_overridden = False
        call.max_wait_override = None
        call.order_key = self.call_key(call)
        self._join_waiting(call, now)
        moved = Event(kind, call.call_id, target, None,
                      {"from": source, "to": target, "wait": now - call.enqueued_at, **data})
        return [moved, *self._call_timers(call, now), *self._settle(now, arriving=call, trigger=kind)]

    def _call_timers(self, call: Call, now: float) -> list[Effect]:
        timers: list[Effect] = []
        due = next_change_at(call.steps, call.queue_entered_at, now)
        if due is not None:
            timers.append(StartTimer(f"step:{call.call_id}", due))
        limit = self._max_wait_of(call)
        if limit is not None:
            at = call.queue_entered_at + limit.seconds
            if at <= now:
                call.max_wait_due = True  # e.g. a re-adopted caller who already waited too long
            else:
                timers.append(StartTimer(f"maxwait:{call.call_id}", at))
        return timers

    def _max_wait_of(self, call: Call) -> MaxWait | None:
        return call.max_wait_override or self._configs[call.queue].max_wait

    # ---- agents ---------------------------------------------------------------------------

    def login(
        self,
        agent_id: str,
        queues: Iterable[str],
        now: float,
        *,
        skills: Mapping[str, int] | None = None,
        wrapup_seconds: float | None = None,
        weight: float = 1.0,
    ) -> list[Effect]:
        """The agent starts serving ``queues`` with ``skills`` (name -> level 1..10) and is
        available at once. ``wrapup_seconds`` overrides the router's default for this agent."""
        if not isinstance(agent_id, str) or not agent_id:
            raise RoutingError(f"agent id {agent_id!r} must be a non-empty string")
        queue_set = self._checked_queues(queues)
        skill_map = self._checked_skill_levels(skills)
        self._check_profile_numbers(wrapup_seconds, weight)
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = Agent(agent_id=agent_id, queues=queue_set, skills=skill_map,
                          id_order=agent_id_order(agent_id), state_since=now)
            self._agents[agent_id] = agent
        elif agent.state is not AgentState.LOGGED_OUT:
            raise RoutingError(f"agent {agent_id} is already logged in ({agent.state.value})")
        agent.queues, agent.skills = queue_set, skill_map
        agent.wrapup_seconds, agent.weight = wrapup_seconds, float(weight)
        agent.consecutive_no_answers = 0
        if agent.call_id is not None and agent.call_id in self._calls:
            # still on a call a resync adopted while they were logged out: on it, not offered another
            call_id = agent.call_id
            on_call = self._set_state(agent, AgentState.ON_CALL, now)
            agent.call_id = call_id
            return [on_call]
        effects: list[Effect] = [self._set_state(agent, AgentState.AVAILABLE, now)]
        return effects + self._serve_agent(agent, now, "agent_available") + self._settle(now)

    def logout(self, agent_id: str, now: float) -> list[Effect]:
        """The agent stops serving. A ringing offer is withdrawn and its call offered on;
        refused while the agent is on a call."""
        agent = self._known_agent(agent_id)
        if agent.state in (AgentState.LOGGED_OUT, AgentState.ON_CALL):
            raise RoutingError(f"agent {agent_id} cannot log out while {agent.state.value}")
        return self._step_away(agent, AgentState.LOGGED_OUT, None, now)

    def pause(self, agent_id: str, reason: str, now: float) -> list[Effect]:
        """The agent takes a break. Allowed from available, wrap-up (ending it early), paused
        (changing the reason) and reserved (withdrawing the offer); refused on a call."""
        agent = self._known_agent(agent_id)
        if not isinstance(reason, str) or not reason.strip():
            raise RoutingError("a pause needs a non-empty reason")
        if agent.state in (AgentState.LOGGED_OUT, AgentState.ON_CALL):
            raise RoutingError(f"agent {agent_id} cannot pause while {agent.state.value}")
        return self._step_away(agent, AgentState.PAUSED, reason, now)

    def _step_away(self, agent: Agent, state: AgentState, reason: str | None, now: float) -> list[Effect]:
        call = self._offers.get(agent.offer_id) if agent.offer_id else None
        cancel = [self._cancel_offer(call, agent)] if call is not None else []
        effects: list[Effect] = [*cancel, self._set_state(agent, state, now, reason=reason)]
        if call is not None:
            effects.extend(self._requeue(call, now))
        return effects + self._settle(now)

    def phone_reachability(self, agent_id: str, reachable: bool, now: float) -> list[Effect]:
        """Asterisk says the agent's phone stopped answering (``reachable`` False): an available,
        reserved or wrapping-up agent is paused with reason ``phone-offline`` (a ringing offer
        goes back to its caller's place). When the phone answers again, an agent paused for that
        reason alone is available again; any other pause stays. On a call, nothing changes."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OUT:
            return []
        if not reachable and agent.state in (AgentState.AVAILABLE, AgentState.RESERVED, AgentState.WRAP_UP):
            return self._step_away(agent, AgentState.PAUSED, PHONE_OFFLINE, now)
        if reachable and agent.state is AgentState.PAUSED and agent.pause_reason == PHONE_OFFLINE:
            return self.unpause(agent_id, now)
        return []

    def unpause(self, agent_id: str, now: float) -> list[Effect]:
        """The agent is back: available, with its idle time starting now."""
        agent = self._known_agent(agent_id)
        if agent.state is not AgentState.PAUSED:
            raise RoutingError(f"agent {agent_id} is {agent.state.value}, not paused")
        effects: list[Effect] = [self._set_state(agent, AgentState.AVAILABLE, now)]
        return effects + self._serve_agent(agent, now, "agent_available") + self._settle(now)

    def wrapup_done(self, agent_id: str, now: float) -> list[Effect]:
        """The wrap-up timer fired (or the agent ended wrap-up early). Ignored unless the agent
        is still in wrap-up (it may have paused or logged out meanwhile)."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is not AgentState.WRAP_UP:
            return []
        done = Event("wrapup_done", agent.call_id, None, agent_id, {})
        available = self._set_state(agent, AgentState.AVAILABLE, now)
        return [done, available, *self._serve_agent(agent, now, "agent_available"), *self._settle(now)]

    def set_profile(
        self,
        agent_id: str,
        now: float,
        *,
        queues: Iterable[str] | None = None,
        skills: Mapping[str, int] | None = None,
        wrapup_seconds: float | None = None,
        weight: float | None = None,
    ) -> list[Effect]:
        """Change a logged-in agent's queues, skill levels, wrap-up or weight (None: unchanged).
        An offer already ringing stands; the change applies from the next routing decision,
        which is made right away if the agent is available."""
        agent = self._known_agent(agent_id)
        queue_set = agent.queues if queues is None else self._checked_queues(queues)
        skill_map = agent.skills if skills is None else self._checked_skill_levels(skills)
        self._check_profile_numbers(wrapup_seconds, 1.0 if weight is None else weight)
        available = agent.state is AgentState.AVAILABLE
        if available:
            self._pool_remove(agent)
        self._count_staffed(agent, -1)
        agent.queues, agent.skills = queue_set, skill_map
        if wrapup_seconds is not None:
            agent.wrapup_seconds = wrapup_seconds
        if weight is not None:
            agent.weight = float(weight)
        self._count_staffed(agent, +1)
        if available:
            self._pool_add(agent)
        changed = Event("agent_profile", None, None, agent_id,
                        {"queues": sorted(queue_set), "skills": dict(sorted(skill_map.items()))})
        return [changed, *self._serve_agent(agent, now, "agent_profile_changed"), *self._settle(now)]

    # ---- matching -------------------------------------------------------------------------

    def _offer_call(self, call: Call, now: float, trigger: str) -> list[Effect]:
        """Offer a waiting call to the best eligible available member of its queue, if any."""
        self._roll_pools(now)
        agent, why = self._choose_agent(call)
        if agent is None:
            return []
        return self._make_offer(call, agent, now, {"trigger": trigger, **why})

    def _serve_agent(self, agent: Agent, now: float, trigger: str) -> list[Effect]:
        """Offer an available agent the best waiting call it is eligible for, if any."""
        if agent.state is not AgentState.AVAILABLE:
            return []
        call, why = self._choose_call(agent)
        if call is None:
            return []
        return self._make_offer(call, agent, now, {"trigger": trigger, **why})

    def _choose_agent(self, call: Call) -> tuple[Agent | None, dict[str, Any]]:
        config = self._configs[call.queue]
        requirement = call.requirement
        pool = self._pools[call.queue]
        strategy = config.strategy
        # Usually the call's requirement is one of its queue's steps, with its own index of
        # eligible members in the strategy's order; a requirement the IVR gave the call alone
        # falls back to testing the queue's available members one by one.
        index = self._eligible[call.queue].get(requirement)
        if index is not None:
            candidates, screened = index[0], True
        else:
            candidates, screened = pool, isinstance(requirement, Always)
        examined = 0
        picked: list[Agent] = []
        scores: list[int] = []
        if strategy in ORDERED_STRATEGIES or strategy is Strategy.ROUND_ROBIN:
            order: Iterable[Agent] = candidates
            if strategy is Strategy.ROUND_ROBIN and (last := self._round_robin_last[call.queue]) is not None:
                start = bisect.bisect_right(candidates, last, key=lambda a: a.id_order)
                order = itertools.chain(itertools.islice(candidates, start, None), itertools.islice(candidates, start))
            for agent in order:
                examined += 1
                if screened or requirement.matches(agent.skills):
                    picked.append(agent)
                    if len(picked) == 2:
                        break
        elif strategy is Strategy.BEST_PROFICIENCY and screened:
            picked = candidates[:2]  # sorted by score, then longest idle
            examined = len(picked)
            scores = [requirement.score(a.skills) or 0 for a in picked]
        elif strategy is Strategy.BEST_PROFICIENCY:
            # Keep the best two in one pass; pool order is longest idle first, so a strictly
            # higher score is needed to displace an earlier agent (the tie-break).
            best: list[tuple[int, Agent]] = []
            for agent in pool:
                examined += 1
                if not requirement.matches(agent.skills):  # cheap test before the scoring
                    continue
                score = requirement.score(agent.skills)
                assert score is not None
                if len(best) < 2 or score > best[1][0]:
                    best.append((score, agent))
                    best.sort(key=lambda b: -b[0])  # stable: equal scores keep pool order
                    del best[2:]
            picked = [agent for _, agent in best]
            scores = [score for score, _ in best]
        else:  # random-weighted
            eligible = candidates if screened else [a for a in pool if requirement.matches(a.skills)]
            examined = len(candidates)
            if eligible:
                winner = self._random.choices(eligible, weights=[a.weight for a in eligible])[0]
                picked = [winner] + [a for a in eligible if a is not winner][:1]
        if not picked:
            return None, {}
        why: dict[str, Any] = {
            "strategy": strategy.value,
            "step": call.step_index,
            "requirement": requirement.describe(),
            "available_members": len(pool),
            # from the requirement's index: how many available members satisfy it
            "eligible_available": len(candidates) if screened else None,
            "examined": examined,
            "winner": self._agent_summary(picked[0], scores[0] if scores else None, requirement),
            "runner_up": self._agent_summary(picked[1], scores[1] if len(scores) > 1 else None, requirement)
            if len(picked) > 1 else None,
        }
        return picked[0], why

    @staticmethod
    def _agent_summary(agent: Agent, score: int | None, requirement: Requirement) -> dict[str, Any]:
        return {
            "agent_id": agent.agent_id,
            "score": requirement.score(agent.skills) if score is None else score,
            "idle_since": agent.idle_since,
            "calls_today": agent.calls_today,
            "talk_today": agent.talk_today,
        }

    def _choose_call(self, agent: Agent) -> tuple[Call | None, dict[str, Any]]:
        candidates: list[Call] = []
        groups_tested = 0
        for queue in sorted(agent.queues):
            for requirement, group in self._groups[queue].items():
                groups_tested += 1
                if requirement.matches(agent.skills):
                    candidates.extend(group[:2])  # the head, and the next for the runner-up
        if not candidates:
            return None, {}
        candidates.sort(key=lambda c: c.order_key)
        winner = candidates[0]
        runner_up = candidates[1] if len(candidates) > 1 else None
        why: dict[str, Any] = {
            "strategy": "best waiting call for the agent",
            "step": winner.step_index,
            "requirement": winner.requirement.describe(),
            "groups_tested": groups_tested,
            "winner": {"agent_id": agent.agent_id, "score": winner.requirement.score(agent.skills)},
            "calls_considered": [self._call_summary(c) for c in candidates[:EXPLAIN_CANDIDATES]],
            "runner_up_call": runner_up.call_id if runner_up else None,
        }
        return winner, why

    @staticmethod
    def _call_summary(call: Call) -> dict[str, Any]:
        return {"call_id": call.call_id, "queue": call.queue, "priority": call.priority,
                "enqueued_at": call.enqueued_at, "requirement": call.requirement.describe()}

    def _make_offer(self, call: Call, agent: Agent, now: float, why: dict[str, Any]) -> list[Effect]:
        if self._configs[call.queue].strategy is Strategy.ROUND_ROBIN:
            # every offer moves the rotation, also one an agent took on becoming free
            self._round_robin_last[call.queue] = agent.id_order
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
            {"offer_id": offer_id, "attempt": call.offers_made, "wait": now - call.enqueued_at, "why": why},
        )
        reserved = self._set_state(agent, AgentState.RESERVED, now)
        return [offer, offered, reserved]

    def _restep(self, call: Call, now: float) -> list[Effect]:
        """Re-read a waiting call's active step; if it changed, regroup it (a step_changed
        event). Offering it is left to _settle, which offers best-first."""
        index = self._active_index(call, now)
        if index == call.step_index:
            return []
        self._remove_waiting(call)
        call.step_index = index
        self._add_waiting(call)
        return [self._step_changed(call, now)]

    @staticmethod
    def _step_changed(call: Call, now: float) -> Event:
        return Event("step_changed", call.call_id, call.queue, None,
                     {"step": call.step_index, "requirement": call.requirement.describe(),
                      "wait": now - call.enqueued_at})

    def _settle(self, now: float, *, arriving: Call | None = None, trigger: str = "") -> list[Effect]:
        """After any change: re-read the metric steps whose conditions flipped (only those
        ladders' calls), then offer the re-stepped calls and ``arriving`` (a call that has just
        become waiting, offered with ``trigger``) best first, so a newcomer whose arrival
        widened the queue cannot take an agent ahead of an older caller it widened too.
        Offers move the figures again, so repeat until nothing changes."""
        effects: list[Effect] = []
        for _ in range(len(self._calls) + 2):  # each round makes an offer or stops
            stepped = []
            for call in sorted((c for q in self._configs for c in self._metric_changes(q)),
                               key=lambda c: c.order_key):
                if call.state is CallState.WAITING and (changed := self._restep(call, now)):
                    effects.extend(changed)
                    stepped.append(call)
            todo = stepped if arriving is None or any(c is arriving for c in stepped) else [*stepped, arriving]
            arriving = None
            offered = False
            for call in sorted(todo, key=lambda c: c.order_key):
                if call.state is CallState.WAITING:
                    made = self._offer_call(call, now, "step_changed" if call in stepped else trigger)
                    offered = offered or bool(made)
                    effects.extend(made)
            if not offered:
                break
        return effects

    def _metric_changes(self, queue: str) -> list[Call]:
        ladders = self._metric_ladders[queue]
        if not ladders:
            return []
        metrics = self.queue_metrics(queue)
        flipped: set[Steps] = set()
        for ladder in ladders:
            holding = frozenset(s.index for s in ladder.steps if isinstance(s, MetricStep) and s.when.holds(metrics))
            if self._metric_holding.get((queue, ladder)) != holding:
                self._metric_holding[(queue, ladder)] = holding
                flipped.add(ladder)
        if not flipped:
            return []  # the usual case: nothing to re-read, and no waiting call touched
        return [c for group in self._groups[queue].values() for c in group if c.steps in flipped]

    def _active_index(self, call: Call, now: float) -> int:
        return active_step_at(call.steps, call.queue_entered_at, now, self.queue_metrics(call.queue)).index

    # ---- helpers --------------------------------------------------------------------------

    def _requeue(self, call: Call, now: float) -> list[Effect]:
        """A withdrawn or failed offer's call goes back to its place (same priority, enqueue
        time and sequence), with its step re-read since time has passed while it rang."""
        call.state = CallState.WAITING
        call.agent_id = call.offer_id = None
        before = call.step_index
        self._join_waiting(call, now)
        effects: list[Effect] = [self._step_changed(call, now)] if call.step_index != before else []
        effects.extend(self._call_timers(call, now))
        if call.max_wait_due:
            return effects + self._max_wait_action(call, now)
        return effects + self._settle(now, arriving=call, trigger="offer_withdrawn")

    def _cancel_offer(self, call: Call, agent: Agent) -> CancelOffer:
        assert call.offer_id is not None
        cancel = CancelOffer(call.offer_id, call.call_id, agent.agent_id)
        del self._offers[call.offer_id]
        agent.offer_id = None
        agent.call_id = None
        call.offer_id = None
        call.agent_id = None
        return cancel

    def _wrapup_of(self, agent: Agent) -> float:
        return self.wrapup_seconds if agent.wrapup_seconds is None else agent.wrapup_seconds

    def _start_wrapup(self, agent: Agent, wrapup: float, now: float) -> list[Effect]:
        if wrapup == 0:
            return [self._set_state(agent, AgentState.AVAILABLE, now), *self._serve_agent(agent, now, "agent_available")]
        wrapping = self._set_state(agent, AgentState.WRAP_UP, now)
        return [wrapping, StartTimer(key=f"wrapup:{agent.agent_id}", at=now + wrapup)]

    def _set_state(
        self,
        agent: Agent,
        state: AgentState,
        now: float,
        reason: str | None = None,
        keep_idle_since: bool = False,
    ) -> Event:
        was_available = agent.state is AgentState.AVAILABLE
        if was_available:
            self._pool_remove(agent)
        if agent.state is AgentState.WRAP_UP:
            agent.wrapup_today += now - agent.state_since
        self._count_staffed(agent, -1)
        agent.state = state
        agent.state_since = now
        agent.pause_reason = reason if state is AgentState.PAUSED else None
        if state is AgentState.AVAILABLE and not keep_idle_since:
            agent.idle_since = now
        if state in (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.LOGGED_OUT):
            agent.call_id = None  # the wrap-up call, if any, is behind the agent now
            agent.offer_id = None
        if state is AgentState.AVAILABLE:
            self._roll_day(agent, now)  # pool keys use today's figures: fix them before joining
            self._pool_add(agent)
        self._count_staffed(agent, +1)
        data = {"state": state.value, "reason": agent.pause_reason}
        return Event("agent_state", None, None, agent.agent_id, data)

    def _count_staffed(self, agent: Agent, sign: int) -> None:
        if agent.state in STAFFED:
            for queue in agent.queues:
                self._staffed[queue] += sign

    def _pool_add(self, agent: Agent) -> None:
        for queue in agent.queues:
            bisect.insort(self._pools[queue], agent, key=self._pool_keys[queue])
            for requirement, (members, key) in self._eligible[queue].items():
                if requirement.matches(agent.skills):
                    bisect.insort(members, agent, key=key)

    def _pool_remove(self, agent: Agent) -> None:
        # Skills never change while an agent is in the pools (set_profile takes it out first),
        # so the same requirements match and the same keys find it.
        for queue in agent.queues:
            _remove_sorted(self._pools[queue], agent, self._pool_keys[queue])
            for requirement, (members, key) in self._eligible[queue].items():
                if requirement.matches(agent.skills):
                    _remove_sorted(members, agent, key)

    def _roll_pools(self, now: float) -> None:
        """At the first decision of a new day, agents who have been available since yesterday
        start today's figures at zero too, and the pools ordered by them are re-sorted."""
        day = self._day_of(now)
        if day == self._pools_day:
            return
        self._pools_day = day
        for agent in self._agents.values():
            if agent.state is AgentState.AVAILABLE and agent.day != day:
                self._pool_remove(agent)
                self._roll_day(agent, now)
                self._pool_add(agent)

    def _roll_day(self, agent: Agent, now: float) -> None:
        day = self._day_of(now)
        if agent.day != day:
            agent.day, agent.calls_today, agent.talk_today, agent.wrapup_today = day, 0, 0.0, 0.0

    def _join_waiting(self, call: Call, now: float) -> None:
        """Add a call to the waiting groups at the step that applies with the call itself
        counted in its queue's figures (a metric step may depend on the queue's length)."""
        call.step_index = self._active_index(call, now)
        self._add_waiting(call)
        index = self._active_index(call, now)
        if index != call.step_index:
            self._remove_waiting(call)
            call.step_index = index
            self._add_waiting(call)

    def _add_waiting(self, call: Call) -> None:
        group = self._groups[call.queue].setdefault(call.requirement, [])
        bisect.insort(group, call, key=lambda c: c.order_key)
        self._waiting_count[call.queue] += 1
        if call.steps.has_metric_steps:
            self._metric_ladders[call.queue][call.steps] += 1

    def _remove_waiting(self, call: Call) -> None:
        groups = self._groups[call.queue]
        group = groups[call.requirement]
        index = bisect.bisect_left(group, call.order_key, key=lambda c: c.order_key)
        assert group[index] is call, f"call {call.call_id} missing from its group"
        del group[index]
        if not group:
            del groups[call.requirement]
        self._waiting_count[call.queue] -= 1
        if call.steps.has_metric_steps:
            ladders = self._metric_ladders[call.queue]
            ladders[call.steps] -= 1
            if not ladders[call.steps]:
                del ladders[call.steps]
                # no waiting call uses the ladder: forget what held, so that the next caller
                # with it is compared with the figures of its own time, not stale ones
                self._metric_holding.pop((call.queue, call.steps), None)

    def _checked_queues(self, queues: Iterable[str]) -> frozenset[str]:
        if isinstance(queues, str):
            # A bare string would iterate as letters and fail confusingly below.
            raise RoutingError(f"queues must be a collection of queue names, not the string {queues!r}")
        queue_set = frozenset(queues)
        unknown = sorted(q for q in queue_set if q not in self._configs)
        if unknown:
            raise RoutingError(f"unknown queue(s) {unknown} (known: {', '.join(self._configs)})")
        return queue_set

    @staticmethod
    def _checked_skill_levels(skills: Mapping[str, int] | None) -> dict[str, int]:
        try:
            return check_skills(skills or {})
        except SkillError as exc:
            raise RoutingError(str(exc)) from None

    @staticmethod
    def _check_tuning(priority_aging_seconds: float, max_no_answers: int) -> None:
        if not isinstance(max_no_answers, int) or max_no_answers < 1:
            raise RoutingError(f"max_no_answers must be an integer >= 1, got {max_no_answers!r}")
        if not (math.isfinite(priority_aging_seconds) and priority_aging_seconds >= 0):
            raise RoutingError(f"priority_aging_seconds must be >= 0, got {priority_aging_seconds!r}")

    @staticmethod
    def _check_profile_numbers(wrapup_seconds: float | None, weight: float) -> None:
        if wrapup_seconds is not None and not (math.isfinite(wrapup_seconds) and wrapup_seconds >= 0):
            raise RoutingError(f"wrapup_seconds must be zero or positive, got {wrapup_seconds!r}")
        if not (math.isfinite(weight) and weight > 0):
            raise RoutingError(f"weight must be positive, got {weight!r}")

    def _agent_of(self, call: Call) -> Agent:
        assert call.agent_id is not None, f"call {call.call_id} has no agent"
        return self._agents[call.agent_id]

    def _known_agent(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise RoutingError(f"unknown agent {agent_id!r}")
        return agent
