"""KPI definitions: what each call-center figure means, computed from event rows.

Pure: the functions take the rows ``callcenter.events.log.read_events`` returns (dicts with
``id``, ``ts``, ``kind``, ``call_id``, ``queue``, ``agent_id``, ``data``) and return dataclasses.
No I/O, no clock (the end of observation is a parameter), no settings. ``docs/kpi.md`` states
every definition in words; the two must say the same thing.

Two kinds of figures, on purpose:
- *call figures* (offered, answered, SL, ASA, AHT, ...) belong to the interval in which the
  call was first queued, whenever it ended;
- *time figures* (logged-in, paused, handling time, occupancy) are agent state time clipped to
  the interval's wall-clock bounds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_SL_SECONDS = 20.0
DEFAULT_SHORT_ABANDON_SECONDS = 5.0

# Interval name -> length in minutes; "day" is a local calendar day (23-25 h across DST).
INTERVALS: dict[str, int | None] = {"15m": 15, "30m": 30, "60m": 60, "1h": 60, "day": None}

ANSWERED, ABANDONED, EXITED = "answered", "abandoned", "exited"
OUTCOME_KINDS = frozenset({ANSWERED, ABANDONED, EXITED})
OFFER_FAILURE_KINDS = frozenset({"ring_no_answer", "busy", "unreachable"})
# The engine forgets every agent and call when it stops or starts: callers announce themselves
# again (keeping their place), agents log in again.
ENGINE_RESET_KINDS = frozenset({"engine_started", "engine_stopped"})
LOGGED_OUT, PAUSED, ON_CALL, WRAP_UP = "logged_out", "paused", "on_call", "wrap_up"
HANDLING_STATES = frozenset({ON_CALL, WRAP_UP})


class KpiError(ValueError):
    """A report was asked for with impossible parameters (unknown interval, negative threshold)."""


# ---------------------------------------------------------------------------- rows
def event_data(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's ``data`` as a dict (a JSON string when read by a driver without JSON support)."""
    data = row.get("data")
    if isinstance(data, str):
        data = json.loads(data or "{}")
    return dict(data or {})


def in_log_order(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows in insertion order (``id``); rows without an id keep the order they were given in."""
    return sorted(rows, key=lambda r: r.get("id") or 0)


# ---------------------------------------------------------------------------- calls
@dataclass(frozen=True)
class CallRecord:
    """One queued call as the event log tells it."""

    call_id: str
    queue: str
    queued_at: float  # ts of its first `queued` event: decides its interval
    priority: int = 0
    outcome: str | None = None  # answered / abandoned / exited; None = unresolved
    resolved_at: float | None = None
    wait: float | None = None  # the router's `wait`: seconds from enqueue to the outcome
    stage: str | None = None  # abandoned/exited: waiting or ringing
    exit_reason: str | None = None
    agent_id: str | None = None  # who answered
    talk: float | None = None  # from `ended`; None while connected or if the end was never seen
    acw: float | None = None  # wrap-up after the call; None until the agent's next state
    live: bool = False  # unresolved and known to the running engine (waiting or ringing)


def reconstruct_calls(rows: Iterable[Mapping[str, Any]]) -> list[CallRecord]:
    """Every queued call, in order of first queuing.

    A call queued twice (re-announced to a restarted engine) keeps its first ``queued`` time;
    the first outcome wins and later ones are ignored (a call has one fate).
    """
    calls: dict[str, dict[str, Any]] = {}
    wrapping: dict[str, dict[str, Any]] = {}  # agent -> call whose ACW is running or due
    for row in in_log_order(rows):
        kind, ts, call_id, agent_id = row["kind"], float(row["ts"]), row.get("call_id"), row.get("agent_id")
        data = event_data(row)
        call = calls.get(call_id) if call_id is not None else None
        if kind == "queued" and call_id is not None and row.get("queue"):
            if call is None:
                calls[call_id] = {"call_id": call_id, "queue": row["queue"], "queued_at": ts,
                                  "priority": int(data.get("priority") or 0), "live": True}
            elif call.get("outcome") is None:
                call["live"] = True  # re-adopted after a restart
        elif kind in OUTCOME_KINDS and call is not None and call.get("outcome") is None:
            call.update(outcome=kind, resolved_at=ts, wait=float(data.get("wait", 0.0)), live=False,
                        stage=data.get("stage"), exit_reason=data.get("reason"))
            if kind == ANSWERED:
                call["agent_id"] = agent_id
        elif kind == "ended" and call is not None and call.get("outcome") == ANSWERED and "talk" not in call:
            call["talk"] = float(data.get("talk", 0.0))
            if agent_id is not None:
                wrapping[agent_id] = call
        elif kind == "agent_state" and agent_id in wrapping:
            _track_acw(wrapping, agent_id, data.get("state"), ts)
        elif kind in ENGINE_RESET_KINDS:
            wrapping.clear()  # a wrap-up cut by a restart has no measurable end
            for open_call in calls.values():
                open_call["live"] = False
    # "acw_from" is bookkeeping of a wrap-up still running, not part of the record
    return [CallRecord(**{k: v for k, v in c.items() if k != "acw_from"}) for c in calls.values()]


def _track_acw(wrapping: dict[str, dict[str, Any]], agent_id: str, state: str | None, ts: float) -> None:
    """After `ended` the agent's next state is wrap_up (ACW runs until the state after it) or,
    with no wrap-up configured, directly something else (ACW 0)."""
    call = wrapping[agent_id]
    if state == WRAP_UP and "acw_from" not in call:
        call["acw_from"] = ts
        return
    call["acw"] = ts - call.pop("acw_from", ts)
    del wrapping[agent_id]


# ---------------------------------------------------------------------------- agents
@dataclass(frozen=True)
class StateSpan:
    agent_id: str
    state: str
    start: float
    end: float | None  # None: still in this state at the end of the data


def agent_spans(rows: Iterable[Mapping[str, Any]]) -> list[StateSpan]:
    """Every agent's state over time (logged-out time is not a span)."""
    spans: list[StateSpan] = []
    current: dict[str, tuple[str, float]] = {}
    for row in in_log_order(rows):
        kind, ts = row["kind"], float(row["ts"])
        if kind == "agent_state" and row.get("agent_id"):
            agent_id = row["agent_id"]
            if agent_id in current:
                state, since = current.pop(agent_id)
                spans.append(StateSpan(agent_id, state, since, ts))
            state = event_data(row).get("state")
            if state and state != LOGGED_OUT:
                current[agent_id] = (state, ts)
        elif kind in ENGINE_RESET_KINDS:
            for agent_id, (state, since) in current.items():
                spans.append(StateSpan(agent_id, state, since, ts))
            current.clear()
    spans.extend(StateSpan(a, state, since, None) for a, (state, since) in current.items())
    return spans


def agent_states(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Every agent ever seen and its state after the last row (logged_out after an engine reset)."""
    states: dict[str, str] = {}
    for row in in_log_order(rows):
        if row["kind"] == "agent_state" and row.get("agent_id"):
            states[row["agent_id"]] = event_data(row).get("state") or LOGGED_OUT
        elif row["kind"] in ENGINE_RESET_KINDS:
            states = dict.fromkeys(states, LOGGED_OUT)
    return states


def _overlap(span: StateSpan, start: float, end: float, until: float) -> float:
    span_end = until if span.end is None else min(span.end, until)
    return max(0.0, min(span_end, end) - max(span.start, start))


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ServiceLevel:
    """Service level "X % within Y s"; a call waiting exactly Y s is within."""

    threshold: float  # Y, seconds
    answered_within: int
    abandoned_within: int  # abandons (short ones excluded) with wait <= Y
    of_offered: float | None  # (a) answered_within / offered  [the default]
    of_answered: float | None  # (b) answered_within / answered
    abandons_met: float | None  # (c) (answered_within + abandoned_within) / offered


@dataclass(frozen=True)
class QueueKpis:
    queue: str  # "*" for all queues together
    queued: int  # calls queued (raw, every one)
    unresolved: int  # queued, no outcome yet: in no other figure
    offered: int  # answered + abandoned + exited (short abandons excluded)
    offered_raw: int  # offered + short_abandoned
    answered: int
    abandoned: int  # wait >= short-abandon threshold
    abandoned_raw: int  # abandoned + short_abandoned
    short_abandoned: int  # wait < short-abandon threshold
    exited: int  # left for the fallback route: offered, never answered
    service_level: ServiceLevel
    answer_rate: float | None  # answered / offered
    abandon_rate: float | None  # abandoned / offered
    asa: float | None  # mean wait of answered calls
    longest_wait: float | None  # max wait of answered and abandoned (not short) calls
    avg_talk: float | None  # mean talk of answered calls that ended
    avg_acw: float | None  # mean after-call work of calls whose wrap-up is over
    aht: float | None  # mean (talk + ACW) of calls whose handling is over
    handled: int  # calls in aht


@dataclass(frozen=True)
class AgentKpis:
    agent_id: str
    answered: int  # calls this agent answered (by the call's queued interval)
    avg_talk: float | None
    avg_acw: float | None
    aht: float | None
    handled: int  # calls in aht
    offers_not_taken: int  # ring_no_answer / busy / unreachable events in the interval
    logged_in_time: float  # seconds in any state but logged_out, within the interval
    paused_time: float
    handling_time: float  # on_call + wrap_up
    occupancy: float | None  # handling_time / (logged_in_time - paused_time)


@dataclass(frozen=True)
class IntervalKpis:
    label: str  # local start, ISO 8601 with offset (or "all")
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive
    total: QueueKpis
    queues: tuple[QueueKpis, ...]
    agents: tuple[AgentKpis, ...]


@dataclass(frozen=True)
class KpiReport:
    interval: str | None
    tz: str
    sl_seconds: float
    short_abandon_seconds: float
    observed_until: float | None
    intervals: tuple[IntervalKpis, ...]


# ---------------------------------------------------------------------------- formulas
def ratio(numerator: float, denominator: float) -> float | None:
    """None when there is nothing to divide by: no data is neither 0 % nor 100 %."""
    return numerator / denominator if denominator else None


def mean(values: Sequence[float]) -> float | None:
    # fsum is exactly rounded whatever the order, so incremental and batch results agree.
    return math.fsum(values) / len(values) if values else None


def service_level(threshold: float, answered_within: int, abandoned_within: int,
                  offered: int, answered: int) -> ServiceLevel:
    return ServiceLevel(
        threshold=threshold,
        answered_within=answered_within,
        abandoned_within=abandoned_within,
        of_offered=ratio(answered_within, offered),
        of_answered=ratio(answered_within, answered),
        abandons_met=ratio(answered_within + abandoned_within, offered),
    )


def is_short_abandon(call: CallRecord, short_abandon_seconds: float) -> bool:
    return call.outcome == ABANDONED and (call.wait or 0.0) < short_abandon_seconds


def queue_kpis(queue: str, calls: Sequence[CallRecord], *, sl_seconds: float = DEFAULT_SL_SECONDS,
               short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS) -> QueueKpis:
    """The call figures over ``calls`` (already chosen by queue and interval)."""
    answered = [c for c in calls if c.outcome == ANSWERED]
    shorts = [c for c in calls if is_short_abandon(c, short_abandon_seconds)]
    abandoned = [c for c in calls if c.outcome == ABANDONED and not is_short_abandon(c, short_abandon_seconds)]
    exited = [c for c in calls if c.outcome == EXITED]
    offered = len(answered) + len(abandoned) + len(exited)
    handled = [c for c in answered if c.talk is not None and c.acw is not None]
    waits = [c.wait for c in answered + abandoned if c.wait is not None]
    return QueueKpis(
        queue=queue,
        queued=len(calls),
        unresolved=sum(1 for c in calls if c.outcome is None),
        offered=offered,
        offered_raw=offered + len(shorts),
        answered=len(answered),
        abandoned=len(abandoned),
        abandoned_raw=len(abandoned) + len(shorts),
        short_abandoned=len(shorts),
        exited=len(exited),
        service_level=service_level(
            sl_seconds,
            answered_within=sum(1 for c in answered if (c.wait or 0.0) <= sl_seconds),
            abandoned_within=sum(1 for c in abandoned if (c.wait or 0.0) <= sl_seconds),
            offered=offered, answered=len(answered)),
        answer_rate=ratio(len(answered), offered),
        abandon_rate=ratio(len(abandoned), offered),
        asa=mean([c.wait or 0.0 for c in answered]),
        longest_wait=max(waits, default=None),
        avg_talk=mean([c.talk for c in answered if c.talk is not None]),
        avg_acw=mean([c.acw for c in answered if c.acw is not None]),
        aht=mean([c.talk + c.acw for c in handled]),  # type: ignore[operator]
        handled=len(handled),
    )


def agent_kpis(agent_id: str, calls: Sequence[CallRecord], spans: Sequence[StateSpan],
               offers_not_taken: int, start: float, end: float, until: float) -> AgentKpis:
    """``calls``: the calls this agent answered in the interval; ``spans``: this agent's states."""
    def time_in(states: Iterable[str] | None) -> float:
        return math.fsum(_overlap(s, start, end, until) for s in spans if states is None or s.state in states)

    logged_in, paused, handling = time_in(None), time_in({PAUSED}), time_in(HANDLING_STATES)
    handled = [c for c in calls if c.talk is not None and c.acw is not None]
    return AgentKpis(
        agent_id=agent_id,
        answered=len(calls),
        avg_talk=mean([c.talk for c in calls if c.talk is not None]),
        avg_acw=mean([c.acw for c in calls if c.acw is not None]),
        aht=mean([c.talk + c.acw for c in handled]),  # type: ignore[operator]
        handled=len(handled),
        offers_not_taken=offers_not_taken,
        logged_in_time=logged_in,
        paused_time=paused,
        handling_time=handling,
        occupancy=ratio(handling, logged_in - paused),
    )


# ---------------------------------------------------------------------------- intervals
def interval_start(ts: float, interval: str, tz: ZoneInfo) -> float:
    """Epoch start of the ``interval`` (local wall clock in ``tz``) that contains ``ts``."""
    minutes = _interval_minutes(interval)
    local = datetime.fromtimestamp(ts, tz)
    if minutes is None:
        floor = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        of_day = local.hour * 60 + local.minute
        floor_minute = of_day - of_day % minutes
        floor = local.replace(hour=floor_minute // 60, minute=floor_minute % 60, second=0, microsecond=0)
    return floor.timestamp()


def interval_end(start: float, interval: str, tz: ZoneInfo) -> float:
    """Epoch end (exclusive) of the interval starting at ``start``."""
    minutes = _interval_minutes(interval)
    if minutes is None:
        next_day = datetime.fromtimestamp(start, tz).date() + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=tz).timestamp()
    following = interval_start(start + minutes * 60, interval, tz)
    # Guard against zones whose offset is not a multiple of the interval (30-min DST shifts).
    return following if following > start else start + minutes * 60


def _interval_minutes(interval: str) -> int | None:
    if interval not in INTERVALS:
        raise KpiError(f"unknown interval {interval!r} (one of {', '.join(INTERVALS)})")
    return INTERVALS[interval]


def label(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


def _buckets(interval: str | None, tz: ZoneInfo, start: float, stop: float,
             stop_inclusive: bool) -> list[tuple[str, float, float]]:
    if interval is None:
        return [("all", start, stop)]
    buckets = []
    bucket = interval_start(start, interval, tz)
    while bucket < stop or (stop_inclusive and bucket <= stop):
        end = interval_end(bucket, interval, tz)
        buckets.append((label(bucket, tz), bucket, end))
        bucket = end
    return buckets


# ---------------------------------------------------------------------------- report
def kpi_report(
    rows: Iterable[Mapping[str, Any]],
    *,
    interval: str | None = None,
    tz: str = "UTC",
    start: float | None = None,
    end: float | None = None,
    queue: str | None = None,
    agent: str | None = None,
    sl_seconds: float = DEFAULT_SL_SECONDS,
    short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS,
    now: float | None = None,
) -> KpiReport:
    """Call figures per queue (and all queues) and time figures per agent, per interval.

    ``start``/``end`` (epoch, end exclusive) bound the calls by their first queued time; without
    them the report spans the data. ``now`` is the end of observation: agent states still open
    count up to it (default: the last row's ts). ``queue`` limits the call figures to one
    queue; ``agent`` limits the agent rows to one agent (queue figures are not per agent)."""
    if sl_seconds < 0 or short_abandon_seconds < 0:
        raise KpiError("the service-level and short-abandon thresholds must be zero or more")
    zone = ZoneInfo(tz)
    rows = in_log_order(rows)
    calls = [c for c in reconstruct_calls(rows) if queue is None or c.queue == queue]
    spans = [s for s in agent_spans(rows) if agent is None or s.agent_id == agent]
    until = now if now is not None else max((float(r["ts"]) for r in rows), default=None)
    if until is None:
        return KpiReport(interval, tz, sl_seconds, short_abandon_seconds, None, ())
    first = min([c.queued_at for c in calls] + [s.start for s in spans], default=until)
    lo = start if start is not None else first
    hi = end if end is not None else max(until, lo)
    # Without an explicit end the data's last moment belongs to the report (it is not an
    # exclusive bound anyone chose).
    buckets = _buckets(interval, zone, lo, hi, stop_inclusive=end is None)
    failures = [r for r in rows if r["kind"] in OFFER_FAILURE_KINDS and (agent is None or r.get("agent_id") == agent)]
    thresholds = {"sl_seconds": sl_seconds, "short_abandon_seconds": short_abandon_seconds}
    chosen = [c for c in calls if lo <= c.queued_at and (c.queued_at < end if end is not None else c.queued_at <= hi)]
    whole_data = interval is None and end is None
    out = []
    for name, b_start, b_end in buckets:
        in_bucket = [c for c in chosen if interval is None or b_start <= c.queued_at < b_end]
        # offer failures are agent events: they count where they happened
        missed = [r for r in failures
                  if b_start <= float(r["ts"]) < b_end or (whole_data and float(r["ts"]) == b_end)]
        queue_names = [queue] if queue is not None else sorted({c.queue for c in in_bucket})
        agent_ids = _agents_in(in_bucket, spans, missed, b_start, b_end, until, agent)
        out.append(IntervalKpis(
            label=name, start=b_start, end=b_end,
            total=queue_kpis(queue or "*", in_bucket, **thresholds),
            queues=tuple(queue_kpis(q, [c for c in in_bucket if c.queue == q], **thresholds) for q in queue_names),
            agents=tuple(
                agent_kpis(a, [c for c in in_bucket if c.outcome == ANSWERED and c.agent_id == a],
                           [s for s in spans if s.agent_id == a],
                           sum(1 for r in missed if r.get("agent_id") == a),
                           b_start, b_end, until)
                for a in agent_ids),
        ))
    return KpiReport(interval, tz, sl_seconds, short_abandon_seconds, until, tuple(out))


def _agents_in(calls: Sequence[CallRecord], spans: Sequence[StateSpan], failures: Sequence[Mapping[str, Any]],
               start: float, end: float, until: float, only: str | None) -> list[str]:
    """Agents with anything to show in the interval: logged-in time, answered calls or missed
    offers (``failures`` are already the interval's)."""
    ids = {s.agent_id for s in spans if _overlap(s, start, end, until) > 0}
    ids |= {c.agent_id for c in calls if c.outcome == ANSWERED and c.agent_id}
    ids |= {r["agent_id"] for r in failures if r.get("agent_id")}
    if only is not None:
        ids &= {only}
    return sorted(ids, key=_agent_sort_key)


def _agent_sort_key(agent_id: str) -> tuple[int, int, str]:
    # Agent ids are extensions: "999" before "1001".
    return (0, int(agent_id), agent_id) if agent_id.isdigit() else (1, 0, agent_id)
