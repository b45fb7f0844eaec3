"""What the ACD core reasons about (agents, calls and their states) and what it answers with
(effects). Plain data only; every rule about how these change lives in ``router``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeAlias


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


# Offer failures the shell may report; each becomes the agent's pause reason and an event kind.
OFFER_FAILURE_REASONS: frozenset[str] = frozenset({"ring-no-answer", "busy", "unreachable"})


# Agents and calls are entities that change in place: compare them by identity, not by fields.
@dataclass(eq=False)
class Agent:
    """An agent as the router sees it. Read it freely; change it only through the Router."""

    agent_id: str
    skills: frozenset[str]
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = 0.0
    # When the agent last became available; ringing without an answer does not reset it.
    idle_since: float | None = None
    calls_answered: int = 0
    pause_reason: str | None = None
    # The call the agent is ringing for, talking to, or wrapping up after.
    call_id: str | None = None
    offer_id: str | None = None


@dataclass(eq=False)
class Call:
    """A caller handed to the ACD. Read it freely; change it only through the Router."""

    call_id: str
    queue: str
    priority: int
    enqueued_at: float
    # Arrival order at the router: the final, always-distinct tie-break between callers.
    sequence: int
    attrs: dict[str, Any] = field(default_factory=dict)
    state: CallState = CallState.WAITING
    agent_id: str | None = None
    offer_id: str | None = None
    offers_made: int = 0
    answered_at: float | None = None


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
class StartTimer:
    """Call back into the router at ``at``. A timer with the same key replaces the pending one."""

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


Effect: TypeAlias = Offer | CancelOffer | StartTimer | Event
