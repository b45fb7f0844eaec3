"""Weekly forecast and schedule view: from call history to agents required per interval,
shown against the agents actually logged in.

This module owns four steps, each a pure function (no I/O, no clock: the end of observation
is always a parameter):

1. ``weekly_forecast``: calls and AHT for every interval of the week (weekday, local start
   minute), from the last N whole weeks of history; calls are the median over those weeks,
   AHT a volume-weighted mean with a documented fallback.
2. ``staffing_plan``: agents required on the phones and scheduled (after shrinkage) per
   slot of the week, by :func:`callcenter.kpi.staffing.agents_needed` (Erlang C).
3. ``staffed_agents``: the average number of agents available to take calls over a time
   range, from the agent state spans of :mod:`callcenter.kpi.definitions`.
4. ``schedule_view``: concrete local intervals (the KPI report's own bounds) with their
   forecast, requirement, staffed agents and the gap.

Intervals are local wall-clock slots in an IANA zone, as in the KPI report, so a
daylight-saving change moves no call to another slot. ``docs/forecast.md`` states the method
exactly; the two must say the same thing.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callcenter.kpi.definitions import (
    ABANDONED,
    ANSWERED,
    DEFAULT_SHORT_ABANDON_SECONDS,
    EXITED,
    LOGGED_OUT,
    PAUSED,
    CallRecord,
    StateSpan,
    interval_end,
    interval_start,
    is_short_abandon,
    label,
)
from callcenter.kpi.staffing import StaffingError, Targets, agents_needed, traffic_intensity

INTERVAL_MINUTES = (15, 30, 60)
DEFAULT_WEEKS = 8
DEFAULT_MIN_HANDLED = 10
MINUTES_PER_DAY = 24 * 60
DAYS_PER_WEEK = 7

# Where a slot's AHT came from (ForecastSlot.aht_source), most specific first.
AHT_SLOT = "slot"                # this weekday and time of day
AHT_SLOT_OF_DAY = "slot_of_day"  # this time of day, every weekday pooled
AHT_OVERALL = "overall"          # every handled call in the window
AHT_NONE = "none"                # no handled call at all: no AHT

NO_HISTORY = "no history for this slot"
NO_AHT = "no AHT: no handled call in the history"


class ForecastError(ValueError):
    """A forecast, plan or view was asked for with impossible parameters."""


# ---------------------------------------------------------------------------- data
@dataclass(frozen=True)
class HistoryCall:
    """One past call: when it was queued, and its handle time (talk + hold + after-call work,
    seconds) if it was handled; None when it was not (abandoned, exited) or the handling is
    not fully known."""

    queued_at: float  # epoch seconds
    handle_time: float | None = None

    def __post_init__(self) -> None:
        if not _is_finite_number(self.queued_at):
            raise ForecastError(f"queued_at must be a finite number, got {self.queued_at!r}")
        if self.handle_time is not None and not (_is_finite_number(self.handle_time)
                                                 and self.handle_time >= 0):
            raise ForecastError(f"handle_time must be a finite number >= 0 or None, "
                                f"got {self.handle_time!r}")


@dataclass(frozen=True)
class ForecastSlot:
    """The forecast for one interval of the week.

    ``calls`` is None when no week of the history covers the slot (no data is not 0 calls).
    ``weeks`` is how many weekly observations the median was taken over; ``aht_handled`` how
    many handled calls the AHT is the mean of (at the level ``aht_source`` names).
    """

    weekday: int  # 0 = Monday ... 6 = Sunday
    minute: int  # local start, minutes after midnight (a multiple of interval_minutes)
    calls: float | None
    aht: float | None
    aht_source: str  # AHT_SLOT, AHT_SLOT_OF_DAY, AHT_OVERALL or AHT_NONE
    weeks: int
    interval_minutes: int
    aht_handled: int


@dataclass(frozen=True)
class PlanSlot:
    """Agents required for one interval of the week.

    ``required_on_phones`` is what Erlang C needs answering calls; ``required_scheduled`` adds
    shrinkage. Both are None when the requirement could not be computed; ``error`` says why.
    """

    weekday: int
    minute: int
    interval_minutes: int
    calls: float | None
    aht: float | None
    aht_source: str
    traffic: float | None  # Erlangs
    required_on_phones: int | None
    required_scheduled: int | None
    binding: tuple[str, ...]  # the staffing constraint(s) that set required_on_phones
    error: str | None = None


@dataclass(frozen=True)
class ScheduleRow:
    """One concrete local interval: forecast and requirement of its slot of the week against
    the agents actually staffed. ``staffed`` is None for an interval not yet begun at
    ``until``; ``gap`` = staffed - required_on_phones (negative: short of agents)."""

    label: str  # local start, ISO 8601 with offset, as in the KPI report
    start: float  # epoch, inclusive
    end: float  # epoch, exclusive
    weekday: int
    minute: int
    forecast_calls: float | None
    forecast_aht: float | None
    required_on_phones: int | None
    required_scheduled: int | None
    staffed: float | None
    gap: float | None
    error: str | None = None  # the plan's reason for no requirement


# ---------------------------------------------------------------------------- helpers
def _is_finite_number(value: object) -> bool:
    # bool is an int subclass: True as a timestamp is a caller bug.
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_interval_minutes(interval_minutes: int) -> str:
    """The KPI report's name for the interval ("30m"), after checking it is one we forecast."""
    if type(interval_minutes) is not int or interval_minutes not in INTERVAL_MINUTES:  # not True, not 30.0
        raise ForecastError(f"interval_minutes must be one of {INTERVAL_MINUTES}, "
                            f"got {interval_minutes!r}")
    return f"{interval_minutes}m"


def _check_time(name: str, value: float) -> float:
    if not _is_finite_number(value):
        raise ForecastError(f"{name} must be a finite number (epoch seconds), got {value!r}")
    return float(value)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ValueError, LookupError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ForecastError(f"unknown time zone {tz!r}") from exc


def _local_midnight(day: date, zone: ZoneInfo) -> float:
    # Same construction as the KPI report's day interval (definitions.interval_end).
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


def _local_slot(ts: float, zone: ZoneInfo, interval_minutes: int) -> tuple[date, int]:
    """Local date and slot start minute of ``ts``: the same floor as definitions.interval_start."""
    local = datetime.fromtimestamp(ts, zone)
    of_day = local.hour * 60 + local.minute
    return local.date(), of_day - of_day % interval_minutes


def week_slots(interval_minutes: int) -> list[tuple[int, int]]:
    """Every (weekday, start minute) of the week, Monday 00:00 first."""
    _check_interval_minutes(interval_minutes)
    return [(weekday, minute) for weekday in range(DAYS_PER_WEEK)
            for minute in range(0, MINUTES_PER_DAY, interval_minutes)]


def _mean(values: Sequence[float]) -> float:
    # fsum is exactly rounded whatever the order (as definitions.mean).
    return math.fsum(values) / len(values)


# ---------------------------------------------------------------------------- history
def history_from_calls(calls: Iterable[CallRecord], *,
                       short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS) -> list[HistoryCall]:
    """The KPI report's *offered* calls as history: answered, abandoned (short abandons left
    out: no staffing could have answered them) and exited; unresolved calls are left out.
    Handle time is the report's AHT term, talk + hold + ACW, when all are known."""
    history = []
    for call in calls:
        if call.outcome not in (ANSWERED, ABANDONED, EXITED) or is_short_abandon(call, short_abandon_seconds):
            continue
        history.append(HistoryCall(call.queued_at, call.handle_time if call.outcome == ANSWERED else None))
    return history


# ---------------------------------------------------------------------------- forecast
def weekly_forecast(
    history: Iterable[HistoryCall],
    *,
    tz: str,
    interval_minutes: int,
    until: float,
    weeks: int = DEFAULT_WEEKS,
    min_handled: int = DEFAULT_MIN_HANDLED,
    observed_from: float | None = None,
) -> list[ForecastSlot]:
    """Calls and AHT for every interval of the week, Monday 00:00 first.

    Window: the ``weeks`` whole weeks (7 local days each) ending at the local midnight that
    starts the day of ``until``; that day is partial, so it is left out. Calls are counted
    in the local wall-clock slot they were queued in.

    calls = median over the window's weeks of the slot's count; a week in which the slot
    occurred before the history began is not an observation (not a zero). The history
    begins at the slot of ``observed_from``, by default of its first call.

    AHT = mean handle time of the window's handled calls in the slot; with fewer than
    ``min_handled`` of them, of the same time of day on every weekday; with fewer still,
    of every handled call in the window; None if there is none.
    """
    _check_interval_minutes(interval_minutes)
    until = _check_time("until", until)
    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise ForecastError(f"weeks must be a whole number >= 1, got {weeks!r}")
    if isinstance(min_handled, bool) or not isinstance(min_handled, int) or min_handled < 1:
        raise ForecastError(f"min_handled must be a whole number >= 1, got {min_handled!r}")
    if observed_from is not None:
        observed_from = _check_time("observed_from", observed_from)
    zone = _zone(tz)

    end_day = datetime.fromtimestamp(until, zone).date()  # the window ends at its midnight
    first_day = end_day - timedelta(days=DAYS_PER_WEEK * weeks)
    window_start, window_end = _local_midnight(first_day, zone), _local_midnight(end_day, zone)

    first_queued: float | None = None
    in_window: list[HistoryCall] = []
    for call in history:
        if first_queued is None or call.queued_at < first_queued:
            first_queued = call.queued_at
        if window_start <= call.queued_at < window_end:
            in_window.append(call)
    history_start = observed_from if observed_from is not None else first_queued

    def week_of(day: date) -> int:
        """0 for the week just before end_day, 1 for the one before it, ..."""
        return ((end_day - day).days - 1) // DAYS_PER_WEEK

    def occurrence(week: int, weekday: int) -> date:
        """The local date of ``weekday`` within window week ``week``."""
        week_first_day = end_day - timedelta(days=DAYS_PER_WEEK * (week + 1))
        return week_first_day + timedelta(days=(weekday - week_first_day.weekday()) % DAYS_PER_WEEK)

    # A slot occurrence counts from the start of the slot the history begins in, so the first
    # call is itself observed (a finer rule than whole weeks: a history starting on a
    # Wednesday observes that week's Wednesday-to-Sunday slots).
    first_observed = (None if history_start is None
                      else _local_slot(history_start, zone, interval_minutes))

    def observed(day: date, minute: int) -> bool:
        return first_observed is not None and (day, minute) >= first_observed

    counts: Counter[tuple[int, int, int]] = Counter()  # (week, weekday, minute) -> calls
    handled_by_slot: dict[tuple[int, int], list[float]] = defaultdict(list)
    handled_by_minute: dict[int, list[float]] = defaultdict(list)
    handled_all: list[float] = []
    for call in in_window:
        day, minute = _local_slot(call.queued_at, zone, interval_minutes)
        week = week_of(day)
        # The epoch bounds above are local midnights, so this only guards zones whose clock
        # jumps over midnight itself.
        if not 0 <= week < weeks or not observed(day, minute):
            continue
        counts[(week, day.weekday(), minute)] += 1
        if call.handle_time is not None:
            handled_by_slot[(day.weekday(), minute)].append(call.handle_time)
            handled_by_minute[minute].append(call.handle_time)
            handled_all.append(call.handle_time)

    def slot_aht(weekday: int, minute: int) -> tuple[float | None, str, int]:
        for source, times in ((AHT_SLOT, handled_by_slot.get((weekday, minute), [])),
                              (AHT_SLOT_OF_DAY, handled_by_minute.get(minute, []))):
            if len(times) >= min_handled:
                return _mean(times), source, len(times)
        if handled_all:
            return _mean(handled_all), AHT_OVERALL, len(handled_all)
        return None, AHT_NONE, 0

    forecast = []
    for weekday, minute in week_slots(interval_minutes):
        samples = [counts[(week, weekday, minute)] for week in range(weeks)
                   if observed(occurrence(week, weekday), minute)]
        aht, source, handled = slot_aht(weekday, minute)
        forecast.append(ForecastSlot(
            weekday=weekday, minute=minute,
            calls=float(statistics.median(samples)) if samples else None,
            aht=aht, aht_source=source, weeks=len(samples),
            interval_minutes=interval_minutes, aht_handled=handled))
    return forecast


# ---------------------------------------------------------------------------- plan
def staffing_plan(
    slots: Iterable[ForecastSlot],
    *,
    interval_minutes: int,
    sl_target: float | None = 0.8,
    sl_seconds: float = 20.0,
    max_occupancy: float | None = 0.85,
    shrinkage: float = 0.3,
    asa: float | None = None,
) -> list[PlanSlot]:
    """Agents required per slot by Erlang C (``staffing.agents_needed``), on the phones and
    scheduled after shrinkage.

    A slot forecast at 0 calls needs 0 agents. A slot with no forecast, no AHT, or inputs the
    staffing maths rejects is kept in the plan with ``error`` set, so one bad slot does not
    lose the others. Targets themselves are checked once, first: a StaffingError for them
    is a caller error that would be the same in every slot.
    """
    _check_interval_minutes(interval_minutes)
    targets = Targets(service_level=sl_target, sl_seconds=sl_seconds, max_asa=asa,
                      max_occupancy=max_occupancy, shrinkage=shrinkage)
    plan = []
    for slot in slots:
        if slot.interval_minutes != interval_minutes:
            # A 30-minute forecast read as 15-minute slots would double every load.
            raise ForecastError(f"slot {slot.weekday}/{slot.minute} is a {slot.interval_minutes}-minute "
                                f"forecast, the plan is for {interval_minutes}-minute intervals")
        plan.append(_plan_slot(slot, targets, interval_minutes))
    return plan


def _plan_slot(slot: ForecastSlot, targets: Targets, interval_minutes: int) -> PlanSlot:
    def planned(traffic: float | None = None, on_phones: int | None = None, scheduled: int | None = None,
                binding: tuple[str, ...] = (), error: str | None = None) -> PlanSlot:
        return PlanSlot(weekday=slot.weekday, minute=slot.minute, interval_minutes=interval_minutes,
                        calls=slot.calls, aht=slot.aht, aht_source=slot.aht_source, traffic=traffic,
                        required_on_phones=on_phones, required_scheduled=scheduled,
                        binding=binding, error=error)

    if slot.calls is None:
        return planned(error=NO_HISTORY)
    if slot.calls == 0:
        return planned(traffic=0.0, on_phones=0, scheduled=0)  # nobody is needed for no call
    if slot.aht is None:
        return planned(error=NO_AHT)
    try:
        traffic = traffic_intensity(slot.calls, interval_minutes * 60, slot.aht)
        result = agents_needed(traffic, slot.aht, targets)
    except StaffingError as exc:
        return planned(error=str(exc))
    return planned(traffic=traffic, on_phones=result.agents, scheduled=result.scheduled_agents,
                   binding=result.binding)


# ---------------------------------------------------------------------------- staffed
def _available_seconds(span: StateSpan, start: float, end: float, until: float) -> float:
    """The span's time inside [start, end), an open span counting up to ``until`` and no span
    beyond it: the clipping the KPI report applies to logged-in and paused time."""
    span_end = until if span.end is None else min(span.end, until)
    return max(0.0, min(span_end, end) - max(span.start, start))


def staffed_agents(spans: Iterable[StateSpan], start: float, end: float, *, until: float) -> float:
    """Average number of agents available to take calls in [start, end): every agent's
    logged-in time minus paused time there, summed, over (end - start) seconds.

    Logged-out time is no span (definitions.agent_spans), so this is the time in every state
    but paused: available, ringing, on a call and in wrap-up all count as staffed.
    """
    start, end, until = _check_time("start", start), _check_time("end", end), _check_time("until", until)
    if not end > start:
        raise ForecastError(f"end must be after start, got [{start}, {end})")
    available = math.fsum(_available_seconds(span, start, end, until) for span in spans
                          # a hand-built logged_out span is still not logged-in time
                          if span.state not in (PAUSED, LOGGED_OUT))
    return available / (end - start)


# ---------------------------------------------------------------------------- view
def schedule_view(
    plan: Iterable[PlanSlot],
    spans: Iterable[StateSpan],
    *,
    tz: str,
    interval_minutes: int,
    start: float,
    end: float,
    until: float,
) -> list[ScheduleRow]:
    """Each local interval overlapping [start, end) (the KPI report's bounds, from
    definitions.interval_start/interval_end), with its slot's forecast and requirement, the
    agents staffed and the gap.

    ``until`` is the end of observation: an interval starting at or after it has no staffed
    figure (None, not 0 agents); the interval containing it is averaged over its observed
    part [start, until).
    """
    name = _check_interval_minutes(interval_minutes)
    start, end, until = _check_time("start", start), _check_time("end", end), _check_time("until", until)
    if not end > start:
        raise ForecastError(f"end must be after start, got [{start}, {end})")
    zone = _zone(tz)
    by_slot: dict[tuple[int, int], PlanSlot] = {}
    for slot in plan:
        if slot.interval_minutes != interval_minutes:
            raise ForecastError(f"the plan is for {slot.interval_minutes}-minute intervals, "
                                f"the view for {interval_minutes}-minute ones")
        by_slot[(slot.weekday, slot.minute)] = slot
    spans = list(spans)

    rows = []
    bucket = interval_start(start, name, zone)
    while bucket < end:
        bucket_end = interval_end(bucket, name, zone)
        day, minute = _local_slot(bucket, zone, interval_minutes)
        slot = by_slot.get((day.weekday(), minute))
        if slot is None:
            raise ForecastError(f"the plan has no slot for weekday {day.weekday()} minute {minute}")
        staffed = (None if bucket >= until
                   else staffed_agents(spans, bucket, min(bucket_end, until), until=until))
        gap = (None if staffed is None or slot.required_on_phones is None
               else staffed - slot.required_on_phones)
        rows.append(ScheduleRow(
            label=label(bucket, zone), start=bucket, end=bucket_end,
            weekday=slot.weekday, minute=slot.minute,
            forecast_calls=slot.calls, forecast_aht=slot.aht,
            required_on_phones=slot.required_on_phones, required_scheduled=slot.required_scheduled,
            staffed=staffed, gap=gap, error=slot.error))
        bucket = bucket_end
    return rows
