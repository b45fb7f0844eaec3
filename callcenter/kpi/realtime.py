"""Real-time figures, kept up to date one event at a time.

``RealtimeKpis.apply(row)`` is O(1) per event (a wall-board can feed it the event stream);
``snapshot(now)`` reads the figures. ``snapshot_from_rows`` recomputes the same snapshot from
scratch through :mod:`callcenter.kpi.definitions`; the tests hold the two equal, so the wall-board
and the reports can never disagree on a definition. Pure: no I/O, no clock.

Only inbound legs are followed (callers waiting in the hold loop): a caller who accepts a callback
leaves with the outcome ``callback`` (not an abandon), and the call's later agent-first leg, a web
callback or a campaign call is not waiting and not answered here, until a transfer queues it again
as an inbound leg.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.kpi.definitions import (
    ABANDONED,
    ANSWERED,
    CALLBACK,
    DEFAULT_SHORT_ABANDON_SECONDS,
    DEFAULT_SL_SECONDS,
    ENGINE_RESET_KINDS,
    EXITED,
    INBOUND,
    LOGGED_OUT,
    OUTCOME_KINDS,
    QueueKpis,
    ServiceLevel,
    agent_states,
    event_data,
    in_log_order,
    interval_end,
    interval_start,
    kpi_report,
    mean,
    ratio,
    reconstruct_calls,
    service_level,
)


@dataclass(frozen=True)
class QueueToday:
    """Today's call figures so far: calls queued today (local day) that reached an outcome."""

    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    exited: int
    service_level: ServiceLevel
    abandon_rate: float | None
    asa: float | None


@dataclass(frozen=True)
class QueueNow:
    queue: str
    waiting: int  # queued calls without an outcome, ringing ones included (the caller still waits)
    longest_wait: float | None  # now - first queued time of the longest waiting call
    today: QueueToday


@dataclass(frozen=True)
class RealtimeSnapshot:
    at: float
    day: str  # local date of ``at`` in the snapshot's time zone
    queues: tuple[QueueNow, ...]
    agents_by_state: dict[str, tuple[str, ...]]  # state -> agent ids; every agent ever seen


@dataclass
class _Tally:
    """Outcome counts of one queue on one day."""

    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    abandoned_within: int = 0
    short_abandoned: int = 0
    exited: int = 0
    answered_waits: list[float] = field(default_factory=list)


class RealtimeKpis:
    def __init__(self, *, tz: str = "UTC", sl_seconds: float = DEFAULT_SL_SECONDS,
                 short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS,
                 queue_sl_seconds: Callable[[str], float | None] = lambda queue: None) -> None:
        self.tz = ZoneInfo(tz)
        self.sl_seconds = sl_seconds
        # a queue's own service-level threshold (routing.yaml), read when a call resolves, so a
        # reloaded routing file counts from then on; None: the global sl_seconds
        self.queue_sl_seconds = queue_sl_seconds
        self.short_abandon_seconds = short_abandon_seconds
        self._first_queued: dict[str, tuple[str, float]] = {}  # unresolved call -> (queue, first queued)
        self._waiting: set[str] = set()  # the subset the running engine knows
        self._queues: set[str] = set()
        self._agents: dict[str, str] = {}
        self._tallies: dict[tuple[float, str], _Tally] = {}  # (local day start, queue) -> tally
        self._resolved: set[str] = set()  # a call has one fate: later outcomes are ignored
        self._not_inbound: set[str] = set()  # callback and campaign calls: their legs are not followed
        self._transferring: set[str] = set()  # the next `queued` is a new, inbound leg

    def apply(self, row: Mapping[str, Any]) -> None:
        kind, call_id = row["kind"], row.get("call_id")
        if kind == "queued" and call_id and row.get("queue"):
            self._queued(call_id, row)
        elif kind == "transferred" and (call_id in self._resolved or call_id in self._not_inbound):
            self._transferring.add(call_id)  # its next `queued` is a new leg, in the target queue
        elif kind in OUTCOME_KINDS and call_id in self._first_queued:
            self._resolve(call_id, kind, float(event_data(row).get("wait", 0.0)))
        elif kind == "callback_accepted" and call_id:
            if call_id in self._first_queued:
                self._resolve(call_id, CALLBACK, 0.0)  # neither answered nor abandoned
            else:
                self._not_inbound.add(call_id)
        elif kind in ("callback_requested", "campaign_dialed") and call_id:
            self._not_inbound.add(call_id)
        elif kind == "agent_state" and row.get("agent_id"):
            self._agents[row["agent_id"]] = event_data(row).get("state") or LOGGED_OUT
        elif kind in ENGINE_RESET_KINDS:
            # The engine forgot everyone. Callers re-announce themselves (keeping their first
            # queued time, still in _first_queued); agents log in again.
            self._waiting.clear()
            self._agents = dict.fromkeys(self._agents, LOGGED_OUT)

    def _queued(self, call_id: str, row: Mapping[str, Any]) -> None:
        data = event_data(row)
        if call_id in self._transferring:
            self._transferring.discard(call_id)
            self._resolved.discard(call_id)
            self._not_inbound.discard(call_id)
        elif call_id in self._resolved or call_id in self._not_inbound:
            return
        elif call_id not in self._first_queued and (data.get("callback") or data.get("dial_out")
                                                    or data.get("campaign")):
            # a callback or campaign call's own leg (an inbound caller re-announced keeps its leg)
            self._not_inbound.add(call_id)
            return
        self._queues.add(row["queue"])
        self._first_queued.setdefault(call_id, (row["queue"], float(row["ts"])))
        self._waiting.add(call_id)

    def _resolve(self, call_id: str, outcome: str, wait: float) -> None:
        queue, queued_at = self._first_queued.pop(call_id)
        self._waiting.discard(call_id)
        self._resolved.add(call_id)
        if outcome == CALLBACK:
            return  # in no figure of today's: not offered, not answered, not abandoned
        day = interval_start(queued_at, "day", self.tz)
        tally = self._tallies.setdefault((day, queue), _Tally())
        within = wait <= self._threshold(queue)
        if outcome == ANSWERED:
            tally.answered += 1
            tally.answered_within += within
            tally.answered_waits.append(wait)
        elif outcome == ABANDONED and wait < self.short_abandon_seconds:
            tally.short_abandoned += 1
        elif outcome == ABANDONED:
            tally.abandoned += 1
            tally.abandoned_within += within
        elif outcome == EXITED:
            tally.exited += 1

    def snapshot(self, now: float) -> RealtimeSnapshot:
        day = interval_start(now, "day", self.tz)
        queues = []
        for queue in sorted(self._queues):
            waits = [now - at for call_id, (q, at) in self._first_queued.items()
                     if q == queue and call_id in self._waiting]
            queues.append(QueueNow(queue, len(waits), max(waits, default=None),
                                   self._today(self._tallies.get((day, queue), _Tally()), queue)))
        return RealtimeSnapshot(now, _day_label(day, self.tz), tuple(queues), _by_state(self._agents))

    def _threshold(self, queue: str) -> float:
        own = self.queue_sl_seconds(queue)
        return self.sl_seconds if own is None else own

    def _today(self, t: _Tally, queue: str) -> QueueToday:
        offered = t.answered + t.abandoned + t.exited
        return QueueToday(
            offered=offered, answered=t.answered, abandoned=t.abandoned, short_abandoned=t.short_abandoned,
            exited=t.exited,
            service_level=service_level(self._threshold(queue), t.answered_within, t.abandoned_within, offered, t.answered),
            abandon_rate=ratio(t.abandoned, offered),
            asa=mean(t.answered_waits),
        )


def snapshot_from_rows(rows: Iterable[Mapping[str, Any]], now: float, *, tz: str = "UTC",
                       sl_seconds: float = DEFAULT_SL_SECONDS,
                       short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS) -> RealtimeSnapshot:
    """The same snapshot, recomputed from every row with the report definitions."""
    rows = in_log_order(rows)
    zone = ZoneInfo(tz)
    calls = [c for c in reconstruct_calls(rows) if c.direction == INBOUND]
    day = interval_start(now, "day", zone)
    report = kpi_report(rows, interval="day", tz=tz, start=day, end=interval_end(day, "day", zone),
                        sl_seconds=sl_seconds, short_abandon_seconds=short_abandon_seconds, now=now)
    today = {q.queue: q for bucket in report.intervals for q in bucket.queues}
    queues = []
    for queue in sorted({c.queue for c in calls}):
        waits = [now - c.queued_at for c in calls if c.queue == queue and c.live]
        queues.append(QueueNow(queue, len(waits), max(waits, default=None),
                               _today_from(today.get(queue), sl_seconds)))
    return RealtimeSnapshot(now, _day_label(day, zone), tuple(queues), _by_state(agent_states(rows)))


def _today_from(k: QueueKpis | None, sl_seconds: float) -> QueueToday:
    if k is None:  # no call queued today in this queue
        return QueueToday(0, 0, 0, 0, 0, service_level(sl_seconds, 0, 0, 0, 0), None, None)
    return QueueToday(k.offered, k.answered, k.abandoned, k.short_abandoned, k.exited, k.service_level,
                      k.abandon_rate, k.asa)


def _by_state(agents: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    states: dict[str, list[str]] = {}
    for agent_id, state in agents.items():
        states.setdefault(state, []).append(agent_id)
    return {s: tuple(sorted(ids, key=lambda a: (len(a), a))) for s, ids in sorted(states.items())}


def _day_label(day_start: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(day_start, tz).date().isoformat()
