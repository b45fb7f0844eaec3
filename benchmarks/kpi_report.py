"""KPI report benchmark: how long ``callcenter report kpis`` takes over a large event log,
compared with merely reading that log.

It owns three things:

- **a generated event log**: a seeded simulation of N calls over ``--days`` (30) days, four
  queues and ``--agents`` (50) agents working 8-hour shifts with breaks, lunch and log-outs.
  Every call goes through the engine's real event sequence and data shapes
  (docs/architecture.md, "The event log"): ``call_arrived``, ``queued``, ``offered`` with the
  router's ``why``, the agent's ``agent_state`` reserved/on_call/wrap_up/available,
  ``answered``, ``ended``, ``wrapup_done``; some callers abandon (waiting or ringing, a few
  within 5 s), some reach the queue's max wait and exit, some offers ring out
  (``ring_no_answer`` and the agent's ring-no-answer pause), some calls are held
  (``hold_started``/``hold_ended``), blind-transferred (``transferred``, queued again) and most
  get a ``disposition``. An answered call makes about 10 rows, so N calls are about 10·N rows.
  Callers are served first come, first served by the agent free soonest (longest idle on a
  tie), shifts follow the arrivals over the day, and the mean handle time is set from the load
  (between 15 and 420 s) so the agents are busy but not swamped: 50 agents and a million calls
  a month leave about 22 s per call; ``--agents`` gives a larger floor longer calls.
- **bulk loading** it into SQLite (``executemany`` in chunks of 50k rows) and/or a throwaway
  PostgreSQL server (``COPY`` through psycopg), with the table created by the event log's own
  code, indexes built after the load;
- **the timing**: for each backend, a bare full scan through the very reader the report uses
  (``callcenter.kpi.report_cli.read_all_events``, which pages through
  ``callcenter.kpi.reports.stream_events`` as ``report kpis`` and the API do: every row,
  nothing done with it), then the KPI report itself
  (``kpi_report(read_all_events(url), interval="30m", ordered=True)``) over the same data.
  The figure that matters is report/scan: the target is at most 3x, i.e. computing the KPIs may
  cost at most twice what reading the events costs.

    .venv/bin/python -m benchmarks.kpi_report [--calls 1000000] [--backend sqlite|postgresql|both]
        [--keep DIR] [--days 30] [--agents 50] [--seed 1] [--interval 30m]

``--keep DIR`` keeps the generated SQLite file in DIR and reuses it on the next run with the
same calls, days, agents and seed. Figures go to stdout, progress to stderr. A missed target
does not change the exit status.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import gc
import heapq
import inspect
import itertools
import json
import logging
import math
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from callcenter.events import log as event_log
from callcenter.kpi.definitions import kpi_report
from callcenter.kpi.report_cli import read_all_events
from callcenter.storage import make_engine

log = logging.getLogger("benchmarks.kpi_report")

TARGET_RATIO = 3.0
CHUNK_ROWS = 50_000
# Bump when the generated data changes, so a --keep cache of the old data is not reused.
GENERATOR_VERSION = 1
START = 1_772_409_600.0  # 2026-03-02 00:00 UTC, a Monday
DAY = 86_400.0

# ---- the floor ---------------------------------------------------------------------------------

# queue -> (share of calls, priority, flow, dialled number)
QUEUES: dict[str, tuple[float, int, str, str]] = {
    "support": (0.40, 0, "main", "5000"),
    "sales": (0.30, 0, "main", "5000"),
    "billing": (0.20, 0, "service", "5001"),
    "vip": (0.10, 5, "service", "5001"),
}
# Arrivals per hour of the day (relative): quiet nights, a morning and an afternoon peak.
HOURLY_WEIGHTS = (0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.45, 0.9, 1.6, 2.2, 2.5, 2.4,
                  2.0, 2.1, 2.4, 2.3, 2.0, 1.7, 1.4, 1.2, 1.0, 0.8, 0.5, 0.3)
WEEKDAY_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.4)  # Monday first
SHIFT_HOURS = 8.0
NIGHT_SHIFT_START = 22
# Within a shift: (hours after log-in, reason, minutes); the log-out comes at SHIFT_HOURS.
SHIFT_PAUSES = ((2.0, "break", 15), (4.0, "lunch", 30), (6.0, "break", 15))
PRODUCTIVE_HOURS = SHIFT_HOURS - sum(minutes for _, _, minutes in SHIFT_PAUSES) / 60
# Share of staffed time the offered work fills: busy peaks with some abandons, idle nights.
TARGET_OCCUPANCY = 0.65
HANDLE_SECONDS_RANGE = (15.0, 420.0)
WRAPUP_SHARE = 0.15  # of the handle time
IVR_SECONDS = (8.0, 45.0)  # call_arrived to queued
RING_SECONDS = (2.0, 9.0)  # offered to answered
RING_TIMEOUT = 15.0
MAX_WAIT = 600.0  # then the caller leaves the queue (voicemail, or the fallback route)
PATIENCE_MEAN = 180.0
SHORT_ABANDON_SHARE = 0.03  # callers who hang up within a few seconds of queuing, whatever happens
RING_NO_ANSWER_SHARE = 0.03
RNA_PAUSE_SECONDS = (30.0, 240.0)  # an agent paused for ring-no-answer comes back after this
HOLD_SHARE = 0.08
TRANSFER_SHARE = 0.03
DISPOSITION_SHARE = 0.7
DISPOSITIONS = ("resolved", "follow_up", "escalated", "transferred", "sales_lead", "complaint", "wrong_number")
DISPOSITION_WEIGHTS = (50, 15, 8, 3, 10, 6, 2)
INF = math.inf

COLUMNS = ("ts", "kind", "call_id", "queue", "agent_id", "data", "event_key")


class Agent:
    """One agent's schedule-driven availability, as the generator needs it."""

    __slots__ = ("agent_id", "on", "free_at", "boundary", "schedule", "idle_since", "day", "calls_today",
                 "talk_today")

    def __init__(self, agent_id: str):
        self.agent_id = agent_id
        self.on = False  # logged in (paused or not)
        self.free_at = 0.0  # when the work or pause already given to the agent is over
        self.boundary = INF  # nominal time of the next pause or log-out: no call starts at or after it
        self.schedule: list[float] = []  # nominal times of every pause and log-out, sorted
        self.idle_since = 0.0
        self.day = -1
        self.calls_today = 0
        self.talk_today = 0.0


@dataclass(frozen=True)
class Shape:
    calls: int
    days: int
    agents: int
    seed: int

    @property
    def handle_seconds(self) -> float:
        """Mean talk + wrap-up that fills TARGET_OCCUPANCY of the productive staffed time."""
        staffed = self.agents * self.days * PRODUCTIVE_HOURS * 3600.0 * _working_share()
        lo, hi = HANDLE_SECONDS_RANGE
        return min(hi, max(lo, TARGET_OCCUPANCY * staffed / max(self.calls, 1)))


def shift_starts(agents: int) -> list[int]:
    """Each agent's shift start hour, so that the agents on duty follow the arrivals over the
    day: agent by agent, the start that covers the most of what is still uncovered (a planner's
    greedy schedule), after one night shift so that a call at any hour can be answered."""
    total = sum(HOURLY_WEIGHTS)
    wanted = [w / total * agents * SHIFT_HOURS for w in HOURLY_WEIGHTS]
    staffed = [0] * 24
    starts = []
    if agents >= 3:
        starts.append(NIGHT_SHIFT_START)
        for h in range(int(SHIFT_HOURS)):
            staffed[(NIGHT_SHIFT_START + h) % 24] += 1
    while len(starts) < agents:
        best = max(range(24), key=lambda s: sum(max(0.0, wanted[(s + h) % 24] - staffed[(s + h) % 24])
                                                 for h in range(int(SHIFT_HOURS))))
        for h in range(int(SHIFT_HOURS)):
            staffed[(best + h) % 24] += 1
        starts.append(best)
    return starts


def _working_share() -> float:
    # One agent in three has weekends off (see EventLogGenerator._shift_jobs).
    return (7 - 2 / 3) / 7


class EventLogGenerator:
    """Yields the event rows of the simulated month, in time order, ``CHUNK_ROWS`` at a time.

    A discrete-event simulation with two heaps: *jobs* (call arrivals, transferred callers
    queuing again, agents' log-ins, pauses and log-outs) run in time order, and each job may
    emit *events* a little before it (``call_arrived`` precedes ``queued``) or later (a call's
    whole course is decided when it queues). An event is written only once no job can come
    before it any more, so ``id`` order is ``ts`` order, as in the engine's table."""

    LOOKBACK = IVR_SECONDS[1] + 1.0  # how far before its job an event may lie

    def __init__(self, shape: Shape):
        self.shape = shape
        self.random = random.Random(shape.seed)
        self.agents = [Agent(str(1001 + i)) for i in range(shape.agents)]
        self.handle = shape.handle_seconds
        self.talk_mean = self.handle * (1 - WRAPUP_SHARE)
        self.wrapup_mean = max(5.0, self.handle * WRAPUP_SHARE)
        self._events: list[tuple] = []
        self._jobs: list[tuple] = []
        self._sequence = itertools.count()
        self.outcomes = {"answered": 0, "abandoned": 0, "exited": 0}
        self.rows = 0

    # ---- public
    def chunks(self, progress: Callable[[int, int], None] | None = None) -> Iterator[list[tuple]]:
        shape, rnd = self.shape, self.random
        arrivals = self._arrival_times()
        for job in self._shift_jobs():
            heapq.heappush(self._jobs, job)
            if job[2] != "login":
                job[3].schedule.append(job[0])
        for agent in self.agents:
            agent.schedule.sort()
        queue_names = list(QUEUES)
        queue_cum = list(itertools.accumulate(share for share, *_ in QUEUES.values()))
        self._emit(START - 60.0, "engine_started", None, None, None, {"queues": queue_names})
        out: list[tuple] = []
        key_prefix = f"bench{shape.seed}:"
        jobs = self._jobs
        for n, arrival in enumerate(arrivals, start=1):
            while jobs and jobs[0][0] <= arrival:
                self._run_job(heapq.heappop(jobs))
            queue = queue_names[bisect.bisect_left(queue_cum, rnd.random() * queue_cum[-1])]
            self._new_call(n, arrival, queue)
            self._drain(arrival - self.LOOKBACK, out, key_prefix)
            if len(out) >= CHUNK_ROWS:
                yield out
                out = []
                if progress:
                    progress(n, self.rows)
        while jobs:
            self._run_job(heapq.heappop(jobs))
        self._drain(INF, out, key_prefix)
        if out:
            yield out
        if progress:
            progress(shape.calls, self.rows)

    # ---- arrivals and shifts
    def _arrival_times(self) -> list[float]:
        """``calls`` queue times: a day by weekday weight, an hour by time-of-day weight."""
        rnd, days = self.random, self.shape.days
        day_weights = [WEEKDAY_WEIGHTS[d % 7] for d in range(days)]
        picked_days = rnd.choices(range(days), weights=day_weights, k=self.shape.calls)
        picked_hours = rnd.choices(range(24), weights=HOURLY_WEIGHTS, k=self.shape.calls)
        times = [START + d * DAY + (h + rnd.random()) * 3600.0 for d, h in zip(picked_days, picked_hours)]
        times.sort()
        return times

    def _shift_jobs(self) -> Iterator[tuple]:
        rnd = self.random
        for index, (agent, start_hour) in enumerate(zip(self.agents, shift_starts(len(self.agents)))):
            for day in range(-1, self.shape.days):  # day -1: a night shift running into day 0
                if index % 3 == 1 and (day % 7) in (5, 6):
                    continue  # weekend off (never agent 0, the night shift)
                login = START + day * DAY + start_hour * 3600.0 + rnd.uniform(-300.0, 300.0)
                if login + SHIFT_HOURS * 3600.0 <= START:
                    continue
                login = max(login, START)
                yield (login, next(self._sequence), "login", agent, None, 0.0)
                for after, reason, minutes in SHIFT_PAUSES:
                    at = login + after * 3600.0 + rnd.uniform(-600.0, 600.0)
                    yield (at, next(self._sequence), "pause", agent, reason, minutes * 60.0)
                logout = login + SHIFT_HOURS * 3600.0 + rnd.uniform(0.0, 600.0)
                yield (logout, next(self._sequence), "logout", agent, None, 0.0)

    def _run_job(self, job: tuple) -> None:
        at, _, kind, subject, reason, length = job
        if kind == "call":
            self._route(*subject)
            return
        agent: Agent = subject
        if kind == "login":
            agent.on, agent.free_at, agent.idle_since = True, at, at
            agent.boundary = self._next_boundary(agent, at)
            self._agent_state(at, agent, "available")
        elif kind == "pause":
            # A pause falls due while the agent is on a call: it starts after the wrap-up.
            begin = max(at, agent.free_at)
            self._agent_state(begin, agent, "paused", reason)
            self._agent_state(begin + length, agent, "available")
            agent.free_at = agent.idle_since = begin + length
            agent.boundary = self._next_boundary(agent, at)
        else:  # logout
            self._agent_state(max(at, agent.free_at), agent, "logged_out")
            agent.on, agent.boundary = False, INF

    @staticmethod
    def _next_boundary(agent: Agent, after: float) -> float:
        index = bisect.bisect_right(agent.schedule, after)
        return agent.schedule[index] if index < len(agent.schedule) else INF

    # ---- calls
    def _new_call(self, n: int, queued_at: float, queue: str) -> None:
        rnd = self.random
        call_id = f"{int(queued_at - 30)}.{n}"
        _, priority, flow, dnid = QUEUES[queue]
        arrived = queued_at - rnd.uniform(*IVR_SECONDS)
        self._emit(arrived, "call_arrived", call_id, None, None,
                   {"caller": f"+86138{rnd.randrange(10**8):08d}", "channel": f"PJSIP/trunk-{n:08x}",
                    "flow": flow, "dnid": dnid})
        self._route(call_id, queue, priority, queued_at, True)

    def _route(self, call_id: str, queue: str, priority: int, queued_at: float, first_leg: bool) -> None:
        """Queue the caller at ``queued_at`` and decide its whole course: offers, outcome,
        the conversation and the agent's wrap-up."""
        rnd, emit = self.random, self._emit
        emit(queued_at, "queued", call_id, queue, None, {"priority": priority, "requirement": "true"})
        if rnd.random() < SHORT_ABANDON_SHARE:
            patience = rnd.uniform(0.5, 4.8)
        else:
            patience = rnd.expovariate(1.0 / PATIENCE_MEAN)
        gives_up = queued_at + patience
        leaves = queued_at + MAX_WAIT
        attempt, offer_from, skip = 0, queued_at, None
        while True:
            agent, start = self._free_agent(offer_from, skip)
            if agent is None or start >= min(gives_up, leaves):
                if gives_up <= leaves:
                    self._outcome(gives_up, "abandoned", call_id, queue, None,
                                  {"wait": patience, "stage": "waiting"})
                else:
                    reason = "max_wait:voicemail" if queue == "billing" else "fallback:max_hold"
                    self._outcome(leaves, "exited", call_id, queue, None,
                                  {"reason": reason, "wait": MAX_WAIT, "stage": "waiting"})
                return
            attempt += 1
            offer_id = f"{call_id}/{attempt}"
            self._offer(start, call_id, queue, agent, offer_id, attempt, start - queued_at, offer_from)
            ring = rnd.uniform(*RING_SECONDS)
            if gives_up < start + ring:  # the caller hung up while the agent's phone rang
                self._outcome(gives_up, "abandoned", call_id, queue, agent.agent_id,
                              {"wait": patience, "stage": "ringing"})
                self._agent_state(gives_up, agent, "available")
                agent.free_at = gives_up
                return
            failed = start + RING_TIMEOUT
            if attempt < 3 and failed <= gives_up and rnd.random() < RING_NO_ANSWER_SHARE:
                # the phone rang out: the agent is paused (max_no_answers 1) and the call is
                # offered on to someone else
                emit(failed, "ring_no_answer", call_id, queue, agent.agent_id, {"offer_id": offer_id})
                back = failed + rnd.uniform(*RNA_PAUSE_SECONDS)
                self._agent_state(failed, agent, "paused", "ring-no-answer")
                self._agent_state(back, agent, "available")
                agent.free_at = agent.idle_since = back
                offer_from, skip = failed, agent
                continue
            self._conversation(call_id, queue, agent, offer_id, queued_at, start + ring, first_leg)
            return

    def _free_agent(self, at: float, skip: Agent | None) -> tuple[Agent | None, float]:
        """The agent who can take a call soonest at or after ``at`` (longest idle on a tie),
        among agents logged in whose next pause or log-out is not due before then."""
        best, best_start, best_idle = None, INF, INF
        for agent in self.agents:
            if not agent.on or agent is skip:
                continue
            start = agent.free_at if agent.free_at > at else at  # max() costs a call, per agent per offer
            if start >= agent.boundary:
                continue
            if start < best_start or (start == best_start and agent.idle_since < best_idle):
                best, best_start, best_idle = agent, start, agent.idle_since
        return best, best_start

    def _offer(self, at: float, call_id: str, queue: str, agent: Agent, offer_id: str, attempt: int,
               wait: float, offer_from: float) -> None:
        day = int((at - START) // DAY)
        if agent.day != day:
            agent.day, agent.calls_today, agent.talk_today = day, 0, 0.0
        available = sum(1 for a in self.agents if a.on and a.free_at <= at < a.boundary)
        why = {"trigger": "call_arrived" if at == offer_from else "agent_available",
               "strategy": "longest-idle", "step": 0, "requirement": "true",
               "available_members": available, "eligible_available": available, "examined": available,
               "winner": {"agent_id": agent.agent_id, "score": 0, "idle_since": agent.idle_since,
                          "calls_today": agent.calls_today, "talk_today": agent.talk_today},
               "runner_up": None}
        self._emit(at, "offered", call_id, queue, agent.agent_id,
                   {"offer_id": offer_id, "attempt": attempt, "wait": wait, "why": why})
        self._agent_state(at, agent, "reserved")
        agent.free_at = at + RING_TIMEOUT  # at most: the caller's course below settles it

    def _conversation(self, call_id: str, queue: str, agent: Agent, offer_id: str, queued_at: float,
                      answered_at: float, first_leg: bool) -> None:
        rnd, emit, agent_id = self.random, self._emit, agent.agent_id
        self._outcome(answered_at, "answered", call_id, queue, agent_id,
                      {"offer_id": offer_id, "wait": answered_at - queued_at})
        self._agent_state(answered_at, agent, "on_call")
        # log-normal talk time with the wanted mean (sigma 0.6: many short calls, a long tail)
        talk = rnd.lognormvariate(math.log(self.talk_mean) - 0.18, 0.6)
        ended_at = answered_at + talk
        if rnd.random() < HOLD_SHARE:
            held = min(talk * 0.4, rnd.uniform(10.0, 120.0))
            hold_at = answered_at + rnd.uniform(0.2, 0.5) * talk
            emit(hold_at, "hold_started", call_id, queue, agent_id, {})
            emit(hold_at + held, "hold_ended", call_id, None, agent_id, {"seconds": round(held, 3), "how": "resumed"})
        if first_leg and rnd.random() < TRANSFER_SHARE:
            to_queue = rnd.choice([q for q in QUEUES if q != queue])
            emit(ended_at, "transferred", call_id, queue, agent_id, {"to_queue": to_queue, "to_agent": None})
            _, priority, _, _ = QUEUES[to_queue]
            # the caller reaches the hold loop again a few seconds later: a job of its own
            heapq.heappush(self._jobs, (ended_at + 6.0, next(self._sequence), "call",
                                        (call_id, to_queue, priority, ended_at + 6.0, False), None, 0.0))
        emit(ended_at, "ended", call_id, queue, agent_id, {"talk": talk})
        agent.talk_today += talk
        agent.calls_today += 1
        self._agent_state(ended_at, agent, "wrap_up")
        wrapup = rnd.uniform(0.5, 1.5) * self.wrapup_mean
        done = ended_at + wrapup
        if rnd.random() < DISPOSITION_SHARE:
            emit(ended_at + wrapup * 0.8, "disposition", call_id, None, agent_id,
                 {"disposition": rnd.choices(DISPOSITIONS, DISPOSITION_WEIGHTS)[0], "resolved": rnd.random() < 0.8})
        emit(done, "wrapup_done", call_id, None, agent_id, {})
        self._agent_state(done, agent, "available")
        agent.free_at = agent.idle_since = done

    def _outcome(self, at: float, kind: str, call_id: str, queue: str, agent_id: str | None,
                 data: dict[str, Any]) -> None:
        self.outcomes[kind] += 1
        self._emit(at, kind, call_id, queue, agent_id, data)

    def _agent_state(self, at: float, agent: Agent, state: str, reason: str | None = None) -> None:
        self._emit(at, "agent_state", None, None, agent.agent_id, {"state": state, "reason": reason})

    # ---- the ordered output
    def _emit(self, ts: float, kind: str, call_id: str | None, queue: str | None, agent_id: str | None,
              data: dict[str, Any]) -> None:
        heapq.heappush(self._events, (ts, next(self._sequence), kind, call_id, queue, agent_id, json.dumps(data)))

    def _drain(self, before: float, out: list[tuple], key_prefix: str) -> None:
        events, pop, rows = self._events, heapq.heappop, self.rows
        while events and events[0][0] < before:
            ts, _, kind, call_id, queue, agent_id, data = pop(events)
            rows += 1
            out.append((ts, kind, call_id, queue, agent_id, data, f"{key_prefix}{rows}"))
        self.rows = rows


# ---- loading -----------------------------------------------------------------------------------

class Progress:
    """Progress lines on stderr (through logging), at most every few seconds."""

    def __init__(self, what: str, total_calls: int, every: float = 3.0):
        self.what, self.total, self.every = what, total_calls, every
        self.started = self.last = time.monotonic()

    def __call__(self, calls: int, rows: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every or calls >= self.total:
            self.last = now
            log.info("%s: %d/%d calls (%.0f%%), %d rows, %.1f s", self.what, calls, self.total,
                     100.0 * calls / max(self.total, 1), rows, now - self.started)


def _create_table(engine: Engine) -> None:
    """The event log's own table, without its secondary indexes: they are built after the load,
    which is several times faster than keeping them up to date row by row."""
    event_log.create_events_table(engine)
    with engine.begin() as conn:
        for index in event_log.events_table.indexes:
            index.drop(conn)


def _create_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for index in event_log.events_table.indexes:
            index.create(conn)


def load_sqlite(url: str, chunks: Iterator[list[tuple]]) -> int:
    engine = make_engine(url)
    try:
        _create_table(engine)
        insert = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        raw = engine.raw_connection()
        try:
            raw.execute("PRAGMA synchronous=OFF")  # a crash mid-load only loses a cache file
            rows = 0
            for chunk in chunks:
                raw.executemany(insert, chunk)
                raw.commit()
                rows += len(chunk)
        finally:
            raw.close()
        log.info("sqlite: building indexes")
        _create_indexes(engine)
        return rows
    finally:
        engine.dispose()


def load_postgresql(url: str, chunks: Iterator[list[tuple]]) -> int:
    engine = make_engine(url)
    try:
        _create_table(engine)
        raw = engine.raw_connection()
        try:
            conn = raw.driver_connection  # psycopg.Connection: COPY is its own, not SQLAlchemy's
            rows = 0
            with conn.cursor() as cur:
                for chunk in chunks:
                    with cur.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                        for row in chunk:
                            copy.write_row(row)
                    conn.commit()
                    rows += len(chunk)
        finally:
            raw.close()
        log.info("postgresql: building indexes, VACUUM ANALYZE")
        _create_indexes(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE events")  # a table that has been around a while
        return rows
    finally:
        engine.dispose()


# ---- measuring ---------------------------------------------------------------------------------

class PeakRss:
    """Peak resident memory of a phase: Linux lets a process reset its high-water mark
    (/proc/self/clear_refs, "5"); elsewhere the figure is the process's peak so far.

    Before the reset, memory the previous phase freed is handed back to the system (a garbage
    collection, then glibc's malloc_trim): otherwise the allocator keeps it, resident, and a
    light phase after a heavy one would show the heavy one's peak."""

    def __init__(self) -> None:
        self.resettable = self._reset()

    @staticmethod
    def _reset() -> bool:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc: the figure may include memory kept from the previous phase
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def start(self) -> None:
        self.resettable = self._reset()

    def peak_mb(self) -> float:
        if self.resettable:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass
class BackendResult:
    backend: str
    rows: int
    load_seconds: float | None  # None: the cached file was reused
    scan_seconds: float
    scan_rss_mb: float
    report_seconds: float
    report_rss_mb: float
    report_queued: int  # the report's `queued` figure summed over its intervals
    intervals: int

    @property
    def ratio(self) -> float:
        return self.report_seconds / self.scan_seconds if self.scan_seconds > 0 else INF


def measure(backend: str, url: str, rows: int, load_seconds: float | None, interval: str) -> BackendResult:
    rss = PeakRss()
    log.info("%s: scanning %d rows through read_all_events", backend, rows)
    rss.start()
    started = time.perf_counter()
    scanned = 0
    for _ in read_all_events(url):
        scanned += 1
    scan_seconds = time.perf_counter() - started
    scan_rss = rss.peak_mb()
    if scanned != rows:
        raise RuntimeError(f"{backend}: the scan read {scanned} rows, {rows} were loaded")
    options = report_options(interval)
    log.info("%s: scan %.2f s; running kpi_report(read_all_events(url), %s)", backend, scan_seconds,
             _call_text(options))
    rss.start()
    started = time.perf_counter()
    report = kpi_report(read_all_events(url), **options)
    report_seconds = time.perf_counter() - started
    report_rss = rss.peak_mb()
    log.info("%s: report %.2f s", backend, report_seconds)
    queued = sum(bucket.total.queued for bucket in report.intervals)
    return BackendResult(backend, rows, load_seconds, scan_seconds, scan_rss, report_seconds, report_rss,
                         queued, len(report.intervals))


def report_options(interval: str) -> dict[str, Any]:
    """The keyword arguments of the timed kpi_report call. read_all_events yields rows in log
    order, so where kpi_report can be told so (``ordered``, added while it is being made
    faster) it is, as a caller reading that way should."""
    options: dict[str, Any] = {"interval": interval}
    if "ordered" in inspect.signature(kpi_report).parameters:
        options["ordered"] = True
    return options


def _call_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in options.items())


# ---- the run -----------------------------------------------------------------------------------

def cache_file(keep: Path, shape: Shape) -> Path:
    return keep / (f"kpi-events-v{GENERATOR_VERSION}-{shape.calls}c-{shape.days}d-"
                   f"{shape.agents}a-s{shape.seed}.sqlite")


def generate(shape: Shape, what: str) -> tuple[EventLogGenerator, Iterator[list[tuple]]]:
    generator = EventLogGenerator(shape)
    return generator, generator.chunks(Progress(what, shape.calls))


def prepare_sqlite(shape: Shape, workdir: Path, keep: Path | None) -> tuple[str, int, float | None]:
    """The SQLite file with the generated log: reused from ``keep`` if there, else generated
    (into a temporary name first, so an interrupted run leaves no half-filled cache)."""
    path = cache_file(keep, shape) if keep else workdir / "events.sqlite"
    if path.exists():
        engine = make_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
        finally:
            engine.dispose()
        log.info("sqlite: reusing %s (%d rows)", path, rows)
        return f"sqlite:///{path}", rows, None
    partial = path.with_name(path.name + ".partial")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    generator, chunks = generate(shape, "sqlite: generating and loading")
    started = time.perf_counter()
    rows = load_sqlite(f"sqlite:///{partial}", chunks)
    seconds = time.perf_counter() - started
    _log_outcomes(generator)
    engine = make_engine(f"sqlite:///{partial}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    engine.dispose()
    partial.rename(path)
    return f"sqlite:///{path}", rows, seconds


def _log_outcomes(generator: EventLogGenerator) -> None:
    total = sum(generator.outcomes.values()) or 1
    log.info("generated %d rows; call outcomes (transferred legs included): %s; mean handle %.0f s",
             generator.rows, ", ".join(f"{k} {v / total:.1%}" for k, v in generator.outcomes.items()),
             generator.handle)


def run_postgresql(shape: Shape, interval: str) -> BackendResult:
    from callcenter.storage.postgres_server import PostgresServer

    with PostgresServer(database="kpi_bench") as server:
        generator, chunks = generate(shape, "postgresql: generating and loading (COPY)")
        started = time.perf_counter()
        rows = load_postgresql(server.url, chunks)
        load_seconds = time.perf_counter() - started
        _log_outcomes(generator)
        return measure("postgresql", server.url, rows, load_seconds, interval)


def report(shape: Shape, results: list[BackendResult], interval: str) -> None:
    print(f"KPI report benchmark: {shape.calls} calls over {shape.days} days, {len(QUEUES)} queues, "
          f"{shape.agents} agents, seed {shape.seed}")
    print(f"report = kpi_report(read_all_events(url), {_call_text(report_options(interval))})")
    print("scan = every row through callcenter.kpi.report_cli.read_all_events, nothing done with it; "
          "RSS = this process's peak in the phase (a PostgreSQL server's own memory is not in it)")
    header = (f"{'backend':<11}{'rows':>11}{'events/call':>13}{'gen+load s':>12}{'scan s':>9}{'report s':>10}"
              f"{'report/scan':>13}{'RSS scan MB':>13}{'RSS report MB':>15}")
    print(header)
    for r in results:
        load = "cached" if r.load_seconds is None else f"{r.load_seconds:.1f}"
        print(f"{r.backend:<11}{r.rows:>11}{r.rows / shape.calls:>13.2f}{load:>12}{r.scan_seconds:>9.2f}"
              f"{r.report_seconds:>10.2f}{r.ratio:>12.2f}x{r.scan_rss_mb:>13.0f}{r.report_rss_mb:>15.0f}")
    for r in results:
        verdict = "MET" if r.ratio <= TARGET_RATIO else "MISSED"
        print(f"target report <= {TARGET_RATIO:g}x scan, {r.backend}: {r.ratio:.2f}x: {verdict}")
        print(f"{r.backend}: the report's queued figure over its {r.intervals} intervals: {r.report_queued}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kpi_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls in the generated log (default 1000000)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the generated SQLite file in DIR and reuse it on the next run")
    parser.add_argument("--days", type=int, default=30, help="days the calls are spread over (default 30)")
    parser.add_argument("--agents", type=int, default=50, help="agents on the floor (default 50)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", default="30m", help="the report's interval (default 30m)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.days < 1 or args.agents < 1:
        parser.error("--calls, --days and --agents must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shape = Shape(args.calls, args.days, args.agents, args.seed)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    workdir = Path(tempfile.mkdtemp(prefix="kpi-bench-"))
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        results = []
        if args.backend in ("sqlite", "both"):
            url, rows, load_seconds = prepare_sqlite(shape, workdir, args.keep)
            results.append(measure("sqlite", url, rows, load_seconds, args.interval))
        if args.backend in ("postgresql", "both"):
            results.append(run_postgresql(shape, args.interval))
        report(shape, results, args.interval)
        sys.stdout.flush()
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        log.removeHandler(handler)


if __name__ == "__main__":
    raise SystemExit(main())
