"""Recordings, pure: the settings (retention, who may play and export), the ``Recording`` record,
which recordings a retention policy lets go, PCI-pause spans and the time parameters of searches.

No I/O and no clock: every function that needs the time takes ``now`` (epoch seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timezone
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callcenter.kpi.reports import ReportParamError, parse_moment
from callcenter.web.auth import STAFF_ROLES, Role

DAY = 86400.0
# What an id may look like: the web router's {path} groups match this and nothing else, and a
# file named after it cannot leave its folder (no '/', no leading '.').
RECORDING_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,95}$")
DIRECTIONS = ("inbound", "outbound", "callback")

Days = Annotated[int, Field(ge=1)]


class RetentionPolicy(BaseModel):
    """How long recordings are kept, by the queue of the call: ``queues`` overrides
    ``default_days`` for the queues it names; ``None`` keeps a queue's recordings forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_days: Days | None = Field(90, description="days a recording is kept; null: forever")
    queues: dict[str, Days | None] = Field(default_factory=dict, description="per-queue days (null: forever)")

    def days_for(self, queue: str | None) -> int | None:
        if queue is not None and queue in self.queues:
            return self.queues[queue]
        return self.default_days

    def cutoff_for(self, queue: str | None, now: float) -> float | None:
        """Recordings of ``queue`` that started before this moment are due; None: never."""
        days = self.days_for(queue)
        return None if days is None else now - days * DAY

    def latest_cutoff(self, now: float) -> float | None:
        """The latest cutoff over all queues (the shortest retention): no recording started at or
        after it is due, whatever its queue. None: every queue keeps forever."""
        cutoffs = [c for c in (self.cutoff_for(q, now) for q in (None, *self.queues)) if c is not None]
        return max(cutoffs, default=None)


class RecordingPermissions(BaseModel):
    """Which staff roles may listen to recordings and which may download them (export). Search and
    the recordings' details are open to every staff role; an empty list lets nobody do it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    playback: tuple[Role, ...] = (Role.SUPERVISOR, Role.QA, Role.ADMIN)
    export: tuple[Role, ...] = (Role.ADMIN,)

    @field_validator("playback", "export")
    @classmethod
    def _staff_only(cls, roles: tuple[Role, ...]) -> tuple[Role, ...]:
        staff = [r.value for r in STAFF_ROLES]
        for role in roles:
            if role not in STAFF_ROLES:
                raise ValueError(f"{role.value!r} is not a staff role (one of {staff})")
        if len(set(roles)) != len(roles):
            raise ValueError(f"a role is listed more than once: {[r.value for r in roles]}")
        return roles


class RecordingsSettings(BaseModel):
    """The ``recordings:`` section of the settings file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    permissions: RecordingPermissions = Field(default_factory=RecordingPermissions)


@dataclass(frozen=True)
class Recording:
    """One recorded file of a call, as the index keeps it. Times are epoch seconds; ``duration`` is
    the audio's length read from the file; ``file`` is relative to the recordings folder;
    ``pci_spans`` are the muted (PCI-paused) stretches, as (start, end) seconds from the file's
    start."""

    id: str
    call_id: str
    agent_id: str | None
    queue: str | None
    customer: str | None
    customer_name: str | None
    direction: str | None
    started_at: float
    ended_at: float
    duration: float
    file: str
    size_bytes: int
    indexed_at: float
    pci_spans: tuple[tuple[float, float], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"pci_spans": [list(span) for span in self.pci_spans]}


def due_for_purge(rows: Iterable[Recording], policy: RetentionPolicy, now: float) -> list[Recording]:
    """The rows whose queue's retention has run out: started before now - days (the queue's own
    days, else the default); queues kept forever never are."""
    due = []
    for row in rows:
        cutoff = policy.cutoff_for(row.queue, now)
        if cutoff is not None and row.started_at < cutoff:
            due.append(row)
    return due


def normalize_pci_spans(spans: Iterable[Sequence[float | None]], duration: float) -> tuple[tuple[float, float], ...]:
    """PCI-pause spans as stored: (start, end) seconds from the file's start, sorted, overlapping
    ones merged, clipped to the audio. An end of None (still paused when the call ended) runs to
    the end of the file; spans wholly outside the audio are dropped."""
    cleaned: list[tuple[float, float]] = []
    for span in spans:
        if len(span) != 2:
            raise ValueError(f"a PCI span is (start, end), not {tuple(span)!r}")
        start, end = span
        end = duration if end is None else end
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"PCI span ({start}, {end}): start and end must be numbers, start <= end")
        start, end = max(start, 0.0), min(end, duration)
        if start < end:
            cleaned.append((start, end))
    merged: list[tuple[float, float]] = []
    for start, end in sorted(cleaned):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def parse_when(text: str, tz: ZoneInfo | timezone = timezone.utc, name: str = "time") -> float:
    """A moment given by a person or a script: epoch seconds (``1709280000``), an ISO date
    (``2024-03-01``, midnight in ``tz``) or date-time (``2024-03-01T08:30``, in ``tz`` unless it has
    an offset). ValueError naming ``name`` otherwise."""
    text = text.strip()
    try:
        epoch = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(epoch) or epoch < 0:
            raise ValueError(f"{name}: {text!r} is not a moment (epoch seconds must be a positive number)")
        return epoch
    try:
        return parse_moment(text, tz, name)
    except (ReportParamError, OverflowError, OSError, ValueError):
        raise ValueError(f"{name}: {text!r} is not a date (2024-03-01), a date-time (2024-03-01T08:30, "
                         "optionally with an offset) or epoch seconds") from None
