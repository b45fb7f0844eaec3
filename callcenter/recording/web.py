"""Recordings on the web: search and details for staff, playback and export for the roles the
settings allow (each audited before the file is sent), and the retention purge for admins."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from callcenter.recording.model import Recording, RecordingPermissions, parse_when
from callcenter.recording.service import RecordingPathError, RecordingService
from callcenter.recording.store import MAX_SEARCH_LIMIT
from callcenter.web.api import ApiError, FileReply, JsonApi
from callcenter.web.auth import STAFF_ROLES, Identity, Role

log = logging.getLogger(__name__)

# A browser plays one recording with several Range requests (and again on every seek): one
# "recording_played" audit row per person and recording within this many seconds.
PLAYBACK_AUDIT_WINDOW = 60.0
DEFAULT_PAGE = 100
WAV = "audio/wav"


class RecordingApi:
    def __init__(self, service: RecordingService, permissions: RecordingPermissions, *, time_zone: str = "UTC",
                 clock: Callable[[], float] = time.monotonic):
        """``time_zone``: how dates without an offset in ``from``/``to`` are read (the settings'
        time_zone)."""
        self.service = service
        self.permissions = permissions
        self.zone = ZoneInfo(time_zone)
        self.clock = clock
        self._last_played: dict[tuple[str, str], float] = {}  # (actor, recording id) -> when audited

    def register(self, api: JsonApi) -> None:
        api.add("GET", "/api/recordings", self._search, role=STAFF_ROLES)
        api.add("GET", "/api/recordings/{rec_id}", self._details, role=STAFF_ROLES)
        api.add("GET", "/api/recordings/{rec_id}/audio", self._audio, role=self.permissions.playback)
        api.add("GET", "/api/recordings/{rec_id}/download", self._download, role=self.permissions.export)
        api.add("POST", "/api/recordings/purge", self._purge, role=Role.ADMIN, audited=True)

    async def _search(self, query: dict[str, str], **_) -> dict:
        since, until = (self._moment(query, name) for name in ("from", "to"))
        limit = self._whole_number(query, "limit", DEFAULT_PAGE, 1, MAX_SEARCH_LIMIT)
        offset = self._whole_number(query, "offset", 0, 0, None)
        rows, total = await asyncio.to_thread(
            self.service.store.search, agent_id=query.get("agent") or None, queue=query.get("queue") or None,
            customer=query.get("customer") or None, call_id=query.get("call") or None, since=since, until=until,
            limit=limit, offset=offset)
        return {"recordings": [row.to_json() for row in rows], "total": total}

    async def _details(self, rec_id: str, **_) -> dict:
        return (await self._recording(rec_id)).to_json()

    async def _audio(self, who: Identity, rec_id: str, **_) -> FileReply:
        recording = await self._recording(rec_id)
        path = self._file(recording)
        key, now = (who.actor, recording.id), self.clock()
        self._last_played = {k: t for k, t in self._last_played.items() if now - t < PLAYBACK_AUDIT_WINDOW}
        if key not in self._last_played:
            self._last_played[key] = now  # before the write: parallel Range requests audit once
            try:
                await self._audit(who, "recording_played", recording)
            except BaseException:
                del self._last_played[key]
                raise
        return FileReply(path, WAV)

    async def _download(self, who: Identity, rec_id: str, **_) -> FileReply:
        recording = await self._recording(rec_id)
        path = self._file(recording)
        await self._audit(who, "recording_exported", recording)  # every copy that leaves is written down
        return FileReply(path, WAV, download_name=f"{recording.call_id}.wav")

    async def _purge(self, who: Identity, body: dict, **_) -> dict:
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ApiError(400, "dry_run must be true or false", field="dry_run")
        report = await asyncio.to_thread(self.service.purge, actor=who.actor, dry_run=dry_run)
        return report.to_json()

    # ---- shared
    async def _recording(self, rec_id: str) -> Recording:
        recording = await asyncio.to_thread(self.service.store.get, rec_id)
        if recording is None:
            raise ApiError(404, f"no recording {rec_id}")
        return recording

    def _file(self, recording: Recording) -> Path:
        """The file to send, checked before anything is audited: a recording whose file is gone
        is not "played"."""
        try:
            path = self.service.path_of(recording)
        except RecordingPathError as exc:
            log.error("refusing to serve %s", exc)
            raise ApiError(500, f"recording {recording.id}: its file is outside the recordings folder") from None
        if not path.is_file():
            raise ApiError(404, f"recording {recording.id}: the file {recording.file} is no longer on disk")
        return path

    async def _audit(self, who: Identity, action: str, recording: Recording) -> None:
        await asyncio.to_thread(self.service.audit.record, who.actor, action, f"recording:{recording.id}",
                                call_id=recording.call_id)

    def _moment(self, query: dict[str, str], name: str) -> float | None:
        text = query.get(name)
        if not text:
            return None
        try:
            return parse_when(text, self.zone, name)
        except ValueError as exc:
            raise ApiError(400, str(exc), field=name) from None

    @staticmethod
    def _whole_number(query: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
        text = query.get(name)
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f"{low} or more"
            raise ApiError(400, f"{name}: {text!r} is not a whole number {bounds}", field=name)
        return value
