"""Widening steps: how a queue's skill requirement relaxes while a caller waits.

A queue lists its steps from narrowest to widest::

    - {after: 0,  require: "billing >= 7"}
    - {when: "estimated_wait > 60", require: "billing >= 5"}
    - {after: 30, require: "billing >= 3"}
    - {after: 90, require: "true"}

A time step (``after``) applies once the caller has waited that many seconds and stays applied.
A metric step (``when``) applies while the queue's live metric satisfies its condition, which
lets a queue under pressure widen early. The active requirement is that of the *last* step in
the list that applies: the list order is the widening order. Pure: no I/O, no clock; the router
arms one timer per time step using ``next_change_at`` and never polls. See docs/skills.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

from callcenter.acd.requirements import (
    Requirement,
    RequirementError,
    Token,
    parse_requirement,
    tokenize,
)

# The metrics a `when` condition may test, with what the router must supply for each. A metric
# missing from the metrics given (e.g. no service level before the first call) never triggers.
METRICS: Mapping[str, str] = {
    "estimated_wait": "seconds a new caller is expected to wait",
    "service_level": "fraction 0..1 of calls answered within the threshold",
}
CONDITION_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}

QueueMetrics: TypeAlias = Mapping[str, float]


class StepsError(ValueError):
    """A queue's widening steps are malformed; the message starts with the step's index."""

    def __init__(self, index: int | None, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(reason if index is None else f"steps[{index}]: {reason}")


# ---- conditions ------------------------------------------------------------------------------
#
#   condition = metric , ( ">" | ">=" | "<" | "<=" ) , number ;


@dataclass(frozen=True)
class Condition:
    """`metric OP number` over the queue's live metrics."""

    metric: str
    op: str
    value: float

    def holds(self, metrics: QueueMetrics) -> bool:
        observed = metrics.get(self.metric)
        # No figure is no trigger; NaN compares false on its own.
        return observed is not None and CONDITION_OPS[self.op](observed, self.value)

    def describe(self) -> str:
        return f"{self.metric} {self.op} {plain_number(self.value)}"


def parse_condition(text: str) -> Condition:
    """Parse a `when` condition; RequirementError (with column and caret) if malformed."""
    if not isinstance(text, str):
        raise TypeError(f"a condition must be a string, got {text!r}")
    tokens = tokenize(text)

    def fail(reason: str, token: Token) -> RequirementError:
        return RequirementError(reason, text, token.column)

    metric_token, op_token, value_token, end = (tokens + [tokens[-1]] * 3)[:4]
    known = ", ".join(METRICS)
    if metric_token.kind != "word":
        raise fail(f"expected a metric name ({known})", metric_token)
    if metric_token.text not in METRICS:
        raise fail(f"unknown metric {metric_token.text!r} (known: {known})", metric_token)
    if op_token.kind != "op" or op_token.text not in CONDITION_OPS:
        raise fail(f"expected a comparison (>, >=, <, <=) after {metric_token.text!r}", op_token)
    if value_token.kind != "number":
        raise fail(f"expected a number after {op_token.text!r}", value_token)
    if end.kind != "end":
        raise fail("expected the end of the condition", end)
    value = float(value_token.text)
    problem = _value_problem(metric_token.text, value)
    if problem is not None:
        raise fail(problem, value_token)
    return Condition(metric_token.text, op_token.text, value)


def plain_number(value: float) -> str:
    """``60``, ``0.8``, ``0.00001``: never an exponent, which the condition lexer does not read."""
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _value_problem(metric: str, value: float) -> str | None:
    # Catch the classic slips: a percentage for a fraction, a negative wait.
    if metric == "service_level" and not 0 <= value <= 1:
        return f"service_level is a fraction from 0 to 1, got {value:g}"
    if metric == "estimated_wait" and value < 0:
        return f"estimated_wait is in seconds and cannot be negative, got {value:g}"
    return None


# ---- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeStep:
    """Applies once the caller has waited ``after`` seconds."""

    index: int
    after: float
    require: Requirement


@dataclass(frozen=True)
class MetricStep:
    """Applies while ``when`` holds for the queue's live metrics."""

    index: int
    when: Condition
    require: Requirement


Step: TypeAlias = TimeStep | MetricStep


@dataclass(frozen=True)
class Steps:
    """A validated ladder: ``steps[0]`` is a time step at 0 s, time steps strictly increase."""

    steps: tuple[Step, ...]
    # Whether any step depends on the queue's live metrics (not only on time waited).
    has_metric_steps: bool = field(init=False, compare=False, repr=False)

    _hash: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_metric_steps", any(isinstance(s, MetricStep) for s in self.steps))
        # The router keys tables by ladder on every queue change; hash the tree once.
        object.__setattr__(self, "_hash", hash(self.steps))

    def __hash__(self) -> int:
        return self._hash

    @property
    def time_steps(self) -> tuple[TimeStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, TimeStep))

    def referenced_skills(self) -> frozenset[str]:
        return frozenset().union(*(s.require.referenced_skills() for s in self.steps))


    def describe(self) -> list[str]:
        """One canonical line per step, for logs and explain output."""
        return [_describe_step(s) for s in self.steps]


def _describe_step(step: Step) -> str:
    if isinstance(step, TimeStep):
        trigger = f"after {plain_number(step.after)}s"
    else:
        trigger = f"when {step.when.describe()}"
    return f"{trigger}: {step.require.describe()}"


_STEP_KEYS = frozenset({"after", "when", "require"})


def validate_steps(
    raw: Sequence[Mapping[str, Any]], known_skills: Collection[str] | None = None
) -> Steps:
    """Check a queue's raw steps (as loaded from YAML/JSON) and parse their expressions once.

    ``known_skills`` is passed on to parse_requirement. Raises StepsError naming the step.
    """
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence) or not raw:
        raise StepsError(None, f"steps must be a non-empty list, got {raw!r}")
    steps = tuple(_step(index, item, known_skills) for index, item in enumerate(raw))
    first = steps[0]
    # Every caller needs a requirement from the moment it arrives, independent of metrics.
    if not isinstance(first, TimeStep) or first.after != 0:
        raise StepsError(0, "the first step must be 'after: 0' (the requirement callers start with)")
    previous = first
    for step in steps[1:]:
        if isinstance(step, TimeStep):
            if not step.after > previous.after:
                raise StepsError(
                    step.index,
                    f"'after' {plain_number(step.after)} must be greater than the previous "
                    f"time step's {plain_number(previous.after)} (steps[{previous.index}])",
                )
            previous = step
    return Steps(steps)


def _step(index: int, item: object, known_skills: Collection[str] | None) -> Step:
    if not isinstance(item, Mapping):
        raise StepsError(index, f"expected a mapping with 'after' or 'when', and 'require', got {item!r}")
    unknown = sorted(str(key) for key in item if key not in _STEP_KEYS)
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise StepsError(index, f"unknown key(s) {listed} (allowed: after, when, require)")
    if "after" in item and "when" in item:
        raise StepsError(index, "give either 'after' or 'when', not both")
    if "after" not in item and "when" not in item:
        raise StepsError(index, "needs 'after' (seconds waited) or 'when' (a queue condition)")
    if "require" not in item:
        raise StepsError(index, "missing 'require'")
    require = _expression(index, "require", item["require"], lambda t: parse_requirement(t, known_skills))
    if "when" in item:
        return MetricStep(index, _expression(index, "when", item["when"], parse_condition), require)
    return TimeStep(index, _seconds(index, item["after"]), require)


def _expression(index: int, key: str, text: object, parse: Callable[[str], Any]) -> Any:
    if not isinstance(text, str):
        # YAML turns `require: true` into a bool: say so rather than a confusing parse error.
        raise StepsError(index, f"'{key}' must be a string (quote it in YAML), got {text!r}")
    try:
        return parse(text)
    except RequirementError as error:
        raise StepsError(index, f"invalid '{key}': {error}") from None


def _seconds(index: int, value: object) -> float:
    # bool is an int in Python, but `after: true` is a mistake, not 1 second.
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (valid and math.isfinite(value) and value >= 0):
        raise StepsError(index, f"'after' must be a number of seconds >= 0, got {value!r}")
    return float(value)


# ---- evaluation ------------------------------------------------------------------------------


def active_step(steps: Steps, waited_seconds: float, queue_metrics: QueueMetrics) -> Step:
    """The widest step that applies: the last one in the list whose time is reached or whose
    condition holds. Exactly ``after`` seconds reaches a step."""
    return _last_applying(steps, lambda step: waited_seconds >= step.after, queue_metrics)


def active_requirement(steps: Steps, waited_seconds: float, queue_metrics: QueueMetrics) -> Requirement:
    """The requirement of ``active_step``."""
    return active_step(steps, waited_seconds, queue_metrics).require


def active_requirement_at(
    steps: Steps, enqueued_at: float, now: float, queue_metrics: QueueMetrics
) -> Requirement:
    """Like active_requirement, comparing ``enqueued_at + after <= now``: the very sum that
    next_change_at returns. Prefer this in a timer callback: ``now - enqueued_at`` can round
    below ``after`` (1000.1 + 30 - 1000.1 == 29.999999999999886), and the step would be missed
    at the moment its own timer fires."""
    return active_step_at(steps, enqueued_at, now, queue_metrics).require


def active_step_at(steps: Steps, enqueued_at: float, now: float, queue_metrics: QueueMetrics) -> Step:
    """The step active_requirement_at takes its requirement from."""
    return _last_applying(steps, lambda s: enqueued_at + s.after <= now, queue_metrics)


def next_change_at(steps: Steps, enqueued_at: float, now: float | None = None) -> float | None:
    """When the next time step is due for a caller enqueued at ``enqueued_at``: the first
    ``enqueued_at + after`` strictly later than ``now`` (default: ``enqueued_at``, i.e. the
    first step after the initial one). None once the last time step is reached. Metric steps
    have no time: the router re-evaluates them when the queue's metrics change."""
    reference = enqueued_at if now is None else now
    for step in steps.time_steps:
        due = enqueued_at + step.after
        if due > reference:
            return due
    return None


def _last_applying(
    steps: Steps, reached: Callable[[TimeStep], bool], queue_metrics: QueueMetrics
) -> Step:
    active = steps.steps[0]  # after 0: always applies
    for step in steps.steps[1:]:
        applies = reached(step) if isinstance(step, TimeStep) else step.when.holds(queue_metrics)
        if applies:
            active = step
    return active
