"""Routing scale: how the ACD router's decision time and memory grow with the size of the floor.

Pure, in-process: no Asterisk, no I/O. For each agent count (default 1k, 5k, 20k agents, 50 skills,
20 queues, 2k waiting calls) it builds a seeded, realistic floor and times the router method
calls that make routing decisions, with ``time.perf_counter_ns`` around the router call only,
after a warm-up:

- ``arrival/busy``: a call arrives while the waiting calls wait and the agents who could take
  them are busy (on a call, ringing or in wrap-up): the router files the call and scans the few
  available agents, none or few of them eligible;
- ``arrival/idle``: a call arrives on an idle floor (every agent available, nobody waiting): the
  queue's strategy picks among all its available members;
- ``available``: an agent becomes available (its wrap-up timer fires, or it unpauses) while the
  waiting calls wait: it must find the best eligible call across all its queues;
- ``step-widen``: a waiting call's widening-step timer fires (its requirement relaxes and it is
  offered again); shown for completeness.

Beside each wall-clock figure the report gives the same calls' p99 in thread CPU time, and how
many calls were descheduled for more than 0.5 ms: on a shared machine the wall-clock tail shows
other processes, not the router. Arrivals on the idle floor are also broken down by the queue's
strategy, since some strategies scan every available member.

The busy floor is a small closed-loop simulation: every agent starts on a call; calls end
(wrap-up, sometimes a break), offers ring and are answered, callers abandon after their patience,
step timers widen waiting calls, and a new caller arrives whenever one leaves the queue, so the
number waiting stays at ``--waiting``. Memory is the ``tracemalloc`` growth from logging in the
agents (per agent) and from enqueueing the waiting calls (per waiting call).

    .venv/bin/python -m benchmarks.routing_scale [--sizes 1000,5000,20000] [--skills 50]
        [--waiting 2000] [--events 2000] [--seed 1] [--quick]

Figures go to stdout, progress to stderr. Targets (p99 < 1 ms at 5k agents; < 10 KB per waiting
call) are reported as PASS/FAIL; a missed target does not change the exit status.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import itertools
import math
import os
import random
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns, thread_time_ns
from typing import Any

from callcenter.acd.model import (
    ANY_AGENT,
    AgentState,
    CallState,
    Divert,
    Effect,
    MaxWait,
    MaxWaitAction,
    Offer,
    QueueConfig,
    StartTimer,
    Strategy,
)
from callcenter.acd.router import Router
from callcenter.acd.steps import next_change_at, validate_steps

# ---- targets from the issue ------------------------------------------------------------------

TARGET_P99_MS = 1.0
TARGET_P99_AGENTS = 5000
TARGET_BYTES_PER_CALL = 10 * 1024
OFF_CPU_NS = 500_000  # wall time beyond CPU time that marks a timed call as disturbed

# ---- the floor --------------------------------------------------------------------------------

START = 1_750_000_000.0  # a fixed wall-clock time, mid-day UTC, so no day rolls over mid-run
RING_TIMEOUT = 20.0
WRAPUP_SECONDS = 30.0
PRIORITY_AGING_SECONDS = 60.0  # one priority level is worth a minute of waiting
MEDIAN_TALK_SECONDS = 180.0
BREAK_PROBABILITY = 0.05  # after a call, the agent pauses for a break instead of taking the next
PRIORITY_MIX = ((0, 85), (1, 12), (2, 3))
QUEUES_PER_AGENT = ((1, 30), (2, 35), (3, 25), (4, 10))
# Skill levels 1..10, most agents around "fully competent" (5-6).
LEVEL_WEIGHTS = (2, 4, 7, 10, 12, 12, 10, 7, 4, 2)
# For 20 queues: six best-proficiency, the rest spread over the other strategies.
STRATEGY_MIX = (
    [Strategy.BEST_PROFICIENCY] * 6 + [Strategy.LONGEST_IDLE] * 5 + [Strategy.FEWEST_CALLS] * 3
    + [Strategy.LEAST_TALK_TIME] * 2 + [Strategy.ROUND_ROBIN] * 2 + [Strategy.RANDOM_WEIGHTED] * 2
)

# Widening ladders over a queue's primary (p), secondary (s) and tertiary (t) skill.
LADDERS: tuple[Callable[[str, str, str], list[dict[str, Any]]], ...] = (
    lambda p, s, t: [  # an expert first, then any holder, then anyone
        {"after": 0, "require": f"{p} >= 7"},
        {"after": 20, "require": f"{p} >= 4"},
        {"after": 60, "require": f"has({p})"},
        {"after": 120, "require": "true"},
    ],
    lambda p, s, t: [  # two skills; never falls back to anyone
        {"after": 0, "require": f"{p} >= 6 and {s} >= 5"},
        {"after": 30, "require": f"{p} >= 5 or {s} >= 7"},
        {"after": 90, "require": f"has({p}) or has({s})"},
    ],
    lambda p, s, t: [  # widens early while the queue is under pressure
        {"after": 0, "require": f"{p} >= 5"},
        {"when": "estimated_wait > 120", "require": f"{p} >= 3"},
        {"after": 45, "require": f"{p} >= 2"},
        {"after": 180, "require": "true"},
    ],
    lambda p, s, t: [  # a language-style combination
        {"after": 0, "require": f"({p} >= 8 or {s} >= 8) and {t} >= 3"},
        {"after": 15, "require": f"{p} >= 6 or {s} >= 6"},
        {"after": 40, "require": f"{p} >= 3 or {s} >= 3 or {t} >= 3"},
        {"after": 100, "require": "true"},
    ],
    lambda p, s, t: [  # widens while the service level is poor
        {"after": 0, "require": f"{p} >= 6"},
        {"after": 30, "require": f"{p} >= 3"},
        {"when": "service_level < 0.7", "require": f"has({p}) or {s} >= 4"},
    ],
)

# Event kinds, in display order, with what each measures.
KINDS: dict[str, str] = {
    "arrival/busy": "router.enqueue, calls waiting, matching agents busy",
    "arrival/idle": "router.enqueue, every agent available, nobody waiting",
    "available": "router.timer_fired(wrapup:...) / router.unpause, calls waiting",
    "step-widen": "router.timer_fired(step:...), calls waiting",
}


@dataclass(frozen=True)
class Floor:
    """The queues and skills every size shares."""

    skills: tuple[str, ...]
    skill_popularity: tuple[float, ...]
    configs: tuple[QueueConfig, ...]
    queue_skills: dict[str, tuple[str, str, str]]  # queue -> (primary, secondary, tertiary)
    traffic: dict[str, float]  # queue -> share of arriving calls

    @property
    def queues(self) -> list[str]:
        return [c.name for c in self.configs]


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    queues: tuple[str, ...]
    skills: dict[str, int]


def make_floor(n_skills: int, n_queues: int, seed: int, metric_steps: bool = True) -> Floor:
    rng = random.Random(f"floor:{seed}")
    skills = tuple(f"skill_{i:02d}" for i in range(n_skills))
    popularity = tuple(1 / (i + 1) ** 0.7 for i in range(n_skills))  # a few skills are common
    names = [f"q{i:02d}" for i in range(n_queues)]
    primaries = rng.sample(skills, min(n_queues, n_skills))
    strategies = list(STRATEGY_MIX)
    rng.shuffle(strategies)
    ladders = [LADDERS[i % len(LADDERS)] for i in range(n_queues)]
    rng.shuffle(ladders)
    queue_skills: dict[str, tuple[str, str, str]] = {}
    configs = []
    for i, name in enumerate(names):
        primary = primaries[i % len(primaries)]
        others = [s for s in skills if s != primary]
        secondary, tertiary = weighted_sample(rng, others, [popularity[skills.index(s)] for s in others], 2)
        queue_skills[name] = (primary, secondary, tertiary)
        raw = ladders[i](primary, secondary, tertiary)
        if not metric_steps:
            raw = [step for step in raw if "when" not in step]
        max_wait = None
        if i == n_queues - 1 and n_queues > 1:  # one queue overflows into the first after 5 min
            max_wait = MaxWait(300, MaxWaitAction.OVERFLOW, names[0])
        elif i == n_queues - 2:  # and one sends callers to voicemail after 10 min
            max_wait = MaxWait(600, MaxWaitAction.VOICEMAIL)
        configs.append(QueueConfig(
            name, strategy=strategies[i % len(strategies)], steps=validate_steps(raw),
            weight=1 if i < 2 else 0,  # two VIP queues
            max_wait=max_wait,
        ))
    zipf = [1 / (rank + 1) ** 0.8 for rank in range(n_queues)]
    rng.shuffle(zipf)
    total = sum(zipf)
    traffic = {name: share / total for name, share in zip(names, zipf)}
    return Floor(skills, popularity, tuple(configs), queue_skills, traffic)


def weighted_sample(rng: random.Random, items: Sequence[Any], weights: Sequence[float], k: int) -> list[Any]:
    """k distinct items, each draw in proportion to the weights of those left."""
    items, weights = list(items), list(weights)
    picked = []
    for _ in range(min(k, len(items))):
        index = rng.choices(range(len(items)), weights=weights)[0]
        picked.append(items.pop(index))
        weights.pop(index)
    return picked


def make_agents(floor: Floor, count: int, rng: random.Random) -> list[AgentProfile]:
    """Each agent serves 1-4 queues (busy queues have more agents) and holds 3-8 of the skills
    at levels 1..10: its queues' primary skills, often their secondary ones, then popular ones."""
    names = floor.queues
    queue_weights = [floor.traffic[q] for q in names]
    counts, count_weights = zip(*QUEUES_PER_AGENT)
    profiles = []
    for i in range(count):
        queues = weighted_sample(rng, names, queue_weights, rng.choices(counts, weights=count_weights)[0])
        wanted = max(rng.randint(3, 8), len(queues))
        held: list[str] = [floor.queue_skills[q][0] for q in queues]
        for q in queues:
            for extra, chance in zip(floor.queue_skills[q][1:], (0.6, 0.4)):
                if rng.random() < chance:
                    held.append(extra)
        held = list(dict.fromkeys(held))[:wanted]
        others = [s for s in floor.skills if s not in held]
        held += weighted_sample(rng, others, [floor.skill_popularity[floor.skills.index(s)] for s in others],
                                wanted - len(held))
        levels = rng.choices(range(1, 11), weights=LEVEL_WEIGHTS, k=len(held))
        profiles.append(AgentProfile(str(100000 + i), tuple(sorted(queues)), dict(zip(held, levels))))
    return profiles


def make_router(floor: Floor, seed: int) -> Router:
    return Router(list(floor.configs), ring_timeout=RING_TIMEOUT, wrapup_seconds=WRAPUP_SECONDS,
                  priority_aging_seconds=PRIORITY_AGING_SECONDS, seed=seed)


@dataclass(frozen=True)
class Arrival:
    call_id: str
    queue: str
    priority: int
    attrs: dict[str, str]


class Callers:
    """A seeded stream of new callers (pre-built so the timed region only sees the router)."""

    def __init__(self, floor: Floor, rng: random.Random, prefix: str) -> None:
        self._floor, self._rng, self._prefix = floor, rng, prefix
        self._names = floor.queues
        self._weights = [floor.traffic[q] for q in self._names]
        self._numbers = itertools.count()

    def next(self) -> Arrival:
        n = next(self._numbers)
        priority = self._rng.choices([p for p, _ in PRIORITY_MIX], weights=[w for _, w in PRIORITY_MIX])[0]
        queue = self._rng.choices(self._names, weights=self._weights)[0]
        return Arrival(f"{self._prefix}{n}", queue, priority, {"caller": f"+4930{n:08d}", "language": "en"})


def talk_seconds(rng: random.Random) -> float:
    return min(1800.0, max(20.0, rng.lognormvariate(math.log(MEDIAN_TALK_SECONDS), 0.6)))


# ---- measurement ------------------------------------------------------------------------------


@dataclass
class Samples:
    """Timings of one event kind: the first ``warmup`` are seen but not kept, nor any beyond
    ``limit`` (a loop may overshoot while it waits for another kind)."""

    warmup: int
    limit: int
    seen: int = 0
    ns: list[int] = field(default_factory=list)  # wall time (perf_counter_ns)
    cpu_ns: list[int] = field(default_factory=list)  # this thread's CPU time over the same call
    offered: int = 0  # kept events whose effects included an Offer

    def add(self, elapsed_ns: int, cpu_ns: int, effects: list[Effect]) -> bool:
        """Count an event; True if its timing was kept."""
        self.seen += 1
        if self.seen <= self.warmup or len(self.ns) >= self.limit:
            return False
        self.ns.append(elapsed_ns)
        self.cpu_ns.append(cpu_ns)
        self.offered += any(isinstance(e, Offer) for e in effects)
        return True

    def percentile_us(self, fraction: float, cpu: bool = False) -> float:
        """Nearest-rank percentile, in microseconds (NaN with no samples)."""
        values = self.cpu_ns if cpu else self.ns
        if not values:
            return math.nan
        ordered = sorted(values)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] / 1000

    @property
    def off_cpu(self) -> int:
        """Kept events whose wall time exceeded their CPU time by more than OFF_CPU_NS: the
        thread was descheduled (another process wanted the core) or waited on the system."""
        return sum(1 for wall, cpu in zip(self.ns, self.cpu_ns) if wall - cpu > OFF_CPU_NS)

    @property
    def max_us(self) -> float:
        return max(self.ns) / 1000 if self.ns else math.nan


@dataclass
class SizeResult:
    agents: int
    samples: dict[str, Samples]
    bytes_per_agent: float
    bytes_per_call: float
    notes: list[str]
    idle_by_strategy: dict[str, Samples] = field(default_factory=dict)  # arrival/idle, per queue strategy


def time_call(method: Callable[..., list[Effect]], *args: Any, **kwargs: Any) -> tuple[list[Effect], int, int]:
    """Call a router method; return its effects, its wall time (perf_counter_ns, the figure
    reported) and this thread's CPU time around it (to tell slow code from a busy machine)."""
    cpu = thread_time_ns()
    start = perf_counter_ns()
    effects = method(*args, **kwargs)
    elapsed = perf_counter_ns() - start
    return effects, elapsed, thread_time_ns() - cpu


def timed(samples: Samples, method: Callable[..., list[Effect]], *args: Any, **kwargs: Any) -> list[Effect]:
    effects, elapsed, cpu = time_call(method, *args, **kwargs)
    samples.add(elapsed, cpu, effects)
    return effects


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Ticker:
    """Progress lines on stderr, at most every few seconds, for the long loops."""

    def __init__(self, label: str, every: float = 5.0) -> None:
        self.label, self.every = label, every
        self.started = self.last = time.monotonic()

    def tick(self, describe: Callable[[], str]) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            progress(f"  {self.label}: {describe()} ({now - self.started:.0f} s)")


def traced_growth(action: Callable[[], None]) -> int:
    """Bytes still allocated after ``action`` that were not before. Tracing must have been on
    since the router was created, so that blocks freed on the way (a dict or list outgrowing
    its table) are subtracted too."""
    assert tracemalloc.is_tracing()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    action()
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - before


# ---- scenario 1: the idle floor ---------------------------------------------------------------


def login_all(router: Router, profiles: list[AgentProfile], now: float) -> list[Offer]:
    offers: list[Offer] = []
    for profile in profiles:
        effects = router.login(profile.agent_id, profile.queues, now, skills=profile.skills)
        offers.extend(e for e in effects if isinstance(e, Offer))
    return offers


def idle_floor(floor: Floor, profiles: list[AgentProfile], rng: random.Random, args: argparse.Namespace,
               samples: Samples, by_strategy: dict[str, Samples], label: str) -> tuple[float, list[str]]:
    """Log every agent in (measuring memory per agent), then time arrivals on the idle floor.
    After each, the call is answered and ended and the agent's wrap-up ends, untimed, so the
    floor stays idle (the agent rejoins its pools at the back)."""
    now = START
    tracemalloc.start()
    try:
        router = make_router(floor, args.seed)
        grown = traced_growth(lambda: login_all(router, profiles, now))
    finally:
        tracemalloc.stop()
    strategies = {c.name: c.strategy.value for c in floor.configs}
    callers = Callers(floor, rng, "idle-")
    ticker = Ticker(f"{label} idle floor")
    pool_sizes = []
    while len(samples.ns) < args.events:
        now += 1.0
        arrival = callers.next()
        effects, elapsed, cpu = time_call(router.enqueue, arrival.call_id, arrival.queue, now,
                                          priority=arrival.priority, attrs=arrival.attrs)
        if samples.add(elapsed, cpu, effects):
            by_strategy.setdefault(strategies[arrival.queue], Samples(0, args.events)).add(elapsed, cpu, effects)
        offer = next((e for e in effects if isinstance(e, Offer)), None)
        if offer is None:  # nobody available meets the first step: the caller gives up at once
            router.abandon(arrival.call_id, now)
            continue
        pool_sizes.append(next(e.data["why"]["available_members"] for e in effects
                               if getattr(e, "kind", None) == "offered"))
        router.offer_answered(offer.offer_id, now)
        now += talk_seconds(rng) / 20  # short talks keep the run within one day
        router.call_ended(arrival.call_id, now)
        router.timer_fired(f"wrapup:{offer.agent_id}", now)
        ticker.tick(lambda: f"{len(samples.ns)}/{args.events} arrivals")
    available = sum(1 for a in router.agents() if a.state is AgentState.AVAILABLE)
    mean_pool = sum(pool_sizes) / len(pool_sizes) if pool_sizes else 0.0
    note = (f"idle floor: {available}/{len(profiles)} agents available, "
            f"{mean_pool:.0f} available members in the arriving call's queue on average")
    return grown / len(profiles), [note]


# ---- scenario 2: the busy floor ---------------------------------------------------------------


class BusyFloor:
    """Every agent busy and ``waiting`` callers queued; then a closed-loop simulation: the next
    event in time order is processed, and a new caller arrives whenever one leaves the queue."""

    def __init__(self, floor: Floor, profiles: list[AgentProfile], rng: random.Random,
                 args: argparse.Namespace, samples: dict[str, Samples], label: str) -> None:
        self.floor, self.profiles, self.rng, self.args = floor, profiles, rng, args
        self.samples, self.label = samples, label
        self.router = make_router(floor, args.seed)
        self.callers = Callers(floor, rng, "call-")
        self.now = START
        self.heap: list[tuple[float, int, str, str]] = []
        self.order = itertools.count()
        self.timers: dict[str, float] = {}  # pending StartTimer key -> due (a new one replaces)
        self.waiting: set[str] = set()
        self.offer_calls: dict[str, str] = {}  # outstanding offer id -> call id
        self.counts: Counter[str] = Counter()

    def schedule(self, at: float, kind: str, key: str) -> None:
        heapq.heappush(self.heap, (at, next(self.order), kind, key))

    def apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, StartTimer):
                self.timers[effect.key] = effect.at
                self.schedule(effect.at, "timer", effect.key)
            elif isinstance(effect, Offer):
                self.waiting.discard(effect.call_id)
                self.offer_calls[effect.offer_id] = effect.call_id
                self.schedule(self.now + self.rng.uniform(2.0, 8.0), "answer", effect.offer_id)
            elif isinstance(effect, Divert):
                self.waiting.discard(effect.call_id)

    def occupy_agents(self) -> int:
        """One filler call per agent, queued before anyone logs in, in login order: each agent
        logging in takes its own (the oldest in its queues), answers and is on a call."""
        now = self.now - 1.0
        for i, profile in enumerate(self.profiles):
            queue = profile.queues[i % len(profile.queues)]
            weight = self.router.queue_config(queue).weight
            self.router.enqueue(f"fill-{i}", queue, now, priority=-weight, steps=ANY_AGENT)
        for offer in login_all(self.router, self.profiles, now):
            self.router.offer_answered(offer.offer_id, now)
            self.schedule(self.now + self.rng.uniform(0, 2.5 * MEDIAN_TALK_SECONDS), "end", offer.call_id)
        return sum(1 for a in self.router.agents() if a.state is AgentState.ON_CALL)

    def queue_waiting(self) -> float:
        """Enqueue ``--waiting`` callers who have waited 0-5 minutes so far; return the memory
        growth per call. Their timers are derived afterwards, outside the traced region."""
        arrivals = [self.callers.next() for _ in range(self.args.waiting)]
        waited = [self.rng.uniform(0, 300) for _ in arrivals]
        offers: list[Offer] = []

        def enqueue_all() -> None:
            for arrival, seconds in zip(arrivals, waited):
                effects = self.router.enqueue(arrival.call_id, arrival.queue, self.now, priority=arrival.priority,
                                              attrs=arrival.attrs, enqueued_at=self.now - seconds)
                offers.extend(e for e in effects if isinstance(e, Offer))

        grown = traced_growth(enqueue_all)
        offered = {o.call_id for o in offers}
        for arrival in arrivals:
            call = self.router.call(arrival.call_id)
            if arrival.call_id in offered or call is None:
                continue
            self.waiting.add(arrival.call_id)
            due = next_change_at(call.steps, call.queue_entered_at, self.now)
            if due is not None:
                self.timers[f"step:{arrival.call_id}"] = due
                self.schedule(due, "timer", f"step:{arrival.call_id}")
            max_wait = self.router.queue_config(call.queue).max_wait
            if max_wait is not None:
                at = max(self.now, call.queue_entered_at + max_wait.seconds)
                self.timers[f"maxwait:{arrival.call_id}"] = at
                self.schedule(at, "timer", f"maxwait:{arrival.call_id}")
            patience = call.enqueued_at + self.patience()
            self.schedule(max(patience, self.now + self.rng.uniform(0, 60)), "abandon", arrival.call_id)
        self.apply(offers)
        return grown / len(arrivals)

    def patience(self) -> float:
        return 30.0 + self.rng.expovariate(1 / 600)

    def arrive(self) -> None:
        arrival = self.callers.next()
        effects = timed(self.samples["arrival/busy"], self.router.enqueue, arrival.call_id, arrival.queue,
                        self.now, priority=arrival.priority, attrs=arrival.attrs)
        self.waiting.add(arrival.call_id)
        self.schedule(self.now + self.patience(), "abandon", arrival.call_id)
        self.apply(effects)

    def top_up(self) -> None:
        while len(self.waiting) < self.args.waiting:
            self.arrive()

    def step(self) -> bool:
        """Process the next event; False once nothing is left to happen."""
        if not self.heap:
            return False
        at, _, kind, key = heapq.heappop(self.heap)
        self.now = max(self.now, at)
        router = self.router
        self.counts[kind] += 1
        if kind == "answer":
            call_id = self.offer_calls.pop(key)
            self.apply(router.offer_answered(key, self.now))
            call = router.call(call_id)
            if call is not None and call.state is CallState.CONNECTED:
                self.schedule(self.now + talk_seconds(self.rng), "end", call_id)
        elif kind == "end":
            self.apply(router.call_ended(key, self.now))
        elif kind == "abandon":
            call = router.call(key)
            if call is not None and call.state is not CallState.CONNECTED:
                self.waiting.discard(key)
                self.apply(router.abandon(key, self.now))
        elif kind == "unpause":
            effects = timed(self.samples["available"], router.unpause, key, self.now)
            self.apply(effects)
        elif kind == "timer":
            if self.timers.get(key) != at:
                return True  # replaced by a later timer with the same key
            del self.timers[key]
            self.fire(key)
        self.top_up()
        return True

    def fire(self, key: str) -> None:
        router = self.router
        timer, _, subject = key.partition(":")
        if timer == "wrapup":
            agent = router.agent(subject)
            if agent is None or agent.state is not AgentState.WRAP_UP:
                return
            if self.rng.random() < BREAK_PROBABILITY:
                self.apply(router.pause(subject, "break", self.now))
                self.schedule(self.now + self.rng.uniform(120, 900), "unpause", subject)
                return
            effects = timed(self.samples["available"], router.timer_fired, key, self.now)
        elif timer == "step":
            call = router.call(subject)
            if call is None or call.state is not CallState.WAITING:
                return  # the router would ignore it: no decision to time
            effects = timed(self.samples["step-widen"], router.timer_fired, key, self.now)
        else:  # max wait: overflow or voicemail
            effects = router.timer_fired(key, self.now)
        self.apply(effects)

    def done(self) -> bool:
        return all(len(self.samples[k].ns) >= self.args.events for k in ("arrival/busy", "available"))

    def run(self, busy: int) -> list[str]:
        """Simulate until every kind has its events; return notes on the floor."""
        label = f"{self.label} busy floor"
        ticker = Ticker(label)
        limit = 200 * (self.args.events + self.args.warmup) + 10 * len(self.profiles)
        for _ in range(limit):
            if self.done() or not self.step():
                break
            ticker.tick(lambda: ", ".join(f"{k} {len(self.samples[k].ns)}/{self.args.events}"
                                          for k in ("arrival/busy", "available")))
        if not self.done():
            progress(f"  {label}: stopped before reaching --events for every kind")
        router = self.router
        states = Counter(a.state.value for a in router.agents())
        steps = Counter(c.step_index for c in router.calls() if c.state is CallState.WAITING)
        waiting = sum(steps.values())
        step_mix = " ".join(f"{i}:{100 * n / waiting:.0f}%" for i, n in sorted(steps.items())) if waiting else "-"
        notes = [
            f"busy floor: {busy}/{len(self.profiles)} agents on a call at the start; at the end "
            + ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
            f"busy floor: {waiting} waiting at the end (by step {step_mix}), "
            f"{self.now - START:.0f} s simulated, {sum(self.counts.values())} events",
        ]
        return notes


# ---- one size, and the report -----------------------------------------------------------------


def run_size(floor: Floor, agents: int, args: argparse.Namespace) -> SizeResult:
    rng = random.Random(f"agents:{args.seed}:{agents}")
    label = f"[{agents} agents]"
    started = time.monotonic()
    progress(f"{label} building {agents} agent profiles ...")
    profiles = make_agents(floor, agents, rng)
    samples = {kind: Samples(args.warmup, args.events) for kind in KINDS}
    by_strategy: dict[str, Samples] = {}
    progress(f"{label} idle floor: logging in (tracemalloc), then {args.events} arrivals ...")
    per_agent, notes = idle_floor(floor, profiles, random.Random(f"idle:{args.seed}:{agents}"), args,
                                  samples["arrival/idle"], by_strategy, label)
    gc.collect()
    progress(f"{label} busy floor: occupying every agent, then queueing {args.waiting} callers (tracemalloc) ...")
    tracemalloc.start()  # from the router's creation on: see traced_growth
    try:
        busy = BusyFloor(floor, profiles, random.Random(f"busy:{args.seed}:{agents}"), args, samples, label)
        occupied = busy.occupy_agents()
        per_call = busy.queue_waiting()
    finally:
        tracemalloc.stop()
    progress(f"{label} busy floor: simulating until {args.events} arrivals and {args.events} agents available ...")
    busy_notes = busy.run(occupied)
    del busy
    gc.collect()
    progress(f"{label} done in {time.monotonic() - started:.0f} s")
    return SizeResult(agents, samples, per_agent, per_call, notes + busy_notes, by_strategy)


def fmt_us(value: float) -> str:
    return f"{value:9.1f}" if math.isfinite(value) else f"{'-':>9}"


def fmt_bytes(value: float) -> str:
    return f"{value / 1024:8.2f} KB"


def fmt_ratio(value: float, base: float) -> str:
    if not (math.isfinite(value) and math.isfinite(base)) or base <= 0:
        return f"{'-':>8}"
    return f"{value / base:7.2f}x"


def report(floor: Floor, results: list[SizeResult], args: argparse.Namespace, elapsed: float) -> None:
    load_average = " ".join(f"{x:.2f}" for x in os.getloadavg())
    metric_queues = sum(1 for c in floor.configs if c.steps.has_metric_steps)
    strategies = Counter(c.strategy.value for c in floor.configs)
    print(f"routing scale: {len(floor.configs)} queues, {len(floor.skills)} skills, {args.waiting} waiting calls, "
          f"seed {args.seed}")
    print("queues: " + ", ".join(f"{n} {s}" for s, n in strategies.most_common())
          + f"; {metric_queues} with metric steps; priority aging {PRIORITY_AGING_SECONDS:g} s")
    print("agents: 1-4 queues and 3-8 skills (levels 1..10) each; callers priority 0..2")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_average} at the end (1, 5, 15 min)")
    print()
    print(f"decision time per router call, us (perf_counter_ns around the router method only; "
          f"{args.warmup} warm-up events per kind dropped)")
    for kind, what in KINDS.items():
        print(f"  {kind:13} {what}")
    print(f"  cpu p99: the same calls in thread CPU time; off-cpu: calls that spent > {OFF_CPU_NS // 1000} us "
          "descheduled (a busy machine)")
    print(f"{'agents':>7}  {'event':13} {'n':>6} {'p50':>9} {'p99':>9} {'max':>9} {'cpu p99':>9} "
          f"{'offered':>8} {'off-cpu':>8}")
    disturbed = 0
    for result in results:
        for kind in KINDS:
            s = result.samples[kind]
            offered = f"{100 * s.offered / len(s.ns):7.0f}%" if s.ns else f"{'-':>8}"
            disturbed = max(disturbed, s.off_cpu * 100 // max(1, len(s.ns)))
            print(f"{result.agents:7d}  {kind:13} {len(s.ns):6d} {fmt_us(s.percentile_us(0.5))} "
                  f"{fmt_us(s.percentile_us(0.99))} {fmt_us(s.max_us)} {fmt_us(s.percentile_us(0.99, cpu=True))} "
                  f"{offered} {s.off_cpu:8d}")
    if disturbed >= 1:
        print(f"  NOTE: up to {disturbed}% of one kind's calls were descheduled: other processes compete for the CPU "
              f"(load average {load_average}); wall-clock p99/max are inflated, see cpu p99")
    print()
    print("arrival/idle by the arriving call's queue strategy, us")
    print(f"{'agents':>7}  {'strategy':18} {'n':>6} {'p50':>9} {'p99':>9} {'max':>9} {'cpu p99':>9}")
    for result in results:
        for strategy, s in sorted(result.idle_by_strategy.items()):
            print(f"{result.agents:7d}  {strategy:18} {len(s.ns):6d} {fmt_us(s.percentile_us(0.5))} "
                  f"{fmt_us(s.percentile_us(0.99))} {fmt_us(s.max_us)} {fmt_us(s.percentile_us(0.99, cpu=True))}")
    print()
    print("memory (tracemalloc growth / count)")
    print(f"{'agents':>7}  {'per agent':>11}  {'per waiting call':>16}")
    for result in results:
        print(f"{result.agents:7d}  {fmt_bytes(result.bytes_per_agent)}  {fmt_bytes(result.bytes_per_call):>16}")
    print()
    base = results[0]
    print(f"growth vs {base.agents} agents (p99 decision time, memory per item)")
    print(f"{'agents':>7}  {'size':>6} " + " ".join(f"{k:>13}" for k in KINDS) + f" {'mem/agent':>10} {'mem/call':>10}")
    for result in results:
        cells = [fmt_ratio(result.samples[k].percentile_us(0.99), base.samples[k].percentile_us(0.99))
                 for k in KINDS]
        print(f"{result.agents:7d}  {result.agents / base.agents:5.1f}x " + " ".join(f"{c:>13}" for c in cells)
              + f" {fmt_ratio(result.bytes_per_agent, base.bytes_per_agent):>10}"
              + f" {fmt_ratio(result.bytes_per_call, base.bytes_per_call):>10}")
    print()
    print("floor")
    for result in results:
        for note in result.notes:
            print(f"{result.agents:7d}  {note}")
    print()
    print("targets")
    at_target = next((r for r in results if r.agents == TARGET_P99_AGENTS), None)
    if at_target is None:
        print(f"  p99 < {TARGET_P99_MS:g} ms at {TARGET_P99_AGENTS} agents: n/a ({TARGET_P99_AGENTS} not in --sizes)")
    else:
        p99s = {k: at_target.samples[k].percentile_us(0.99) / 1000 for k in KINDS}
        ok = all(math.isfinite(v) and v < TARGET_P99_MS for v in p99s.values())
        cells = ", ".join(f"{k} {v:.3f} ms" for k, v in p99s.items())
        print(f"  p99 < {TARGET_P99_MS:g} ms at {TARGET_P99_AGENTS} agents: {cells}: {'PASS' if ok else 'FAIL'}")
    worst = max(results, key=lambda r: r.bytes_per_call)
    verdict = "PASS" if worst.bytes_per_call < TARGET_BYTES_PER_CALL else "FAIL"
    print(f"  memory < {TARGET_BYTES_PER_CALL // 1024} KB per waiting call: worst {worst.bytes_per_call / 1024:.2f} KB "
          f"(at {worst.agents} agents): {verdict}")
    print(f"\n(run took {elapsed:.0f} s)")


FULL = {"sizes": "1000,5000,20000", "waiting": 2000, "events": 2000, "warmup": 200}
QUICK = {"sizes": "200,1000", "waiting": 200, "events": 300, "warmup": 50}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help=f"agent counts, comma-separated (default {FULL['sizes']}; "
                                        f"--quick {QUICK['sizes']})")
    parser.add_argument("--skills", type=int, default=50, help="distinct skills (default 50)")
    parser.add_argument("--queues", type=int, default=20, help="queues (default 20)")
    parser.add_argument("--waiting", type=int, help=f"calls waiting on the busy floor (default {FULL['waiting']})")
    parser.add_argument("--events", type=int, help=f"measured events per kind (default {FULL['events']})")
    parser.add_argument("--warmup", type=int, help=f"unmeasured events per kind first (default {FULL['warmup']})")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument("--no-metric-steps", action="store_true",
                        help="drop the queues' metric ('when') steps, keeping their time steps")
    parser.add_argument("--quick", action="store_true", help="a small run: "
                        + ", ".join(f"--{k} {v}" for k, v in QUICK.items()) + " unless given")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not args.sizes or any(n < 1 for n in args.sizes):
        parser.error("--sizes needs at least one positive agent count")
    if args.skills < 3 or args.queues < 1:
        parser.error("--skills must be >= 3 and --queues >= 1")
    if args.waiting < 1 or args.events < 1 or args.warmup < 0:
        parser.error("--waiting and --events must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    floor = make_floor(args.skills, args.queues, args.seed, metric_steps=not args.no_metric_steps)
    results = [run_size(floor, agents, args) for agents in args.sizes]
    report(floor, results, args, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
