"""The engine's IVR flows, kept current while it runs (hot reload).

The flows directory is scanned (each file's size and modification time) and a changed or new
file is validated by the very loader the engine starts with, then swapped in: the engine reads
flows from one dict that is replaced whole, never edited in place. An invalid file is refused,
its problems logged and shown by ``status()``, and the last good version of that flow keeps
serving. A call holds the ``Flow`` it started with, so calls in progress finish on their version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter.ivr.flow import FLOW_SUFFIXES, Flow, FlowError, load_flow, load_flows

log = logging.getLogger(__name__)

Signature = tuple[int, int]  # (size, mtime_ns): a change in either is a change


@dataclass(frozen=True)
class FlowChange:
    """What one scan did to one file: ``loaded``, ``rejected`` or ``removed``."""

    kind: str
    flow: str
    source: str
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "flow": self.flow, "source": self.source, "problems": list(self.problems)}


def scan(directory: Path) -> dict[Path, Signature]:
    signatures = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in FLOW_SUFFIXES and path.is_file():
            stat = path.stat()
            signatures[path] = (stat.st_size, stat.st_mtime_ns)
    return signatures


class FlowLibrary:
    """The flows serving calls, and the state of every file behind them."""

    def __init__(self, directory: Path, known_queues: Callable[[], Collection[str]], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self._known_queues = known_queues
        self._clock = clock
        self._lock = threading.Lock()  # refresh() runs in a worker thread, status() on the loop
        # Everything must load at start: an engine never starts on a broken flow.
        self._flows: dict[str, Flow] = load_flows(self.directory, known_queues=known_queues())
        self._signatures = scan(self.directory)
        now = clock()
        self._status: dict[str, dict[str, Any]] = {
            name: {"flow": name, "source": flow.source, "loaded_at": now, "error": None}
            for name, flow in self._flows.items()}

    def get(self, name: str) -> Flow | None:
        return self._flows.get(name)

    def values(self) -> Iterable[Flow]:
        return self._flows.values()

    def status(self) -> list[dict[str, Any]]:
        """Per flow: the file, when its serving version was loaded, and the error that keeps a
        newer version of the file out (None if the file is what serves)."""
        with self._lock:
            return [dict(self._status[name]) for name in sorted(self._status)]

    def refresh(self) -> list[FlowChange]:
        """Scan once and apply what changed. Safe to run in a worker thread: the engine sees the
        old dict or the new one, never a half-made one."""
        with self._lock:
            changes = self._apply(scan(self.directory))
        for change in changes:  # logged outside the lock
            if change.kind == "rejected":
                log.error("flow %s not reloaded, the previous version keeps serving:\n%s",
                          change.source, "\n".join(change.problems))
            else:
                log.info("flow %s %s (%s)", change.flow, change.kind, change.source)
        return changes

    def _apply(self, current: dict[Path, Signature]) -> list[FlowChange]:
        changes: list[FlowChange] = []
        flows = dict(self._flows)
        for path in sorted(set(self._signatures) - set(current)):
            name, source = path.stem, str(path)
            if name in flows and flows[name].source == source:
                del flows[name]
                changes.append(FlowChange("removed", name, source))
            if self._status.get(name, {}).get("source") == source:
                del self._status[name]
        for path, signature in current.items():
            if self._signatures.get(path) != signature:
                changes.append(self._load(path, flows))
        self._flows = flows  # one reference swap
        self._signatures = current
        return changes

    def _load(self, path: Path, flows: dict[str, Flow]) -> FlowChange:
        name, source = path.stem, str(path)
        other = flows.get(name)
        if other is not None and other.source != source:
            problem = f"{source}: flow {name!r} is already defined by {other.source}"
            return self._rejected(name, source, [problem])
        try:
            flow = load_flow(path, known_queues=self._known_queues())
        except FlowError as exc:
            return self._rejected(name, source, [str(p) for p in exc.problems])
        flows[name] = flow
        self._status[name] = {"flow": name, "source": source, "loaded_at": self._clock(), "error": None}
        return FlowChange("loaded", name, source)

    def _rejected(self, name: str, source: str, problems: list[str]) -> FlowChange:
        entry = self._status.setdefault(name, {"flow": name, "source": source, "loaded_at": None})
        entry["error"] = "\n".join(problems)
        return FlowChange("rejected", name, source, tuple(problems))
