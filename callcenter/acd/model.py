"""What the ACD core reasons about (queues, agents, calls and their states) and what it answers
with (effects). Plain data only; every rule about how these change lives in ``router``."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from callcenter.acd.requirements import Requirement
from callcenter.acd.steps import Steps, validate_steps


class RoutingError(Exception):
    """The router refused a command (unknown queue or agent, or not allowed in the agent's state).

    Raised only for commands someone chose to send (enqueue, login, pause, ...); stale events
    from Asterisk or timers are ignored instead, because they race with the router by nature.
    """


class AgentState(str, enum.Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"  # the agent's phone is ringing with exactly one offer
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class CallState(str, enum.Enum):
    WAITING = "waiting"  # in its queue, no offer outstanding
    RINGING = "ringing"  # one offer outstanding; the caller still hears hold music
    CONNECTED = "connected"
    # Another engine sharing the queues (through Redis) holds an offer for it or is connected to
    # it: not offered here until that engine lets it go.
    ELSEWHERE = "elsewhere"


# Offer failures the shell may report; each becomes the agent's pause reason and an event kind.
OFFER_FAILURE_REASONS: frozenset[str] = frozenset({"ring-no-answer", "busy", "unreachable"})


class Strategy(str, enum.Enum):
    """Which eligible available agent a queue's caller is offered to."""

    LONGEST_IDLE = "longest-idle"  # the agent who has waited longest since their last call
    FEWEST_CALLS = "fewest-calls"  # fewest calls answered today, then longest idle
    LEAST_TALK_TIME = "least-talk-time"  # least talk time today, then longest idle
    ROUND_ROBIN = "round-robin"  # the next agent after the queue's last offer, in agent id order
    BEST_PROFICIENCY = "best-proficiency"  # highest proficiency score for the step, then longest idle
    RANDOM_WEIGHTED = "random-weighted"  # at random, in proportion to each agent's weight


class MaxWaitAction(str, enum.Enum):
    """Where a caller goes once it has waited a queue's max_wait."""

    OVERFLOW = "overflow"  # into another queue, keeping its original enqueue time
    VOICEMAIL = "voicemail"  # the queue's voicemail box
    FALLBACK = "fallback"  # Asterisk's own app_queue ringing every agent


@dataclass(frozen=True)
class MaxWait:
    seconds: float
    action: MaxWaitAction
    target: str | None = None  # the overflow queue

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise RoutingError(f"max_wait seconds must be positive, got {self.seconds!r}")
        if (self.action is MaxWaitAction.OVERFLOW) != (self.target is not None):
            raise RoutingError("max_wait needs a target queue for 'overflow', and only for it")


# Every agent of the queue, whatever their skills: the default requirement.
ANY_AGENT = validate_steps([{"after": 0, "require": "true"}])


@dataclass(frozen=True)
class QueueConfig:
    """A queue's routing rules. ``weight`` is added to every caller's priority in this queue,
    so an agent serving several queues prefers the heavier queue's callers."""

    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    steps: Steps = ANY_AGENT
    weight: int = 0
    service_level_target: float = 0.8  # fraction of calls answered within service_level_seconds
    service_level_seconds: float = 20.0
    max_wait: MaxWait | None = None
    # What the estimated wait assumes per call until the queue has handled calls of its own.
    initial_handle_seconds: float = 180.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise RoutingError(f"queue name {self.name!r} must be a non-empty string")
        if not 0 < self.service_level_target <= 1:
            raise RoutingError(f"queue {self.name}: service_level_target is a fraction in (0, 1]")
        if not self.service_level_seconds > 0 or not self.initial_handle_seconds > 0:
            raise RoutingError(f"queue {self.name}: service_level_seconds and initial_handle_seconds must be > 0")
        if self.max_wait is not None and self.max_wait.target == self.name:
            raise RoutingError(f"queue {self.name}: max_wait cannot overflow into the queue itself")


# Agents and calls are entities that change in place: compare them by identity, not by fields.
@dataclass(eq=False, slots=True)
class Agent:
    """An agent as the router sees it. Read it freely; change it only through the Router."""

    agent_id: str
    queues: frozenset[str]
    skills: Mapping[str, int]
    # Sort key for agent ids: extensions compare as numbers ("999" < "1001").
    id_order: tuple[int, int, str]
    wrapup_seconds: float | None = None  # None: the router's default
    weight: float = 1.0  # share of calls under the random-weighted strategy
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = 0.0
    # When the agent last became available; ringing without an answer does not reset it.
    idle_since: float | None = None
    calls_answered: int = 0
    pause_reason: str | None = None
    # The call the agent is ringing for, talking to, or wrapping up after.
    call_id: str | None = None
    offer_id: str | None = None
    consecutive_no_answers: int = 0
    # Today's figures for the fewest-calls and least-talk-time strategies; `day` says which day.
    day: int | None = None
    calls_today: int = 0
    talk_today: float = 0.0
    wrapup_today: float = 0.0  # after-call work, for the wallboard's handling time


@dataclass(eq=False, slots=True)
class Call:
    """A caller handed to the ACD. Read it freely; change it only through the Router."""

    call_id: str
    queue: str
    priority: int
    # When the caller first queued: their place in line, kept through overflow and reloads.
    enqueued_at: float
    # Arrival order at the router: the final, always-distinct tie-break between callers.
    sequence: int
    steps: Steps
    # When the caller entered its current queue: the clock its widening steps and max_wait run on.
    queue_entered_at: float
    steps_overridden: bool = False  # the steps came with the call (IVR), not from the queue
    max_wait_override: MaxWait | None = None  # the call's own max wait (IVR), in its first queue
    step_index: int = 0
    order_key: tuple = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    state: CallState = CallState.WAITING
    agent_id: str | None = None
    offer_id: str | None = None
    offers_made: int = 0
    answered_at: float | None = None
    max_wait_due: bool = False  # max_wait passed while the call was ringing an agent

    @property
    def requirement(self) -> Requirement:
        return self.steps.steps[self.step_index].require


@dataclass(frozen=True)
class Offer:
    """Ring ``agent_id``'s phone for ``call_id``; report back with offer_answered/offer_failed.

    ``offer_id`` is unique per call and deterministic, so the shell can use it as an
    idempotency key (a retried effect must not ring the phone twice).
    """

    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    ring_timeout: float


@dataclass(frozen=True)
class CancelOffer:
    """Stop ringing: the offer was withdrawn (caller gone, agent logged out or paused)."""

    offer_id: str
    call_id: str
    agent_id: str


@dataclass(frozen=True)
class Divert:
    """Send the caller out of the ACD to ``destination`` (a MaxWaitAction other than overflow)."""

    call_id: str
    queue: str
    destination: str
    attrs: Mapping[str, Any] = field(default_factory=dict)  # the call's, since it has left the router


@dataclass(frozen=True)
class StartTimer:
    """Call ``Router.timer_fired(key, now)`` at ``at``. A timer with the same key replaces the
    pending one; a timer that fires for something already over is ignored by the router."""

    key: str
    at: float


@dataclass(frozen=True)
class Event:
    """Something that happened, for the event log, statistics and live views."""

    kind: str
    call_id: str | None = None
    queue: str | None = None
    agent_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Effect: TypeAlias = Offer | CancelOffer | Divert | StartTimer | Event
