"""Property-based tests of the ACD router (``callcenter.acd.router``), with hypothesis.

``RouterMachine`` drives one Router through random sequences of arrivals (2-3 queues, priority
0..2, some with their own widening steps), logins with random queues and skill levels, logouts,
pauses, unpauses, early wrap-up ends, answers, offer failures, hang-ups, re-skilling,
reconfiguration, stale reports and clock jumps that fire every due StartTimer in due order. Each
run draws the queues' strategies, weights, steps and max waits, whether priority aging is on and
how many missed rings pause an agent. After every router call it checks, from the router's
read-only views and the effects returned so far (never private router state):

1. offers are exclusive: no agent rings with two offers, no call rings at two agents;
2. an offered agent serves the call's queue and satisfies its current step, and every waiting
   call's step is the one ``active_step_at`` gives for its time in queue and the queue's metrics;
3. dispatch is work-conserving: no available agent satisfies a waiting call of its queues;
4. an offer goes to the best call the agent could take: no waiting call it satisfies has a
   smaller ``call_key`` (checked again, independently, by priority plus queue weight, then
   enqueue time, then arrival; with aging, a level of priority is worth ``aging`` seconds);
5. only available agents are offered (the ``agent_state`` events are replayed to know);
6. every live call is accounted for (arrivals minus ends, abandons and diverts), call and agent
   states agree with the outstanding offers, and no waiting call outstays its queue's max wait;
7. an offer made for a call goes to the agent its queue's strategy ranks first among those
   available all along (longest-idle, fewest-calls, least-talk-time, best-proficiency).

Focused ``@given`` properties check that ``call_key`` orders callers the same way whatever the
time (aging) or by strict priority (no aging), that random-weighted routing is reproducible for
a seed, and each strategy's choice in isolation. Every test is derandomized (no example
database), so a failure in CI reproduces locally with the same falsifying example.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

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
    StartTimer,
    Strategy,
)
from callcenter.acd.requirements import Requirement
from callcenter.acd.router import Router
from callcenter.acd.steps import Steps, active_step_at, validate_steps

RING = 15.0
WRAPUP = 10.0
SKILLS = ("billing", "lang.zh", "lang.en")
AGENT_IDS = ("101", "102", "103", "104", "999", "1001", "sup")
MAX_RECONFIGURATIONS = 2  # per run: reconfiguring is rare in life, and resets much state
PAUSABLE = frozenset({AgentState.AVAILABLE, AgentState.RESERVED, AgentState.WRAP_UP, AgentState.PAUSED})


def ladder(*raw: dict) -> Steps:
    """Widening steps from their raw form (as in a queue file)."""
    return validate_steps(list(raw))


class QueueSpec(NamedTuple):
    """What a queue may be configured with; one option of each is drawn per configuration."""

    steps: tuple[Steps, ...]
    max_waits: tuple[MaxWait | None, ...]  # the first is the one a run starts with


QUEUE_SPECS: dict[str, QueueSpec] = {
    "billing": QueueSpec(
        steps=(
            ladder({"after": 0, "require": "billing >= 7"},
                  {"when": "estimated_wait > 200", "require": "billing >= 5"},
                  {"after": 30, "require": "billing >= 3"},
                  {"after": 90, "require": "true"}),
            ladder({"after": 0, "require": "billing >= 5"},
                  {"after": 20, "require": "has(billing) or lang.en >= 6"}),
        ),
        max_waits=(MaxWait(150, MaxWaitAction.OVERFLOW, "general"), MaxWait(60, MaxWaitAction.OVERFLOW, "general"),
                   None),
    ),
    "general": QueueSpec(
        steps=(
            ladder({"after": 0, "require": "lang.en >= 4"}, {"after": 45, "require": "true"}),
            ladder({"after": 0, "require": "true"}),
        ),
        max_waits=(None, MaxWait(240, MaxWaitAction.VOICEMAIL)),
    ),
    "china": QueueSpec(
        steps=(
            ladder({"after": 0, "require": "lang.zh >= 6"},
                  {"after": 20, "require": "lang.zh >= 3 or lang.en >= 8"},
                  {"when": "service_level < 0.5", "require": "has(lang.zh) or has(lang.en)"},
                  {"after": 60, "require": "true"}),
        ),
        max_waits=(MaxWait(200, MaxWaitAction.VOICEMAIL), MaxWait(100, MaxWaitAction.FALLBACK), None),
    ),
}

# Steps a call may bring along (as an IVR would), overriding its queue's.
CALL_STEPS: tuple[Steps, ...] = (
    ladder({"after": 0, "require": "billing >= 9 and lang.zh >= 5"},
          {"after": 15, "require": "billing >= 6 or lang.zh >= 5"},
          {"when": "estimated_wait > 100", "require": "true"}),
    ladder({"after": 0, "require": "not has(lang.zh) and billing >= 2"}, {"after": 40, "require": "true"}),
)


@st.composite
def queue_configs(draw: st.DrawFn, names: tuple[str, ...], initial: bool) -> list[QueueConfig]:
    """One configuration of ``names``; a run starts with each queue's first max wait."""
    configs = []
    for name in names:
        spec = QUEUE_SPECS[name]
        configs.append(QueueConfig(
            name,
            strategy=draw(st.sampled_from(Strategy)),
            steps=draw(st.sampled_from(spec.steps)),
            weight=draw(st.integers(0, 2)),
            max_wait=spec.max_waits[0] if initial else draw(st.sampled_from(spec.max_waits)),
            initial_handle_seconds=draw(st.sampled_from((180.0, 40.0))),
        ))
    return configs


AGINGS = st.sampled_from((0.0, 60.0))
MAX_NO_ANSWERS = st.integers(1, 2)
SKILL_MAPS = st.fixed_dictionaries({}, optional={skill: st.integers(1, 10) for skill in SKILLS})


def id_order(agent_id: str) -> tuple:
    """Agent ids are extensions and compare as numbers ("999" before "1001")."""
    return (0, int(agent_id), "") if agent_id.isdigit() else (1, 0, agent_id)


# The documented order of each strategy's candidates, best (smallest) first; each ends with the
# longest-idle tie-break.
STRATEGY_RANKS: dict[Strategy, Callable[[Agent, Requirement], tuple]] = {
    Strategy.LONGEST_IDLE: lambda a, _: (a.idle_since, id_order(a.agent_id)),
    Strategy.FEWEST_CALLS: lambda a, _: (a.calls_today, a.idle_since, id_order(a.agent_id)),
    Strategy.LEAST_TALK_TIME: lambda a, _: (a.talk_today, a.idle_since, id_order(a.agent_id)),
    Strategy.BEST_PROFICIENCY: lambda a, req: (-req.score(a.skills), a.idle_since, id_order(a.agent_id)),
}


def available_as(agent: Agent) -> tuple:
    """How an agent looked while available, to tell one that stayed so, unchanged."""
    return (AgentState.AVAILABLE, agent.queues, dict(agent.skills))


def eligible(agent: Agent, call: Call, requirement: Requirement) -> bool:
    """Whether ``agent`` may take ``call`` under ``requirement`` (its current one, usually)."""
    return call.queue in agent.queues and requirement.matches(agent.skills)


@dataclass
class CallRecord:
    """What the test itself knows about a live call, independently of the router."""

    priority: int
    enqueued_at: float
    arrival: int  # arrival order at the router
    first_queue: str
    steps: Steps | None  # the call's own steps, if it brought any
    agent_id: str | None = None  # who answered it
    connected: bool = False


class RouterMachine(RuleBasedStateMachine):
    """Random operations against one Router, with the invariants of the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.router: Router | None = None
        self.now = 0.0
        self.live: dict[str, CallRecord] = {}
        self.offers: dict[str, tuple[str, str]] = {}  # outstanding offer id -> (call id, agent id)
        self.settled: list[str] = []  # offer ids no longer outstanding, for stale reports
        self.timers: dict[str, tuple[float, int]] = {}  # key -> (due, order armed)
        self.armed = itertools.count()
        self.arrivals = itertools.count()
        self.reconfigurations = 0

    # ---- set-up -------------------------------------------------------------------------------

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        with_china = data.draw(st.booleans(), label="china queue")
        self.names = ("billing", "general", "china") if with_china else ("billing", "general")
        self.aging = data.draw(AGINGS, label="priority aging")
        self.router = Router(
            data.draw(queue_configs(self.names, initial=True), label="queues"),
            ring_timeout=RING,
            wrapup_seconds=WRAPUP,
            max_no_answers=data.draw(MAX_NO_ANSWERS, label="max no answers"),
            priority_aging_seconds=self.aging,
            seed=data.draw(st.integers(0, 3), label="seed"),
        )
        # 1000.1 catches float rounding in step times; 86_350 runs across midnight (day figures).
        self.now = data.draw(st.sampled_from((0.0, 1000.1, 86_350.0)), label="start")

    # ---- what the rules pick from -------------------------------------------------------------

    def agents_in(self, *states: AgentState) -> list[str]:
        return sorted(a.agent_id for a in self.router.agents() if a.state in states)

    def logged_out(self) -> list[str]:
        known = {a.agent_id: a.state for a in self.router.agents()}
        return [i for i in AGENT_IDS if known.get(i, AgentState.LOGGED_OUT) is AgentState.LOGGED_OUT]

    # ---- rules --------------------------------------------------------------------------------

    @rule(data=st.data(), count=st.integers(1, 3))
    def arrive(self, data: st.DataObject, count: int) -> None:
        """``count`` callers arrive at once (each its own enqueue), so that callers compete."""
        for _ in range(count):
            queue = data.draw(st.sampled_from(self.names), label="queue")
            priority = data.draw(st.integers(0, 2), label="priority")
            own = data.draw(st.none() | st.sampled_from(CALL_STEPS), label="call steps")
            arrival = next(self.arrivals)
            call_id = f"c{arrival}"
            self.live[call_id] = CallRecord(priority, self.now, arrival, queue, own)
            self.run(self.router.enqueue, call_id, queue, self.now, priority=priority, steps=own)

    @precondition(lambda self: self.logged_out())
    @rule(data=st.data(), skills=SKILL_MAPS, wrapup=st.sampled_from((None, 0.0, 25.0)),
          weight=st.sampled_from((0.5, 1.0, 3.0)))
    def login(self, data: st.DataObject, skills: dict[str, int], wrapup: float | None, weight: float) -> None:
        agent_id = data.draw(st.sampled_from(self.logged_out()), label="agent")
        queues = data.draw(st.sets(st.sampled_from(self.names), min_size=1), label="queues")
        self.run(self.router.login, agent_id, queues, self.now, skills=skills, wrapup_seconds=wrapup, weight=weight)

    @precondition(lambda self: self.agents_in(*PAUSABLE))
    @rule(data=st.data(), logout=st.booleans())
    def step_away(self, data: st.DataObject, logout: bool) -> None:
        """An agent not on a call pauses or logs out (withdrawing an offer it rings with)."""
        agent_id = data.draw(st.sampled_from(self.agents_in(*PAUSABLE)), label="agent")
        if logout:
            self.run(self.router.logout, agent_id, self.now)
        else:
            self.run(self.router.pause, agent_id, "break", self.now)

    @precondition(lambda self: self.agents_in(AgentState.PAUSED))
    @rule(data=st.data())
    def unpause(self, data: st.DataObject) -> None:
        self.run(self.router.unpause, data.draw(st.sampled_from(self.agents_in(AgentState.PAUSED))), self.now)

    @precondition(lambda self: self.agents_in(AgentState.WRAP_UP))
    @rule(data=st.data())
    def end_wrapup_early(self, data: st.DataObject) -> None:
        self.run(self.router.wrapup_done, data.draw(st.sampled_from(self.agents_in(AgentState.WRAP_UP))), self.now)

    @precondition(lambda self: self.offers)
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        offer_id = self.take_offer(data)
        call_id, agent_id = self.offers.pop(offer_id)
        record = self.live[call_id]
        record.connected, record.agent_id = True, agent_id
        self.run(self.router.offer_answered, offer_id, self.now)

    @precondition(lambda self: self.offers)
    @rule(data=st.data(), reason=st.sampled_from(sorted(OFFER_FAILURE_REASONS)))
    def fail_offer(self, data: st.DataObject, reason: str) -> None:
        offer_id = self.take_offer(data)
        del self.offers[offer_id]
        self.run(self.router.offer_failed, offer_id, reason, self.now)

    def take_offer(self, data: st.DataObject) -> str:
        offer_id = data.draw(st.sampled_from(sorted(self.offers)), label="offer")
        self.settled.append(offer_id)
        return offer_id

    @precondition(lambda self: self.settled)
    @rule(data=st.data(), outcome=st.sampled_from(("answered", *sorted(OFFER_FAILURE_REASONS))))
    def stale_report(self, data: st.DataObject, outcome: str) -> None:
        """An answer or failure for an offer already settled or cancelled changes nothing."""
        offer_id = data.draw(st.sampled_from(self.settled), label="stale offer")
        if outcome == "answered":
            assert self.run(self.router.offer_answered, offer_id, self.now) == []
        else:
            assert self.run(self.router.offer_failed, offer_id, outcome, self.now) == []

    @precondition(lambda self: any(r.connected for r in self.live.values()))
    @rule(data=st.data())
    def end_call(self, data: st.DataObject) -> None:
        call_id = data.draw(st.sampled_from(sorted(i for i, r in self.live.items() if r.connected)), label="call")
        del self.live[call_id]
        self.run(self.router.call_ended, call_id, self.now)

    @precondition(lambda self: any(not r.connected for r in self.live.values()))
    @rule(data=st.data(), as_end=st.booleans())
    def abandon(self, data: st.DataObject, as_end: bool) -> None:
        """A waiting or ringing caller hangs up (reported as an abandon or as a call end)."""
        call_id = data.draw(st.sampled_from(sorted(i for i, r in self.live.items() if not r.connected)), label="call")
        del self.live[call_id]
        self.run(self.router.call_ended if as_end else self.router.abandon, call_id, self.now)

    @precondition(lambda self: self.agents_in(*AgentState))
    @rule(data=st.data(), skills=st.none() | SKILL_MAPS)
    def set_profile(self, data: st.DataObject, skills: dict[str, int] | None) -> None:
        """Re-skill or move any known agent, logged in or not (None: leave unchanged)."""
        agent_id = data.draw(st.sampled_from(self.agents_in(*AgentState)), label="agent")
        queues = data.draw(st.none() | st.sets(st.sampled_from(self.names)), label="queues")
        self.run(self.router.set_profile, agent_id, self.now, queues=queues, skills=skills)

    @precondition(lambda self: self.reconfigurations < MAX_RECONFIGURATIONS)
    @rule(data=st.data(), aging=st.none() | AGINGS, max_no_answers=st.none() | MAX_NO_ANSWERS)
    def reconfigure(self, data: st.DataObject, aging: float | None, max_no_answers: int | None) -> None:
        configs = data.draw(queue_configs(self.names, initial=False), label="new queues")
        self.reconfigurations += 1
        if aging is not None:
            self.aging = aging
        self.run(self.router.reconfigure, configs, self.now,
                 priority_aging_seconds=aging, max_no_answers=max_no_answers)

    @rule(seconds=st.integers(0, 120) | st.floats(0, 120))
    def advance_clock(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    @precondition(lambda self: self.timers)
    @rule()
    def advance_to_next_timer(self) -> None:
        """Land exactly on a due time: a step or max wait applies at, not after, its moment."""
        self.advance_to(min(at for at, _ in self.timers.values()))

    def advance_to(self, target: float) -> None:
        """Fire every timer due by ``target``, earliest first (ties: first armed first)."""
        while due := [(at, order, key) for key, (at, order) in self.timers.items() if at <= target]:
            self.now, _, key = min(due)
            del self.timers[key]
            self.run(self.router.timer_fired, key, self.now)
        self.now = target

    def no_timer_due(self) -> bool:
        return all(at > self.now for at, _ in self.timers.values())

    # ---- checks after every router call -------------------------------------------------------

    def run(self, command: Callable[..., list[Effect]], *args, **kwargs) -> list[Effect]:
        """Call the router, then check what it answered and the state it left."""
        waiting_before = {c.call_id: (c.queue, c.requirement) for c in self.waiting()}
        agents_before = {a.agent_id: (a.state, a.queues, dict(a.skills)) for a in self.router.agents()}
        states = {agent_id: state for agent_id, (state, _, _) in agents_before.items()}
        effects = command(*args, **kwargs)
        self.replay(effects, states)
        self.check_accounts(states)
        self.check_work_conserving(lambda call: call.requirement)
        offers = [e for e in effects if isinstance(e, Offer)]
        self.check_offer_order(offers, effects, waiting_before)
        self.check_strategy(offers, agents_before)
        return effects

    def waiting(self) -> list[Call]:
        return [c for c in self.router.calls() if c.state is CallState.WAITING]

    def replay(self, effects: list[Effect], states: dict[str, AgentState]) -> None:
        """Walk the effects in order, keeping the offers, timers and agent states they imply."""
        for effect in effects:
            if isinstance(effect, Offer):
                self.check_new_offer(effect, states)
                self.offers[effect.offer_id] = (effect.call_id, effect.agent_id)
            elif isinstance(effect, CancelOffer):
                assert self.offers.pop(effect.offer_id, None) == (effect.call_id, effect.agent_id), effect
                self.settled.append(effect.offer_id)
            elif isinstance(effect, Divert):
                record = self.live.pop(effect.call_id)
                assert not record.connected and effect.call_id not in self.ringing(), effect
                limit = self.router.queue_config(effect.queue).max_wait
                assert limit is not None and limit.action.value == effect.destination, effect
            elif isinstance(effect, StartTimer):
                assert effect.at > self.now, f"{effect} is not in the future (now {self.now})"
                self.timers[effect.key] = (effect.at, next(self.armed))
            elif effect.kind == "agent_state":
                states[effect.agent_id] = AgentState(effect.data["state"])

    def ringing(self) -> dict[str, tuple[str, str]]:
        """Ringing call id -> (offer id, agent id), from the outstanding offers."""
        return {call_id: (offer_id, agent_id) for offer_id, (call_id, agent_id) in self.offers.items()}

    def check_new_offer(self, offer: Offer, states: dict[str, AgentState]) -> None:
        # 5. only an available agent is offered; 1. exclusively.
        assert states.get(offer.agent_id) is AgentState.AVAILABLE, f"{offer} to a {states.get(offer.agent_id)} agent"
        assert offer.offer_id not in self.offers and offer.offer_id not in self.settled, f"{offer} id reused"
        assert offer.agent_id not in {a for _, a in self.offers.values()}, f"{offer}: agent holds another offer"
        assert offer.call_id not in self.ringing(), f"{offer}: call rings elsewhere"
        assert offer.call_id in self.live and not self.live[offer.call_id].connected, offer
        # 2. to a member of the call's queue satisfying its current step. Once every timer due
        # has fired, a call with no metric steps has the step that time alone gives.
        call, agent = self.router.call(offer.call_id), self.router.agent(offer.agent_id)
        assert call.queue == offer.queue and offer.queue in agent.queues, offer
        assert call.requirement.matches(agent.skills), f"{offer}: {dict(agent.skills)} fail {call.requirement}"
        if not call.steps.has_metric_steps and self.no_timer_due():
            expected = active_step_at(call.steps, call.queue_entered_at, self.now, {}).index
            assert call.step_index == expected, f"{offer} at step {call.step_index}, not {expected}"

    def check_accounts(self, states: dict[str, AgentState]) -> None:
        """6. Calls and agents are where the effects and the test's own records put them."""
        calls = {c.call_id: c for c in self.router.calls()}
        assert calls.keys() == self.live.keys(), "live calls differ from arrivals - ends - abandons - diverts"
        ringing = self.ringing()
        for call_id, call in calls.items():
            record = self.live[call_id]
            if record.connected:
                assert call.state is CallState.CONNECTED and call.agent_id == record.agent_id, call_id
            elif call_id in ringing:
                assert call.state is CallState.RINGING and (call.offer_id, call.agent_id) == ringing[call_id], call_id
            else:
                assert call.state is CallState.WAITING and call.offer_id is None, f"{call_id} is {call.state}"
        holders = {agent_id: offer_id for offer_id, agent_id in ringing.values()}
        talking = Counter(r.agent_id for r in self.live.values() if r.connected)
        agents = {a.agent_id: a for a in self.router.agents()}
        assert {i: a.state for i, a in agents.items()} == states, "agent_state events disagree with agent states"
        for agent_id, agent in agents.items():
            reserved = agent.state is AgentState.RESERVED
            assert reserved == (agent_id in holders), f"{agent_id} is {agent.state} holding {holders.get(agent_id)}"
            assert not reserved or agent.offer_id == holders[agent_id], agent_id
            assert (agent.state is AgentState.ON_CALL) == (talking[agent_id] == 1) and talking[agent_id] <= 1, agent_id

    def check_work_conserving(self, requirement_of: Callable[[Call], Requirement]) -> None:
        """3. No available agent satisfies a waiting call of its queues."""
        available = [a for a in self.router.agents() if a.state is AgentState.AVAILABLE]
        for call in self.waiting():
            requirement = requirement_of(call)
            idle = [a.agent_id for a in available if eligible(a, call, requirement)]
            assert not idle, f"{call.call_id} waits for {requirement.describe()} while {idle} are available"

    def check_offer_order(
        self, offers: list[Offer], effects: list[Effect], waiting_before: dict[str, tuple[str, Requirement]]
    ) -> None:
        """4. No call the offered agent could take instead is ahead of the one it was offered.

        Rivals are the calls waiting before and after with the same queue and requirement (and
        no step change in between), i.e. with the requirement they had when the offer was made.
        """
        moved = {e.call_id for e in effects if isinstance(e, Event) and e.kind in ("step_changed", "overflowed")}
        rivals = [c for c in self.waiting()
                  if c.call_id not in moved and waiting_before.get(c.call_id) == (c.queue, c.requirement)]
        for offer in offers:
            call, agent = self.router.call(offer.call_id), self.router.agent(offer.agent_id)
            for rival in rivals:
                if eligible(agent, rival, rival.requirement):
                    ahead = f"{offer} while {rival.call_id} (eligible, waiting) is ahead"
                    assert self.router.call_key(call) < self.router.call_key(rival), ahead
                    assert self.expected_key(call) < self.expected_key(rival), ahead

    def check_strategy(self, offers: list[Offer], agents_before: dict[str, tuple]) -> None:
        """7. An offer made for a call (to an agent that was already available, unchanged) goes to
        the agent its queue's strategy ranks first among those available all along that could
        take it. Round-robin and random-weighted have no fixed ranking and are not checked."""
        unchanged = [a for a in self.router.agents()
                     if a.state is AgentState.AVAILABLE and agents_before.get(a.agent_id) == available_as(a)]
        for offer in offers:
            call, agent = self.router.call(offer.call_id), self.router.agent(offer.agent_id)
            strategy = self.router.queue_config(offer.queue).strategy
            rank = STRATEGY_RANKS.get(strategy)
            if rank is None or agents_before.get(offer.agent_id) != available_as(agent):
                continue  # the agent became available or changed in this call: it chose the call
            for rival in unchanged:
                if eligible(rival, call, call.requirement):
                    assert rank(agent, call.requirement) < rank(rival, call.requirement), (
                        f"{offer} while {rival.agent_id} ranks first by {strategy.value}")

    def expected_key(self, call: Call) -> tuple[float, ...]:
        """The documented caller order, from the test's own records: highest priority plus queue
        weight, then earliest enqueue, then arrival; with aging, a level is worth ``aging`` s."""
        record = self.live[call.call_id]
        level = record.priority + self.router.queue_config(call.queue).weight
        if self.aging:
            return (record.enqueued_at - level * self.aging, record.arrival)
        return (-level, record.enqueued_at, record.arrival)

    # ---- checks between rules (every due timer has fired) -------------------------------------

    @invariant()
    def waiting_calls_are_current(self) -> None:
        """2. Each waiting call is at the step its wait and its queue's metrics give, under the
        steps it should have, and inside its queue's max wait; 3. with those steps."""
        if self.router is None:
            return
        assert self.no_timer_due()  # the premise: between rules, the router is up to date
        for call in self.waiting():
            record = self.live[call.call_id]
            config = self.router.queue_config(call.queue)
            own = record.steps if call.queue == record.first_queue else None
            assert call.steps == (own or config.steps), f"{call.call_id} has the wrong steps"
            metrics = self.router.queue_metrics(call.queue)
            step = active_step_at(call.steps, call.queue_entered_at, self.now, metrics)
            assert call.step_index == step.index, (
                f"{call.call_id} at step {call.step_index}, not {step.index} (metrics {metrics})")
            if config.max_wait is not None:
                assert call.queue_entered_at + config.max_wait.seconds > self.now, (
                    f"{call.call_id} has waited {self.now - call.queue_entered_at}s in {call.queue}, "
                    f"past its max wait of {config.max_wait.seconds}s")
        self.check_work_conserving(
            lambda c: active_step_at(c.steps, c.queue_entered_at, self.now, self.router.queue_metrics(c.queue)).require)


# 1000 runs of up to 50 steps (each step one or more router calls, all checked): about 35 s.
RouterMachine.TestCase.settings = settings(
    max_examples=1000,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRouterProperties = RouterMachine.TestCase


# ---- focused properties ---------------------------------------------------------------------

FOCUSED = settings(max_examples=300, derandomize=True, database=None, deadline=None)
WEIGHTS = {"low": 0, "high": 1}  # the queues of the call_key property, by weight


def serve_in_turn(router: Router, agent_id: str, now: float) -> list[str]:
    """Log in one agent taking every call, with no wrap-up, and answer and end each offer it
    gets until no call is left: the order in which the router hands the calls out."""
    served = []
    effects = router.login(agent_id, set(router.queues), now, wrapup_seconds=0.0)
    while offers := [e for e in effects if isinstance(e, Offer)]:
        (offer,) = offers
        served.append(offer.call_id)
        router.offer_answered(offer.offer_id, now)
        effects = router.call_ended(offer.call_id, now)
    return served


# (queue, priority, enqueued at): whole seconds, so that equal urgencies are exactly equal.
CALLERS = st.lists(
    st.tuples(st.sampled_from(sorted(WEIGHTS)), st.integers(0, 2), st.integers(0, 600)), min_size=1, max_size=12
)


@FOCUSED
@given(arrivals=CALLERS, aging=st.sampled_from((0, 1, 30, 60, 150)), serve_at=st.tuples(*[st.integers(600, 5000)] * 2))
def test_call_key_is_time_independent_with_aging_and_strict_priority_without(arrivals, aging, serve_at):
    """With aging, callers are ordered by their urgency (time waited plus ``aging`` seconds per
    level of priority and queue weight) at any later time: the order does not depend on when it
    is read. Without aging it is strict priority, then enqueue time. Ties: arrival order."""

    def build() -> Router:
        router = Router([QueueConfig(q, weight=w) for q, w in WEIGHTS.items()], ring_timeout=RING,
                        wrapup_seconds=WRAPUP, priority_aging_seconds=aging)
        for n, (queue, priority, at) in enumerate(arrivals):
            router.enqueue(f"c{n}", queue, now=600, priority=priority, enqueued_at=at)
        return router

    def level(n: int) -> int:
        queue, priority, _ = arrivals[n]
        return priority + WEIGHTS[queue]

    router = build()
    by_key = [c.call_id for c in sorted(router.calls(), key=router.call_key)]
    for now in serve_at:
        if aging:
            # Urgency at `now`: time waited plus `aging` seconds per level. Integers: exact ties.
            expected = sorted(range(len(arrivals)), key=lambda n: (-(now - arrivals[n][2] + level(n) * aging), n))
        else:
            expected = sorted(range(len(arrivals)), key=lambda n: (-level(n), arrivals[n][2], n))
        assert by_key == [f"c{n}" for n in expected]
        # The router hands the calls out in that order, whenever the agent comes.
        assert serve_in_turn(build(), "101", now) == by_key


@FOCUSED
@given(
    seed=st.integers(0, 2**32 - 1),
    team=st.lists(st.tuples(st.sampled_from((0.5, 1.0, 2.0, 5.0)), st.integers(1, 10)), min_size=2, max_size=6),
    calls=st.integers(1, 20),
)
def test_random_weighted_is_reproducible_for_a_seed(seed, team, calls):
    """Same seed, same inputs: the same effects, offers only to eligible agents."""

    def run() -> list[Effect]:
        queue = QueueConfig("q", Strategy.RANDOM_WEIGHTED, ladder({"after": 0, "require": "billing >= 5"}))
        router = Router([queue], ring_timeout=RING, wrapup_seconds=WRAPUP, seed=seed)
        log: list[Effect] = []
        for n, (weight, level) in enumerate(team):
            log += router.login(str(100 + n), {"q"}, 0, skills={"billing": level}, wrapup_seconds=0.0, weight=weight)
        for n in range(calls):
            effects = router.enqueue(f"c{n}", "q", now=n)
            log += effects
            for offer in (e for e in effects if isinstance(e, Offer)):
                assert router.agent(offer.agent_id).skills["billing"] >= 5
                log += router.offer_answered(offer.offer_id, n)
                log += router.call_ended(offer.call_id, n)
        return log

    first = run()
    assert first == run()
    assert any(isinstance(e, Offer) for e in first) == any(level >= 5 for _, level in team)


@FOCUSED
@given(
    strategy=st.sampled_from(sorted(STRATEGY_RANKS, key=lambda s: s.value)),
    require=st.sampled_from(("true", "billing >= 4", "billing >= 2 or lang.en >= 5")),
    team=st.lists(st.tuples(SKILL_MAPS, st.lists(st.integers(0, 300), max_size=3), st.integers(0, 2)),
                  min_size=1, max_size=len(AGENT_IDS)),
)
def test_a_call_goes_to_the_agent_its_strategy_ranks_first(strategy, require, team):
    """Agents with different histories (calls and talk time today, then back at different
    times, some at once) are all available when a call arrives: it is offered to the eligible
    agent the strategy ranks first, with longest idle and then agent id breaking ties."""
    queues = [QueueConfig("q", strategy, ladder({"after": 0, "require": require})), QueueConfig("warmup")]
    router = Router(queues, ring_timeout=RING, wrapup_seconds=WRAPUP)
    team_ids = AGENT_IDS[: len(team)]
    for agent_id, (skills, _, _) in zip(team_ids, team):
        router.login(agent_id, {"q", "warmup"}, 0, skills=skills, wrapup_seconds=0.0)
        router.pause(agent_id, "history", 0)
    now, call_ids = 0.0, (f"w{n}" for n in itertools.count())
    for agent_id, (_, talks, _) in zip(team_ids, team):  # each alone takes its calls of the day
        router.unpause(agent_id, now)
        for talk in talks:
            call_id = next(call_ids)
            (offer,) = [e for e in router.enqueue(call_id, "warmup", now) if isinstance(e, Offer)]
            router.offer_answered(offer.offer_id, now)
            now += talk
            router.call_ended(call_id, now)
        router.pause(agent_id, "history", now)
    back = now
    for agent_id, (_, _, delay) in zip(team_ids, team):  # back in order of delay, ties at once
        router.unpause(agent_id, back + delay)
    offers = [e for e in router.enqueue("x", "q", back + 3) if isinstance(e, Offer)]
    requirement = router.call("x").requirement
    candidates = [router.agent(i) for i in team_ids if requirement.matches(router.agent(i).skills)]
    ranked = sorted(candidates, key=lambda a: STRATEGY_RANKS[strategy](a, requirement))
    assert [o.agent_id for o in offers] == [a.agent_id for a in ranked[:1]]


@FOCUSED
@given(team=st.lists(SKILL_MAPS, min_size=1, max_size=len(AGENT_IDS)), calls=st.integers(1, 12))
def test_round_robin_cycles_through_eligible_agents_in_id_order(team, calls):
    """Each caller goes to the next eligible agent after the last one offered, in numeric id
    order, wrapping around; agents lacking the skill are skipped."""
    queue = QueueConfig("q", Strategy.ROUND_ROBIN, ladder({"after": 0, "require": "has(billing)"}))
    router = Router([queue], ring_timeout=RING, wrapup_seconds=WRAPUP)
    for agent_id, skills in zip(AGENT_IDS, team):
        router.login(agent_id, {"q"}, 0, skills=skills, wrapup_seconds=0.0)
    served = []
    for n in range(calls):
        for offer in (e for e in router.enqueue(f"c{n}", "q", n) if isinstance(e, Offer)):
            served.append(offer.agent_id)
            router.offer_answered(offer.offer_id, n)
            router.call_ended(offer.call_id, n)
    cycle = sorted((i for i, skills in zip(AGENT_IDS, team) if "billing" in skills), key=id_order)
    assert served == list(itertools.islice(itertools.cycle(cycle), calls if cycle else 0))
