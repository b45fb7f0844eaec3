"""Business hours for schedule nodes: a flow file's top-level ``schedules:`` mapping.

    schedules:
      support:
        timezone: Asia/Shanghai          # IANA name; hours and holidays are in this zone
        hours: {mon-fri: "07:30-21:30", sat: "09:00-17:00"}   # or hours: "24x7"
        holidays: [2026-10-01, 2026-10-02]

Days not listed are closed. A day may have several spans ("09:00-12:00,13:00-17:00"); a span ends
at most at 24:00 and does not run past midnight (write the next day's span on that day). A holiday
is the whole date in the schedule's zone, and wins over the hours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
ALWAYS = "24x7"
_SPAN = re.compile(r"^([0-2][0-9]):([0-5][0-9])-([0-2][0-9]):([0-5][0-9])$")
ScheduleState = Literal["open", "closed", "holiday"]
Spans = tuple[tuple[int, int], ...]  # (start, end) in minutes after midnight, end exclusive


class ScheduleError(ValueError):
    """A schedule's hours do not parse; ``key`` is the day key in ``hours`` it is about, and
    ``in_key`` whether the key itself is wrong (rather than its hours)."""

    def __init__(self, key: str | None, message: str, *, in_key: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.in_key = in_key


def _hours_shape(value: Any) -> Any:
    # One clear message instead of pydantic's per-branch union errors.
    if value == ALWAYS or (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                            for k, v in value.items())):
        return value
    raise ValueError(f"hours must be {ALWAYS!r} or a mapping of days to quoted spans, "
                     'e.g. {mon-fri: "09:00-17:00", sat: closed}')


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str
    hours: Annotated[Union[Literal["24x7"], dict[str, str]], BeforeValidator(_hours_shape)]
    holidays: Annotated[tuple[date, ...], Field(max_length=1000)] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        zone_of(name)
        return name

    def zone(self) -> ZoneInfo:
        return zone_of(self.timezone)

    def state_at(self, now: datetime) -> ScheduleState:
        """Open, closed or holiday at ``now``. An aware ``now`` is converted to the schedule's
        zone; a naive one is taken as the wall-clock time there (what a person means by
        "simulate at 09:00")."""
        local = now.replace(tzinfo=self.zone()) if now.tzinfo is None else now.astimezone(self.zone())
        if local.date() in self.holidays:
            return "holiday"
        if self.hours == ALWAYS:
            return "open"
        minute = local.hour * 60 + local.minute
        spans = week_hours(self.hours)[local.weekday()]
        return "open" if any(start <= minute < end for start, end in spans) else "closed"


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Asia/Shanghai, Europe/Berlin, UTC)") from None


def week_hours(hours: Mapping[str, str]) -> tuple[Spans, ...]:
    """The spans of each weekday (Monday first); ScheduleError naming the key that is wrong."""
    week: list[Spans | None] = [None] * 7
    for key, text in hours.items():
        spans = _spans(key, text)
        for day in _days(key):
            if week[day] is not None:
                raise ScheduleError(key, f"{WEEKDAYS[day]} is given twice", in_key=True)
            week[day] = spans
    return tuple(spans or () for spans in week)


def hours_problems(hours: Mapping[str, str]) -> Iterator[tuple[str, bool, str]]:
    """(day key, whether the key itself is wrong, message) for the first problem in ``hours``."""
    try:
        week_hours(hours)
    except ScheduleError as exc:
        yield exc.key or "", exc.in_key, exc.message


def _days(key: str) -> list[int]:
    first, dash, last = key.partition("-")
    if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
        raise ScheduleError(key, f"{key!r} is not a day or day range (mon..sun, e.g. mon-fri)", in_key=True)
    start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    if end < start:
        raise ScheduleError(key, f"{key!r} runs backwards (write e.g. mon-fri)", in_key=True)
    return list(range(start, end + 1))


def _spans(key: str, text: str) -> Spans:
    if text.strip() == "closed":
        return ()
    spans: list[tuple[int, int]] = []
    for part in text.split(","):
        match = _SPAN.match(part.strip())
        if match is None:
            raise ScheduleError(key, f"{text!r} is not 'closed' or spans like \"09:00-17:00\" "
                                "(several separated by ',')")
        h1, m1, h2, m2 = map(int, match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or end > 24 * 60:
            raise ScheduleError(key, f"{part.strip()!r}: times run from 00:00 to 24:00")
        if end <= start:
            raise ScheduleError(key, f"{part.strip()!r} ends before it starts (spans do not run past "
                                "midnight: give the next day its own span)")
        spans.append((start, end))
    return tuple(sorted(spans))
