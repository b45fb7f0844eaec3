"""Callbacks, pure: the policy, the record and its life, and validation of web requests.

No I/O and no clock: every function that needs the time takes ``now`` (epoch seconds).

A callback's life::

    waiting ──start_attempt──▶ dialing ──answered──▶ completed
       ▲                          │
       │  busy / no_answer / failed, attempts left and the window still open
       └──────────────────────────┤   (next_attempt_at = now + retry_after_seconds)
                                  ├──▶ failed    (that was the last attempt)
                                  └──▶ expired   (the next attempt would fall after not_after)
    waiting / dialing ──▶ cancelled, expired (set by the engine or an operator)
    dialing ──release──▶ waiting (the reserved agent did not answer: not an attempt)

Times in web requests (``not_before``, ``not_after``) are ISO-8601 date-times WITH a UTC offset
(``2026-03-02T09:00:00+01:00`` or ``...Z``): a browser turns the customer's local choice into one
with ``Date.toISOString()``, and a time without an offset would be ambiguous. Epoch numbers are
refused, so that a mistake (milliseconds, a local time) cannot pass for a valid time.

Business hours (``CallbackPolicy.business_hours``, the IVR's :class:`Schedule`): a web request
whose window starts while closed is moved, not refused: ``not_before`` becomes the first opening
inside the window (for "as soon as possible", the next opening). Only a window with no open
minute at all (within ``max_window_days``) is refused. Retries are spaced by
``retry_after_seconds`` alone; the engine dials only when an agent is free anyway.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType
from pydantic import BaseModel, ConfigDict, Field, field_validator

from callcenter.crm.phone import PhoneNumberError, check_region, normalize_number
from callcenter.ivr.schedules import ALWAYS, Schedule, week_hours

Source = Literal["hold", "web"]
Status = Literal["waiting", "dialing", "completed", "failed", "expired", "cancelled"]
Outcome = Literal["answered", "busy", "no_answer", "failed"]
SOURCES: tuple[str, ...] = get_args(Source)
STATUSES: tuple[str, ...] = get_args(Status)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
OPEN_STATUSES = ("waiting", "dialing")          # what the engine restores at start
FINAL_STATUSES = ("completed", "failed", "expired", "cancelled")

REQUEST_FIELDS = ("queue", "number", "name", "note", "not_before", "not_after")
MAX_NAME_LENGTH = 80
MAX_NOTE_LENGTH = 500
# An ISO-8601 date-time is about 32 characters; longer input is refused before parsing.
MAX_TIME_LENGTH = 40
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

# Numbers a callback must never dial: calling them costs the call center money per minute, which
# is exactly what someone abusing a public "call me back" form is after (toll fraud).
_REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
}


class CallbackRequestError(ValueError):
    """A web request refused; ``field`` is the JSON field it is about (None: the body itself)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class CallbackRateLimited(CallbackRequestError):
    """Too many recent requests for the number (the API answers 429 rather than 400)."""


# ------------------------------------------------------------------------------ policy
class CallbackPolicy(BaseModel):
    """How callbacks are offered, spaced and limited (one policy for all queues)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry_after_seconds: Annotated[int, Field(ge=30, le=86400)] = 300
    ring_seconds: Annotated[int, Field(ge=5, le=120)] = Field(30, description="how long the customer's phone rings")
    priority: Annotated[int, Field(ge=-100, le=100)] = Field(0, description="web callbacks' priority in the queue")
    rate_limit_count: Annotated[int, Field(ge=1, le=100)] = Field(
        3, description="web requests allowed per number within rate_limit_seconds")
    rate_limit_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] = 3600
    max_window_days: Annotated[int, Field(ge=1, le=90)] = Field(
        14, description="how far ahead a web request's window may reach")
    business_hours: Schedule | None = Field(
        None, description="web windows must overlap these (the IVR's schedule format); None: any time")
    default_region: str = Field("US", description="region of numbers written without a country code")
    allowed_regions: tuple[str, ...] = Field(
        (), description="regions whose numbers may be called back (e.g. [US, CA]); empty: any")

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        return check_region(region)

    @field_validator("allowed_regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_region(region) for region in regions)

    @field_validator("business_hours")
    @classmethod
    def _hours_parse(cls, schedule: Schedule | None) -> Schedule | None:
        # Schedule checks its hours only when asked for a state; a policy is checked at load time.
        if schedule is not None and schedule.hours != ALWAYS:
            week_hours(schedule.hours)  # ScheduleError is a ValueError: pydantic reports it
        return schedule

    def rate_limit_since(self, now: float) -> float:
        """Where the rate-limit window starts: count a number's web requests created since then."""
        return now - self.rate_limit_seconds


# ------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class Callback:
    """One callback (a row of the ``callbacks`` table)."""

    id: int
    call_id: str                  # hold: the caller's original call id; web: "cb-<id>"
    source: Source
    queue: str
    number: str                   # E.164
    priority: int
    enqueued_at: float            # the place in line (hold: the caller's original enqueue time)
    not_before: float | None
    not_after: float | None
    status: Status
    attempts: int                 # started attempts, the current one included while dialing
    next_attempt_at: float | None
    last_outcome: Outcome | None
    agent_id: str | None          # the agent of the latest attempt
    created_at: float
    name: str | None = None       # web only: what the customer typed (plain text, never markup)
    note: str | None = None
    updated_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class ValidatedRequest:
    """A web request that passed :func:`validate_web_request`, ready for ``CallbackStore.add_web``."""

    queue: str
    number: str                   # E.164
    name: str | None
    note: str | None
    not_before: float | None      # None: as soon as possible
    not_after: float | None       # None: no end
    deferred_to_opening: bool = False   # not_before was moved to the next opening of business hours


@dataclass(frozen=True)
class AttemptDecision:
    """What an attempt's outcome leads to."""

    status: Status
    next_attempt_at: float | None
    final: bool


# ------------------------------------------------------------------------------ numbers
def callback_number(raw: str, policy: CallbackPolicy) -> str:
    """``raw`` in E.164, if a callback may dial it (valid, not premium-rate or shared-cost, in an
    allowed region). Raises PhoneNumberError saying why not."""
    e164 = normalize_number(raw, policy.default_region)
    parsed = phonenumbers.parse(e164)
    refused = _REFUSED_TYPES.get(phonenumbers.number_type(parsed))
    if refused:
        raise PhoneNumberError(f"{e164} is {refused}; it cannot be called back")
    region = phonenumbers.region_code_for_number(parsed)
    if policy.allowed_regions and region not in policy.allowed_regions:
        raise PhoneNumberError(f"{e164} is not in a region we call back "
                               f"({', '.join(policy.allowed_regions)})")
    return e164


def callable_number(raw: str | None, policy: CallbackPolicy) -> str | None:
    """A held caller's number in E.164 if a virtual-hold callback may dial it, else None (withheld,
    'anonymous', invalid, premium-rate...): the engine offers virtual hold only to callers with one."""
    if not raw:
        return None
    try:
        return callback_number(raw, policy)
    except PhoneNumberError:
        return None


# ------------------------------------------------------------------------------ web requests
def validate_web_request(body: Mapping[str, Any], *, policy: CallbackPolicy, known_queues: Collection[str],
                         now: float, recent_requests_for_number: int) -> ValidatedRequest:
    """Check a web request's JSON body; the first problem raises CallbackRequestError (field named)
    or CallbackRateLimited.

    ``recent_requests_for_number`` is how many web requests the number made since
    ``policy.rate_limit_since(now)``; the caller counts them for :func:`request_number`'s answer
    (the E.164 form, so that every way of writing a number shares one limit).

    Checked in this order: unknown fields, number, queue, rate limit, name, note, window (so a
    customer over the limit hears it before fixing anything else).
    """
    if not isinstance(body, Mapping):
        raise CallbackRequestError(None, "the request body must be a JSON object")
    for key in body:
        if key not in REQUEST_FIELDS:
            raise CallbackRequestError(str(key), f"unknown field {str(key)[:40]!r} "
                                       f"(expected: {', '.join(REQUEST_FIELDS)})")
    number = request_number(body, policy)
    queue = body.get("queue")
    if not isinstance(queue, str) or not queue:
        raise CallbackRequestError("queue", "a queue is required")
    if queue not in known_queues:
        raise CallbackRequestError("queue", f"there is no queue {queue[:40]!r}")
    if recent_requests_for_number >= policy.rate_limit_count:
        raise CallbackRateLimited("number", f"too many callback requests for this number (at most "
                                  f"{policy.rate_limit_count} in {_duration(policy.rate_limit_seconds)}); "
                                  "please try again later")
    name = _text(body, "name", MAX_NAME_LENGTH, multiline=False)
    note = _text(body, "note", MAX_NOTE_LENGTH, multiline=True)
    not_before = _time(body, "not_before")
    not_after = _time(body, "not_after")
    window_field = "not_before" if not_before is not None else "not_after" if not_after is not None else None

    horizon = now + policy.max_window_days * 86400
    if not_after is not None and not_after <= now:
        raise CallbackRequestError("not_after", "the end of the window is in the past")
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise CallbackRequestError("not_after", "the end of the window must be later than its start")
    ahead = f"more than {policy.max_window_days} days ahead"
    if not_before is not None and not_before > horizon:
        raise CallbackRequestError("not_before", f"the start of the window is {ahead}")
    if not_after is not None and not_after > horizon:
        raise CallbackRequestError("not_after", f"the end of the window is {ahead}")
    if not_before is not None and not_before <= now:
        not_before = None  # a start already past (a slow form, a skewed clock) means "now"

    deferred = False
    if policy.business_hours is not None:
        start = now if not_before is None else not_before
        until = horizon if not_after is None else not_after
        opening = next_opening(policy.business_hours, start, until)
        if opening is None:
            raise CallbackRequestError(window_field, "we are not open at any time in the requested window "
                                       f"(open: {describe_hours(policy.business_hours)})")
        if opening > start:
            not_before, deferred = opening, True
    return ValidatedRequest(queue=queue, number=number, name=name, note=note, not_before=not_before,
                            not_after=not_after, deferred_to_opening=deferred)


def request_number(body: Mapping[str, Any], policy: CallbackPolicy) -> str:
    """The request's ``number`` in E.164 (CallbackRequestError on ``number`` otherwise): what the
    API counts recent requests for before calling :func:`validate_web_request`."""
    raw = body.get("number") if isinstance(body, Mapping) else None
    if raw is None or raw == "":
        raise CallbackRequestError("number", "a phone number is required")
    if not isinstance(raw, str):
        raise CallbackRequestError("number", "the phone number must be a string")
    try:
        return callback_number(raw, policy)
    except PhoneNumberError as exc:
        raise CallbackRequestError("number", str(exc)) from None


def _text(body: Mapping[str, Any], field: str, limit: int, *, multiline: bool) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallbackRequestError(field, f"{field} must be a string")
    value = value.replace("\r\n", "\n").strip()
    if len(value) > limit:
        raise CallbackRequestError(field, f"{field} is longer than {limit} characters")
    allowed = "\n\t" if multiline else ""
    # Plain text: control characters have no place in it (and would garble logs and agents' screens).
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        raise CallbackRequestError(field, f"{field} contains control characters")
    return value or None


def _time(body: Mapping[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    example = "e.g. 2026-03-02T09:00:00+01:00 or 2026-03-02T08:00:00Z"
    if not isinstance(value, str) or len(value) > MAX_TIME_LENGTH:
        raise CallbackRequestError(field, f"{field} must be an ISO-8601 date-time with a UTC offset, {example}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CallbackRequestError(field, f"{field} is not an ISO-8601 date-time ({example})") from None
    if moment.utcoffset() is None:
        raise CallbackRequestError(field, f"{field} has no UTC offset ({example})")
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):
        raise CallbackRequestError(field, f"{field} is out of range") from None


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    if seconds % 60 == 0:
        return f"{seconds // 60} minute(s)"
    return f"{seconds} seconds"


# ------------------------------------------------------------------------------ business hours
def next_opening(schedule: Schedule, start: float, until: float) -> float | None:
    """The first moment in [start, until) when ``schedule`` is open; None if there is none.

    Spans are wall-clock times in the schedule's zone, so a 09:00 opening is 09:00 on both sides
    of a daylight-saving change (a time that does not exist that day counts from the offset before
    the change, as :meth:`Schedule.state_at` reads it)."""
    zone = schedule.zone()
    week = (((0, 24 * 60),),) * 7 if schedule.hours == ALWAYS else week_hours(schedule.hours)
    day = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(until, zone).date()
    while day <= last:
        if day not in schedule.holidays:
            for first, end in week[day.weekday()]:
                if _wall_clock(day, end, zone) > start:
                    opening = max(_wall_clock(day, first, zone), start)
                    return opening if opening < until else None
        day += timedelta(days=1)
    return None


def _wall_clock(day: date, minute: int, zone: ZoneInfo) -> float:
    """Epoch seconds of ``minute`` after midnight on ``day`` by the clocks in ``zone``."""
    # Adding a timedelta to an aware datetime is wall-clock arithmetic: 24:00 is the next midnight
    # whatever the day's length, and the offset is the one in force at the resulting time.
    return (datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=minute)).timestamp()


def describe_hours(schedule: Schedule) -> str:
    hours = ALWAYS if schedule.hours == ALWAYS else ", ".join(f"{k} {v}" for k, v in schedule.hours.items())
    return f"{hours}, {schedule.timezone}"


# ------------------------------------------------------------------------------ attempts
def after_attempt(policy: CallbackPolicy, callback: Callback, outcome: str, now: float) -> AttemptDecision:
    """What follows an attempt that ended with ``outcome``. ``callback.attempts`` already counts
    this attempt (``start_attempt`` added it). An answered call completes it; otherwise it waits
    ``retry_after_seconds`` for the next attempt if one is left and would start no later than
    ``not_after``, else it is failed (attempts used up) or expired (the window closes first)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"{outcome!r} is not an attempt outcome (one of: {', '.join(OUTCOMES)})")
    if outcome == "answered":
        return AttemptDecision("completed", None, True)
    if callback.attempts >= policy.max_attempts:
        return AttemptDecision("failed", None, True)
    retry_at = now + policy.retry_after_seconds
    if callback.not_after is not None and retry_at > callback.not_after:
        return AttemptDecision("expired", None, True)
    return AttemptDecision("waiting", retry_at, False)


def eligible_at(callback: Callback) -> float:
    """When the callback may next be dialled: the latest of its place in line, its window's start
    and its next attempt."""
    return max(t for t in (callback.enqueued_at, callback.not_before, callback.next_attempt_at) if t is not None)


def due(callback: Callback, now: float) -> bool:
    """Waiting, and may be dialled at ``now`` (the window's end, ``not_after``, included)."""
    return (callback.status == "waiting" and eligible_at(callback) <= now
            and (callback.not_after is None or now <= callback.not_after))


def is_expired(callback: Callback, now: float) -> bool:
    """Waiting past the end of its window: the engine marks it ``expired``. (A callback being
    dialled finishes its attempt; :func:`after_attempt` then decides.)"""
    return callback.status == "waiting" and callback.not_after is not None and now > callback.not_after


# ------------------------------------------------------------------------------ public view
def iso_utc(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def receipt(callback: Callback, *, deferred_to_opening: bool = False) -> dict[str, Any]:
    """What the public form is told about the callback it asked for (times in ISO-8601, UTC)."""
    return {"id": callback.id, "status": callback.status, "queue": callback.queue, "number": callback.number,
            "not_before": iso_utc(callback.not_before), "not_after": iso_utc(callback.not_after),
            "deferred_to_opening": deferred_to_opening}
