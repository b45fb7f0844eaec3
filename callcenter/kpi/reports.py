"""Reports read from the event database, shared by ``callcenter report`` and the JSON API so
both answer the same question with the same figures.

This is the shell around the pure modules: it reads the events (streamed in log order, a page
at a time) and turns text parameters into typed ones with clear errors; every number comes from
:mod:`callcenter.kpi.definitions`, :mod:`callcenter.kpi.forecast` and
:mod:`callcenter.events.queue_log`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from callcenter.events.log import read_events
from callcenter.kpi.definitions import INTERVALS, KpiReport, calls_and_spans, interval_end, interval_start, kpi_report
from callcenter.kpi.forecast import (
    ScheduleRow,
    history_from_calls,
    schedule_view,
    staffing_plan,
    weekly_forecast,
)

PAGE = 5000


class ReportParamError(ValueError):
    """A report parameter that cannot be used; the message names it and says what is expected."""


def stream_events(db: Engine, *, advance: Callable[[int], None] = lambda last_id: None) -> Iterator[dict[str, Any]]:
    """Every event row in log order, a page at a time (the table can be large)."""
    since = 0
    while page := read_events(db, since_id=since, limit=PAGE):
        yield from page
        since = page[-1]["id"]
        advance(since)


# ---------------------------------------------------------------------------- parameters
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportParamError(f"tz: unknown time zone {name!r} (e.g. Asia/Shanghai, UTC)") from None


def parse_moment(text: str, tz: ZoneInfo, name: str = "date") -> float:
    """``2024-03-01`` (local midnight) or ``2024-03-01T08:30`` (local unless it has an offset)."""
    try:
        moment = datetime.combine(date.fromisoformat(text), time(0)) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise ReportParamError(f"{name}: {text!r} is not a date (2024-03-01) or date-time (2024-03-01T08:30)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).timestamp()


def check_day(text: str, tz: ZoneInfo) -> str:
    """A local calendar day, ``2024-03-01`` (the day a forecast schedules)."""
    parse_moment(text, tz, "day")
    if len(text) != 10:
        raise ReportParamError(f"day: {text!r} is not a day such as 2024-03-01")
    return text


def parse_service_level(text: str) -> tuple[float, float]:
    """``80/20`` -> (0.8, 20.0): X % answered within Y s."""
    percent, sep, seconds = text.partition("/")
    try:
        target, threshold = float(percent) / 100, float(seconds)
    except ValueError:
        target = threshold = math.nan
    if not sep or not (0 < target <= 1) or not (0 <= threshold <= 3600):
        raise ReportParamError(f"sl: {text!r} is not percent/seconds such as 80/20 (1-100 %, 0-3600 s)")
    return target, threshold


def number_param(params: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    text = params.get(name)
    if text in (None, ""):
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise ReportParamError(f"{name}: {text!r} is not a number from {low:g} to {high:g}")
    return value


@dataclass(frozen=True)
class KpiQuery:
    interval: str | None = None
    tz: str = "UTC"
    start: float | None = None
    end: float | None = None
    queue: str | None = None
    agent: str | None = None
    sl_target: float = 0.8
    sl_seconds: float = 20.0
    short_abandon_seconds: float = 5.0
    fcr_days: float = 7.0

    @classmethod
    def from_params(cls, params: Mapping[str, str], defaults: KpiQuery | None = None) -> KpiQuery:
        """From text parameters (the API's query string): interval, tz, from, to, queue, agent,
        sl (80/20), short_abandon, fcr_days; missing ones come from ``defaults``."""
        base = defaults or cls()
        unknown = sorted(set(params) - {"interval", "tz", "from", "to", "queue", "agent", "sl", "short_abandon",
                                        "fcr_days"})
        if unknown:
            raise ReportParamError(f"unknown parameter(s): {', '.join(unknown)}")
        interval = params.get("interval") or base.interval
        if interval is not None and interval not in INTERVALS:
            raise ReportParamError(f"interval: {interval!r} is not one of {', '.join(INTERVALS)}")
        tz = params.get("tz") or base.tz
        local = zone(tz)
        target, threshold = (parse_service_level(params["sl"]) if params.get("sl")
                             else (base.sl_target, base.sl_seconds))
        return cls(
            interval=interval, tz=tz,
            start=parse_moment(params["from"], local, "from") if params.get("from") else base.start,
            end=parse_moment(params["to"], local, "to") if params.get("to") else base.end,
            queue=params.get("queue") or base.queue, agent=params.get("agent") or base.agent,
            sl_target=target, sl_seconds=threshold,
            short_abandon_seconds=number_param(params, "short_abandon", base.short_abandon_seconds, 0, 600),
            fcr_days=number_param(params, "fcr_days", base.fcr_days, 0, 365))


# ---------------------------------------------------------------------------- reports
def kpis(db: Engine, query: KpiQuery, *, now: float | None = None,
         advance: Callable[[int], None] = lambda last_id: None) -> KpiReport:
    return kpi_report(stream_events(db, advance=advance), ordered=True, interval=query.interval, tz=query.tz,
                      start=query.start, end=query.end, queue=query.queue, agent=query.agent,
                      sl_seconds=query.sl_seconds, short_abandon_seconds=query.short_abandon_seconds,
                      fcr_days=query.fcr_days, now=now)


@dataclass(frozen=True)
class ForecastQuery:
    tz: str = "UTC"
    interval_minutes: int = 30
    weeks: int = 8
    day: str | None = None  # the local day to schedule (default: today)
    queue: str | None = None
    sl_target: float = 0.8
    sl_seconds: float = 20.0
    max_occupancy: float | None = 0.85
    shrinkage: float = 0.3
    short_abandon_seconds: float = 5.0


def forecast(db: Engine, query: ForecastQuery, *, now: float,
             advance: Callable[[int], None] = lambda last_id: None) -> list[ScheduleRow]:
    """The day's intervals: calls and AHT forecast from the weeks before it, agents required
    (Erlang C) and agents actually staffed so far (docs/forecast.md)."""
    if query.interval_minutes not in (15, 30, 60):
        raise ReportParamError(f"interval: {query.interval_minutes} minutes is not 15, 30 or 60")
    local = zone(query.tz)
    day_start = parse_moment(query.day, local, "day") if query.day else interval_start(now, "day", local)
    day_end = interval_end(day_start, "day", local)
    calls, spans, _ = calls_and_spans(stream_events(db, advance=advance), ordered=True)
    if query.queue is not None:
        calls = [c for c in calls if c.queue == query.queue]
    slots = weekly_forecast(history_from_calls(calls, short_abandon_seconds=query.short_abandon_seconds),
                            tz=query.tz, interval_minutes=query.interval_minutes, until=day_start, weeks=query.weeks)
    plan = staffing_plan(slots, interval_minutes=query.interval_minutes, sl_target=query.sl_target,
                         sl_seconds=query.sl_seconds, max_occupancy=query.max_occupancy, shrinkage=query.shrinkage)
    return schedule_view(plan, spans, tz=query.tz, interval_minutes=query.interval_minutes,
                         start=day_start, end=day_end, until=now)
