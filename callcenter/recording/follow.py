"""Follows calls to their end and indexes their recording: the ACD's ``answered`` (the agent
bridged, MixMonitor started) and ``ended`` effects say when, the router's call says who and
what, and the event log's ``recording_paused`` / ``recording_resumed`` say which spans are
silence (PCI). Indexing runs in the background once MixMonitor has closed the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callcenter.acd.model import Event
from callcenter.recording.service import RecordingService
from callcenter.runtime import BackgroundTasks

KEPT_CALLS = 10_000  # calls being followed at once, at most (a lost `ended` must not grow memory)


@dataclass
class _Followed:
    facts: dict[str, Any]
    started_at: float
    paused: list[list[float | None]] = field(default_factory=list)  # [start, end] epoch seconds


def direction_of(attrs: dict[str, Any]) -> str:
    if attrs.get("campaign"):
        return "outbound"
    dial_out = attrs.get("dial_out")
    if dial_out:
        return "callback" if dial_out.get("kind") == "callback" else "outbound"
    return "inbound"


class RecordingFollower:
    def __init__(self, service: RecordingService, router):
        self.service = service
        self.router = router
        self._calls: dict[str, _Followed] = {}
        self._tasks = BackgroundTasks()

    def on_effect(self, effect: object) -> None:
        """ACD shell observer."""
        if not isinstance(effect, Event) or not effect.call_id:
            return
        if effect.kind == "answered":
            call = self.router.call(effect.call_id)
            attrs = call.attrs if call is not None else {}
            if len(self._calls) >= KEPT_CALLS:
                self._calls.pop(next(iter(self._calls)))
            self._calls[effect.call_id] = _Followed(
                {"agent_id": effect.agent_id, "queue": effect.queue, "customer": attrs.get("caller_number") or None,
                 "customer_name": attrs.get("caller_name") or None, "direction": direction_of(attrs)},
                started_at=self.service.clock())
        elif effect.kind == "ended":
            followed = self._calls.pop(effect.call_id, None)
            if followed is not None:
                start = followed.started_at
                spans = [(s - start, None if e is None else e - start) for s, e in followed.paused]
                self._tasks.spawn(self.service.index_when_ready(
                    effect.call_id, started_at=start, ended_at=self.service.clock(), pci_spans=spans,
                    **followed.facts), f"index recording {effect.call_id}")

    def on_event(self, row: dict) -> None:
        """Event log listener: the PCI pauses of a followed call."""
        followed = self._calls.get(row.get("call_id") or "")
        if followed is None:
            return
        if row["kind"] == "recording_paused":
            followed.paused.append([row["ts"], None])
        elif row["kind"] == "recording_resumed" and followed.paused and followed.paused[-1][1] is None:
            followed.paused[-1][1] = row["ts"]

    async def close(self) -> None:
        await self._tasks.close()
