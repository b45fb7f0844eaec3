"""Outbound campaigns, the pure part: what a campaign file says, and the decisions the dialer makes.

- :class:`CampaignSpec`: a campaign file, validated (``load_campaign_spec`` / ``parse_campaign_spec``)
- :func:`in_window` / :func:`next_window_open`: when the campaign may call, in its own time zone
- :func:`lines_to_start`: how many new calls to place now (pacing)
- :func:`after_outcome`: what becomes of a contact after a call attempt (retry rules)
- :func:`map_originate_reason`: Asterisk's answer to an Originate as a contact outcome
- :func:`check_transition`: which campaign state changes are allowed

No I/O here except reading the file in :func:`load_campaign_spec`; every function that depends on
time takes ``now`` (epoch seconds), so tests and the dialer decide what "now" is.

A campaign file::

    name: renewals-2024
    queue: sales                  # the agents who take the calls
    caller_id: "+14155550100"     # the number customers see
    time_zone: America/New_York   # the window is in this zone
    window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "20:00"}
    pacing: {mode: progressive, lines_per_agent: 1, max_lines: 10}
    ring_seconds: 25
    retry:
      busy: {attempts: 3, after_seconds: 300}
      no_answer: {attempts: 3, after_seconds: 1800}
    default_region: US            # for numbers written without +country code
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from callcenter.crm.phone import PhoneNumberError, check_region, normalize_number
from callcenter.yaml_source import SourceProblem, SourceProblems, YamlSourceError, compose_yaml, locate_mark

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
NAME = re.compile(NAME_PATTERN)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order

# ---- contact outcomes: what one call attempt (or the do-not-call check before it) came to
CONNECTED = "connected"
BUSY = "busy"
NO_ANSWER = "no_answer"
FAILED = "failed"            # congestion, unreachable, rejected, any other failure
INTERRUPTED = "interrupted"  # the attempt's fate is unknown (engine restart while dialing)
DNC = "dnc"                  # blocked by the do-not-call list at dial time: never dialled
OUTCOMES = (CONNECTED, BUSY, NO_ANSWER, FAILED, INTERRUPTED, DNC)
RETRYABLE_OUTCOMES = (BUSY, NO_ANSWER, FAILED, INTERRUPTED)

# ---- contact statuses
PENDING = "pending"    # to be dialled, at or after next_attempt_at when that is set
DIALING = "dialing"    # claimed by the dialer: a call is (or was, before a crash) under way
DONE = "done"          # connected to an agent
# FAILED ("failed"): no retries left; DNC ("dnc"): on the do-not-call list
INVALID = "invalid"    # not a number that can be dialled (kept so the report can show it)
STATUSES = (PENDING, DIALING, DONE, FAILED, DNC, INVALID)
FINAL_STATUSES = (DONE, FAILED, DNC, INVALID)

# ---- campaign states and the changes allowed between them
DRAFT, RUNNING, PAUSED, STOPPED, COMPLETED = "draft", "running", "paused", "stopped", "completed"
STATES = (DRAFT, RUNNING, PAUSED, STOPPED, COMPLETED)
TRANSITIONS: Mapping[str, frozenset[str]] = {
    DRAFT: frozenset({RUNNING, STOPPED}),
    RUNNING: frozenset({PAUSED, STOPPED, COMPLETED}),
    PAUSED: frozenset({RUNNING, STOPPED}),
    STOPPED: frozenset(),     # final: a stopped campaign is not restarted (create a new one)
    COMPLETED: frozenset(),   # final: every contact has a final status
}

PREVIEW, PROGRESSIVE = "preview", "progressive"
_START = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_END = re.compile(r"^(?:([01][0-9]|2[0-3]):([0-5][0-9])|(24):(00))$")


class CampaignError(SourceProblems):
    """A campaign file (or spec) is not valid; every problem names the file, line, field and what
    was expected."""


CampaignProblem = SourceProblem


# ------------------------------------------------------------------------------ the spec
def _clock_time(pattern: re.Pattern[str], example: str):
    def check(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 20:00 as the number 1200 (base 60) but 09:00 as a string:
            # refuse the number rather than guess what was meant.
            raise ValueError(f'write times in quotes, e.g. "{example}" (unquoted, YAML reads '
                             f"{value // 60}:{value % 60:02d} as the number {value})")
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(f'{value!r} is not a time of day written "HH:MM", e.g. "{example}"')
        return value
    return check


def _seconds_of(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60


StartTime = Annotated[str, BeforeValidator(_clock_time(_START, "09:00"))]
EndTime = Annotated[str, BeforeValidator(_clock_time(_END, "20:00"))]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """When calls may be placed: on ``days``, from ``start`` (included) to ``end`` (excluded), as
    wall-clock time in the campaign's zone. The window does not run past midnight."""

    days: Annotated[tuple[Day, ...], Field(min_length=1)] = ("mon", "tue", "wed", "thu", "fri")
    start: StartTime = "09:00"
    end: EndTime = "20:00"

    @field_validator("days")
    @classmethod
    def _days_once(cls, days: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({d for d in days if days.count(d) > 1}, key=WEEKDAYS.index)
        if repeated:
            raise ValueError(f"{', '.join(repeated)} given twice")
        return days

    @model_validator(mode="after")
    def _start_before_end(self) -> Window:
        if self.start_seconds >= self.end_seconds:
            raise ValueError(f"start {self.start} must be before end {self.end} "
                             "(the window does not run past midnight)")
        return self

    @property
    def start_seconds(self) -> int:
        return _seconds_of(self.start)

    @property
    def end_seconds(self) -> int:
        return _seconds_of(self.end)

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(d) for d in self.days)


class Pacing(_Strict):
    """How many lines to dial. ``progressive``: up to ``lines_per_agent`` calls per available agent
    (1: never more calls than agents); ``preview``: the agent is reserved and rung first, then one
    call for that agent. ``max_lines`` caps the campaign's simultaneous calls either way."""

    mode: Literal["preview", "progressive"] = PROGRESSIVE
    lines_per_agent: Annotated[StrictInt, Field(ge=1, le=3)] = 1
    max_lines: Annotated[StrictInt, Field(ge=1, le=200)] = 10

    @model_validator(mode="after")
    def _preview_is_one_per_agent(self) -> Pacing:
        if self.mode == PREVIEW and self.lines_per_agent != 1:
            raise ValueError("lines_per_agent applies to progressive mode only: preview dials one "
                             "call for each reserved agent")
        return self


class RetryRule(_Strict):
    """``attempts``: how many retries outcomes of this kind may cause for one contact in all (0:
    none); ``after_seconds``: how long after such an outcome the retry is due."""

    attempts: Annotated[StrictInt, Field(ge=0, le=10)]
    after_seconds: Annotated[StrictInt, Field(ge=30, le=604800)]


DEFAULT_RETRY = {
    BUSY: {"attempts": 3, "after_seconds": 300},
    NO_ANSWER: {"attempts": 3, "after_seconds": 1800},
    FAILED: {"attempts": 2, "after_seconds": 600},
    INTERRUPTED: {"attempts": 3, "after_seconds": 60},
}


class RetryRules(_Strict):
    """The retry rule of each retryable outcome. A rule given in part keeps the default of the
    rest: ``busy: {attempts: 5}`` still retries 300 s after a busy."""

    busy: RetryRule = RetryRule(**DEFAULT_RETRY[BUSY])
    no_answer: RetryRule = RetryRule(**DEFAULT_RETRY[NO_ANSWER])
    failed: RetryRule = RetryRule(**DEFAULT_RETRY[FAILED])
    interrupted: RetryRule = RetryRule(**DEFAULT_RETRY[INTERRUPTED])

    @model_validator(mode="before")
    @classmethod
    def _fill_in_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {key: {**DEFAULT_RETRY[key], **value} if key in DEFAULT_RETRY and isinstance(value, dict) else value
                for key, value in data.items()}

    def __getitem__(self, outcome: str) -> RetryRule:
        if outcome not in RETRYABLE_OUTCOMES:
            raise KeyError(outcome)
        return getattr(self, outcome)


class CampaignSpec(_Strict):
    """A validated campaign file."""

    name: Name
    queue: Name
    caller_id: str
    time_zone: str = "UTC"
    window: Window = Window()
    pacing: Pacing = Pacing()
    ring_seconds: Annotated[StrictInt, Field(ge=5, le=120)] = 25
    retry: RetryRules = RetryRules()
    default_region: str = "US"

    @field_validator("caller_id", mode="before")
    @classmethod
    def _e164(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip().startswith("+"):
            raise ValueError(f'{value!r} is not an E.164 number: write it with + and the country code, '
                             'quoted, e.g. "+14155550100"')
        try:
            return normalize_number(value, "US")  # the region is not used: the number has its +code
        except PhoneNumberError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        zone_of(name)
        return name

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        return check_region(region)

    def zone(self) -> ZoneInfo:
        return zone_of(self.time_zone)

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON data (what the store keeps); ``CampaignSpec.model_validate``
        reads it back."""
        return self.model_dump(mode="json")


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/New_York, Europe/Paris, UTC)") from None


def load_campaign_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a campaign file; CampaignError lists every problem, with line numbers."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError([CampaignProblem(source, None, None, "", f"cannot read campaign file: {exc}")]) from None
    return parse_campaign_spec(text, source)


def parse_campaign_spec(text: str, source: str = "<campaign>") -> CampaignSpec:
    try:
        root, data = compose_yaml(text)
    except YamlSourceError as exc:
        line, column = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (None, None)
        raise CampaignError([CampaignProblem(source, line, column, "", exc.reason)]) from None
    if not isinstance(data, dict):
        raise CampaignError([CampaignProblem(source, 1 if root else None, 1 if root else None, "",
                                             "expected a mapping with at least name, queue and caller_id")])
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            mark = locate_mark(root, loc, at_key=err["type"] == "extra_forbidden")
            line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
            problems.append(CampaignProblem(source, line, column, ".".join(str(p) for p in loc),
                                            _message(err)))
        raise CampaignError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0))) from None


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {str(err['loc'][-1])!r}"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "string_pattern_mismatch":
        return (f"{err['input']!r} is not a name: lower-case letters, digits, '_' and '-', starting with "
                "a letter, at most 32 characters")
    if kind == "too_short":
        return f"give at least {err['ctx']['min_length']} {'day' if err['loc'][-1] == 'days' else 'item'}"
    if kind == "literal_error":
        return f"expected {err['ctx']['expected']}, got {err['input']!r}"
    shown = err.get("input")
    return f"{err['msg']} (got {shown!r})" if "input" in err and not isinstance(shown, dict) else err["msg"]


# ------------------------------------------------------------------------------ the window
def in_window(spec: CampaignSpec, now: float) -> bool:
    """Whether ``now`` is inside the calling window: a window day in the campaign's zone, and a
    wall-clock time from start (included) to end (excluded) there."""
    local = datetime.fromtimestamp(now, spec.zone())
    wall = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    window = spec.window
    return local.weekday() in window.weekdays and window.start_seconds <= wall < window.end_seconds


def next_window_open(spec: CampaignSpec, now: float) -> float:
    """The first moment at or after ``now`` that is inside the window (``now`` itself when open).

    DST-correct: the window can only open when the wall clock reaches ``start`` on a window day, or
    when the clock jumps (a DST change: a start inside a skipped hour opens at the jump, a clock set
    back can re-enter the window). So those moments are the candidates, checked in order."""
    if in_window(spec, now):
        return now
    zone = spec.zone()
    first_day = datetime.fromtimestamp(now, zone).date()
    horizon = 15  # days: a window day comes within a week; a second week covers a window lost to a DST gap
    candidates = [_start_instant(spec, first_day + timedelta(days=n), zone) for n in range(-1, horizon)]
    candidates += _offset_changes(zone, now - 86400, now + horizon * 86400)
    for moment in sorted(c for c in candidates if c >= now):
        if in_window(spec, moment):
            return moment
    raise AssertionError(f"no open window within {horizon} days")  # a valid spec always has one


def _start_instant(spec: CampaignSpec, day: date, zone: ZoneInfo) -> float:
    seconds = spec.window.start_seconds
    wall = datetime.combine(day, time(seconds // 3600, seconds % 3600 // 60), tzinfo=zone)
    # fold=0: of a wall time that happens twice (clock set back), the first; of one that never
    # happens (clock set forward), a moment after the jump, itself a candidate.
    return wall.timestamp()


def _offset_changes(zone: ZoneInfo, start: float, end: float) -> Iterator[float]:
    """The moments (whole seconds) in [start, end) when the zone's UTC offset changes."""
    step = 3600
    t = float(int(start))
    offset = _offset(zone, t)
    while t < end:
        nxt = t + step
        next_offset = _offset(zone, nxt)
        if next_offset != offset:
            lo, hi = t, nxt  # offset(lo) is the old one, offset(hi) the new: bisect to the second
            while hi - lo > 1:
                mid = float(int((lo + hi) / 2))
                if _offset(zone, mid) == offset:
                    lo = mid
                else:
                    hi = mid
            yield hi
            offset = next_offset
        t = nxt


def _offset(zone: ZoneInfo, t: float) -> timedelta | None:
    return datetime.fromtimestamp(t, timezone.utc).astimezone(zone).utcoffset()



# ------------------------------------------------------------------------------ pacing
def lines_to_start(mode: str, available_agents: int, active_lines: int, lines_per_agent: int,
                   max_lines: int) -> int:
    """How many new calls to place now; never negative.

    progressive: ``min(available_agents * lines_per_agent, max_lines) - active_lines``; with 1 line
    per agent there are never more calls than agents free to take them.
    preview: ``min(available_agents, max_lines) - active_lines``: one call per reserved agent
    (``available_agents`` are the agents reserved for the campaign), who is rung first."""
    if mode == PROGRESSIVE:
        wanted = min(available_agents * lines_per_agent, max_lines)
    elif mode == PREVIEW:
        wanted = min(available_agents, max_lines)
    else:
        raise ValueError(f"{mode!r} is not a pacing mode (preview or progressive)")
    return max(0, wanted - active_lines)


# ------------------------------------------------------------------------------ after a call
@dataclass(frozen=True)
class Decision:
    """What becomes of a contact: its new status, and when a retry is due (``pending`` only)."""

    status: str
    next_attempt_at: float | None = None


def after_outcome(spec: CampaignSpec, outcome: str, counts_by_outcome: Mapping[str, int],
                  now: float) -> Decision:
    """The contact's fate after an attempt that came to ``outcome``.

    ``counts_by_outcome`` are the contact's outcomes stored BEFORE this one (the store's
    ``ContactRow.outcomes``). connected: done; dnc: dnc. Any other outcome is retried when the
    number of outcomes of its kind, this one included, is at most the rule's ``attempts`` — so
    ``busy: {attempts: 3}`` allows 3 retries caused by busy, and a contact that is always busy is
    dialled 4 times. Each kind counts on its own: a contact is dialled at most
    ``1 + sum of attempts`` times. The retry is due ``after_seconds`` after ``now`` (the dialer
    also waits for the window)."""
    if outcome == CONNECTED:
        return Decision(DONE)
    if outcome == DNC:
        return Decision(DNC)
    if outcome not in RETRYABLE_OUTCOMES:
        raise ValueError(f"{outcome!r} is not a contact outcome (one of: {', '.join(OUTCOMES)})")
    rule = spec.retry[outcome]
    if counts_by_outcome.get(outcome, 0) + 1 <= rule.attempts:
        return Decision(PENDING, now + rule.after_seconds)
    return Decision(FAILED)


# Asterisk's OriginateResponse "Reason": the last AST_CONTROL_* frame the outgoing leg saw
# (include/asterisk/frame.h), or 0 when the channel could not even be created.
_ORIGINATE_REASONS = {
    0: FAILED,      # no channel: unknown endpoint, no route, dial failure
    1: FAILED,      # AST_CONTROL_HANGUP: hung up (rejected) before answering
    2: NO_ANSWER,   # AST_CONTROL_RING: rang, then the timeout
    3: NO_ANSWER,   # AST_CONTROL_RINGING: rang, then the timeout
    4: CONNECTED,   # AST_CONTROL_ANSWER
    5: BUSY,        # AST_CONTROL_BUSY
    8: FAILED,      # AST_CONTROL_CONGESTION: circuits busy
}


def map_originate_reason(reason_code: int | None, answered: bool) -> str:
    """The outcome of an Originate from its OriginateResponse (``answered``: Response: Success)."""
    if answered:
        return CONNECTED
    return _ORIGINATE_REASONS.get(reason_code, FAILED) if reason_code is not None else FAILED


# ------------------------------------------------------------------------------ campaign states
def check_transition(current: str, new: str) -> None:
    """Raise ValueError unless a campaign may go from state ``current`` to ``new``."""
    if new not in STATES:
        raise ValueError(f"{new!r} is not a campaign state (one of: {', '.join(STATES)})")
    if new not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none: it is final"
        raise ValueError(f"a {current} campaign cannot become {new} (allowed: {allowed})")
