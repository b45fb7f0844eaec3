"""A queue's live figures that routing rules and announcements use: estimated wait and recent
service level. Pure and incremental: the router feeds in each outcome, nothing is recomputed
from history. The model is documented in docs/skills.md ("Estimated wait and service level").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# How many recent calls the figures look back over. Counting calls, not minutes, keeps them
# event-driven: they change only when a call ends, so no timer has to slide a window.
HANDLE_WINDOW = 50
SERVICE_LEVEL_WINDOW = 100
# A caller who hangs up within this many seconds never had a real chance to be served: their
# call counts neither for nor against the service level (the usual "short abandon").
SHORT_ABANDON_SECONDS = 5.0


@dataclass
class QueueStats:
    """Rolling figures for one queue."""

    initial_handle_seconds: float
    service_level_seconds: float
    _handles: deque[float] = field(default_factory=lambda: deque(maxlen=HANDLE_WINDOW))
    _handle_total: float = 0.0
    _outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=SERVICE_LEVEL_WINDOW))
    _met: int = 0

    def handled(self, seconds: float) -> None:
        """A call's handle time (talk plus the wrap-up that follows it)."""
        if len(self._handles) == self._handles.maxlen:
            self._handle_total -= self._handles[0]
        self._handles.append(seconds)
        self._handle_total += seconds

    def answered(self, waited: float) -> None:
        self._outcome(waited <= self.service_level_seconds)  # the boundary counts as met

    def abandoned(self, waited: float) -> None:
        if waited > SHORT_ABANDON_SECONDS:
            self._outcome(False)

    def missed(self) -> None:
        """The caller left the queue unanswered without hanging up (e.g. it overflowed)."""
        self._outcome(False)

    def _outcome(self, met: bool) -> None:
        if len(self._outcomes) == self._outcomes.maxlen:
            self._met -= self._outcomes[0]
        self._outcomes.append(met)
        self._met += met

    @property
    def average_handle(self) -> float:
        """Mean handle time of the recent calls, or the configured guess before the first one."""
        if not self._handles:
            return self.initial_handle_seconds
        return self._handle_total / len(self._handles)

    @property
    def service_level(self) -> float | None:
        """Fraction of the recent answered-or-abandoned calls answered in time; None: no calls."""
        if not self._outcomes:
            return None
        return self._met / len(self._outcomes)

    def estimated_wait(self, position: int, staffed: int, available: int) -> float | None:
        """Seconds until the caller at ``position`` (1 = next) is offered to an agent.

        The first ``available`` positions go at once. Beyond them, each of the ``staffed``
        agents frees up once per average handle time, so position p waits for the
        (p - available)-th release: (p - available) x AHT / staffed. None when nobody is
        staffed: no estimate rather than a made-up one.
        """
        if position <= available:
            return 0.0
        if staffed <= 0:
            return None
        return (position - available) * self.average_handle / staffed
