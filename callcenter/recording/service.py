"""The recordings' files and their index together: indexing a call's WAV when it ends, finding a
recording's file safely, and the retention purge (file and row go together, or neither does).

Synchronous where it touches the disk or the database; the engine runs those in a worker thread
(:meth:`RecordingService.index_when_ready` does it itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.audit import AuditLog
from callcenter.recording.model import (
    RECORDING_ID,
    Recording,
    RecordingsSettings,
    due_for_purge,
    normalize_pci_spans,
)
from callcenter.recording.store import RecordingStore

log = logging.getLogger(__name__)

PURGE_PAGE = 500


class RecordingPathError(ValueError):
    """A recording's file name points outside the recordings folder: it is never served or deleted."""


@dataclass(frozen=True)
class WavFacts:
    duration: float  # seconds of audio
    size_bytes: int


def read_wav(path: Path) -> WavFacts | None:
    """The length and size of a finished PCM WAV; None if it is missing, not a PCM WAV, or still
    being written: Asterisk writes the RIFF sizes as 0 first and fills them in when it closes the
    file, so a header that does not account for the file's bytes means "not finished yet"."""
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            riff = stream.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return None
            declared = int.from_bytes(riff[4:8], "little") + 8
            if not declared <= size <= declared + 1:  # + 1: a pad byte some writers leave out
                return None
            stream.seek(0)
            with wave.open(stream) as audio:
                frames, rate = audio.getnframes(), audio.getframerate()
    except (OSError, EOFError, wave.Error):
        return None
    if rate <= 0:
        return None
    return WavFacts(duration=frames / rate, size_bytes=size)


@dataclass
class PurgeReport:
    """What a purge removed (or, dry run, would remove)."""

    dry_run: bool
    removed: int = 0                   # rows removed, missing files' rows included
    files_removed: int = 0
    bytes_freed: int = 0
    missing: list[str] = field(default_factory=list)   # ids whose file was already gone (row removed)
    errors: list[dict[str, str]] = field(default_factory=list)  # {id, file, error}: row KEPT
    by_queue: dict[str, int] = field(default_factory=dict)     # rows removed per queue ("" : none)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "removed": self.removed, "files_removed": self.files_removed,
                "bytes_freed": self.bytes_freed, "missing": list(self.missing), "errors": list(self.errors),
                "by_queue": dict(self.by_queue)}


class RecordingService:
    def __init__(self, store: RecordingStore, recordings_dir: Path, settings: RecordingsSettings,
                 audit: AuditLog, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.recordings_dir = Path(recordings_dir)
        self.settings = settings
        self.audit = audit
        self.clock = clock

    # ---- files
    def path_of(self, recording: Recording) -> Path:
        """The recording's file, resolved (symbolic links followed); RecordingPathError if that
        is not inside the recordings folder."""
        root = self.recordings_dir.resolve()
        path = (root / recording.file).resolve()
        if not path.is_relative_to(root) or path == root:
            raise RecordingPathError(f"recording {recording.id}: file {recording.file!r} is outside {root}")
        return path

    # ---- indexing
    def index_call(self, call_id: str, *, agent_id: str | None, queue: str | None, customer: str | None,
                   customer_name: str | None, direction: str | None, started_at: float, ended_at: float,
                   pci_spans: Iterable[Sequence[float | None]] = (), part: str | None = None) -> dict | None:
        """Index ``<recordings_dir>/<call_id>.wav`` (``<call_id>-<part>.wav`` for a call's further
        files, id ``<call_id>-<part>``): its length from the file, the call's facts from the
        engine. ``started_at``: when the recording started (the agent bridged); ``pci_spans``:
        (start, end) seconds from then, end None if still paused at the end. None while the file
        is missing or unfinished: call again a little later. Indexing twice keeps one row."""
        recording_id = call_id if part is None else f"{call_id}-{part}"
        if not RECORDING_ID.match(recording_id):
            raise ValueError(f"recording id {recording_id!r}: letters, digits, '_', '-' and '.' only")
        file_name = f"{recording_id}.wav"
        facts = read_wav(self.recordings_dir / file_name)
        if facts is None:
            return None
        recording = Recording(
            id=recording_id, call_id=call_id, agent_id=agent_id, queue=queue, customer=customer,
            customer_name=customer_name, direction=direction, started_at=started_at, ended_at=ended_at,
            duration=facts.duration, file=file_name, size_bytes=facts.size_bytes, indexed_at=self.clock(),
            pci_spans=normalize_pci_spans(pci_spans, facts.duration))
        self.store.upsert(recording)
        log.info("recording %s indexed: %.1f s, %d bytes", recording_id, facts.duration, facts.size_bytes)
        return recording.to_json()

    async def index_when_ready(self, call_id: str, *, attempts: int = 10, delay: float = 0.5,
                               **facts: Any) -> dict | None:
        """:meth:`index_call` off the loop, again every ``delay`` seconds until the file is there
        and finished (MixMonitor closes it a moment after the hang-up); a warning if it never is."""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(delay)
            indexed = await asyncio.to_thread(self.index_call, call_id, **facts)
            if indexed is not None:
                return indexed
        log.warning("recording of call %s: no finished WAV in %s after %d tries; not indexed",
                    call_id, self.recordings_dir, attempts)
        return None

    # ---- retention
    def purge(self, *, actor: str | None = None, now: float | None = None, dry_run: bool = False) -> PurgeReport:
        """Remove the recordings the retention policy lets go: the file first, then its row. A file
        that cannot be removed (or whose name leaves the recordings folder) keeps its row and is
        reported; a file already gone has its row removed and is reported as missing. A real
        purge by ``actor`` is written to the audit log with its counts."""
        now = self.clock() if now is None else now
        policy = self.settings.retention
        report = PurgeReport(dry_run=dry_run)
        horizon = policy.latest_cutoff(now)
        if horizon is None:
            return report
        by_queue: Counter[str] = Counter()
        after: tuple[float, str] | None = None
        while page := self.store.started_before(horizon, after=after, limit=PURGE_PAGE):
            after = (page[-1].started_at, page[-1].id)
            gone = [r for r in due_for_purge(page, policy, now) if self._remove_file(r, report, dry_run)]
            if not dry_run:
                self.store.delete([r.id for r in gone])
            report.removed += len(gone)
            by_queue.update(r.queue or "" for r in gone)
        report.by_queue = dict(sorted(by_queue.items()))
        if report.removed or report.errors:
            log.info("recordings purge%s: %d removed (%d files, %d bytes), %d missing, %d errors",
                     " (dry run)" if dry_run else "", report.removed, report.files_removed, report.bytes_freed,
                     len(report.missing), len(report.errors))
        if actor is not None and not dry_run:
            self.audit.record(actor, "recordings_purged", "recordings", removed=report.removed,
                              files_removed=report.files_removed, bytes_freed=report.bytes_freed,
                              missing=len(report.missing), errors=len(report.errors), by_queue=report.by_queue)
        return report

    def _remove_file(self, recording: Recording, report: PurgeReport, dry_run: bool) -> bool:
        """Delete one due recording's file and count it; whether its row may go too."""
        try:
            path = self.path_of(recording)
            size = path.stat().st_size
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            report.missing.append(recording.id)
            return True
        except (OSError, RecordingPathError) as exc:
            log.error("recordings purge: keeping %s: %s", recording.id, exc)
            report.errors.append({"id": recording.id, "file": recording.file,
                                  "error": exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)})
            return False
        report.files_removed += 1
        report.bytes_freed += size
        return True

