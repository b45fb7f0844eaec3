"""The supervisor's web side: the wallboard page (``/wallboard/``), its live channel
(``/live/wallboard``: a fresh board pushed over Server-Sent Events every ``push_seconds`` and
right after anything changes on the floor; the page never polls), and the action endpoints
(``/api/supervisor/...``), each declaring its roles and answering errors with the field named."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.web import resource, server, static

from callcenter.audit import AuditLog
from callcenter.supervisor.service import SupervisorError, SupervisorService
from callcenter.supervisor.wallboard import WallboardSettings
from callcenter.web.api import ApiError, JsonApi
from callcenter.web.auth import FLOOR, Identity
from callcenter.web.live import LiveChannel

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOPIC = "board"
# a burst of changes (a call answered: several router effects) becomes one push
CHANGE_COALESCE_SECONDS = 0.1


class SupervisorApi:
    def __init__(self, service: SupervisorService, *, board: Callable[[], dict[str, Any]],
                 staff: Callable[[server.Request], Identity | None], settings: WallboardSettings,
                 audit: AuditLog, clock=time.time):
        self.service = service
        self.board = board
        self.staff = staff
        self.settings = settings
        self.audit = audit
        self.clock = clock
        self.live = LiveChannel(self._subscribe)
        self._changed = asyncio.Event()

    def _subscribe(self, request: server.Request):
        who = self.staff(request)
        if who is None or who.role not in FLOOR:
            raise PermissionError("log in as a supervisor first")
        return TOPIC, [("board", self.board())]

    def pages(self) -> dict[bytes, resource.Resource]:
        page = static.File(str(STATIC_DIR))
        page.indexNames = ["index.html"]
        return {b"wallboard": page}

    def live_channels(self) -> dict[bytes, resource.Resource]:
        return {b"wallboard": self.live}

    # ------------------------------------------------------------------ pushing the board
    def floor_changed(self, _effect: object = None) -> None:
        """A router effect or an event: the board is pushed soon (observer of the ACD shell)."""
        self._changed.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), self.settings.push_seconds)
                await asyncio.sleep(CHANGE_COALESCE_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._changed.clear()
            if self.live.listeners(TOPIC):
                self.live.publish(TOPIC, "board", self.board())

    # ------------------------------------------------------------------ routes
    def register(self, api: JsonApi) -> None:
        api.add("GET", "/api/wallboard", lambda **_: self.board(), role=FLOOR)
        # each action writes its own audit row (who, what, to whom), before it is answered
        api.add("POST", "/api/supervisor/agents/{agent_id}/spy", self._spy, role=FLOOR, audited=True)
        for verb in ("pause", "unpause", "logout"):
            api.add("POST", "/api/supervisor/agents/{agent_id}/" + verb, self._agent_verb(verb), role=FLOOR,
                    audited=True)
        api.add("POST", "/api/supervisor/agents/{agent_id}/skills", self._skills, role=FLOOR, audited=True)
        api.add("POST", "/api/supervisor/calls/{call_id}/move", self._move, role=FLOOR, audited=True)
        api.add("POST", "/api/supervisor/calls/{call_id}/priority", self._priority, role=FLOOR, audited=True)
        api.add("GET", "/api/audit", self._audit_entries, role=FLOOR)

    async def _spy(self, who: Identity, agent_id: str, body: dict, **_) -> dict:
        """Listen to, whisper to or barge in on an agent's live call from your own phone."""
        return await _answer(self.service.spy(who, agent_id, body.get("mode", "listen")))

    def _agent_verb(self, verb: str):
        async def handler(who: Identity, agent_id: str, body: dict, **_) -> dict:
            return await _answer(self.service.agent_state(who, agent_id, verb, body.get("reason")))
        handler.__doc__ = f"{verb.capitalize()} an agent (audit-logged)."
        return handler

    async def _skills(self, who: Identity, agent_id: str, body: dict, **_) -> dict:
        """Change a logged-in agent's skill levels; the next routing decision uses them."""
        return await _answer(self.service.set_skills(who, agent_id, body.get("skills")))

    async def _move(self, who: Identity, call_id: str, body: dict, **_) -> dict:
        """Move a waiting call to another queue; it keeps its wait."""
        return await _answer(self.service.move_call(who, call_id, body.get("queue")))

    async def _priority(self, who: Identity, call_id: str, body: dict, **_) -> dict:
        """Change a waiting call's priority."""
        return await _answer(self.service.set_priority(who, call_id, body.get("priority")))

    async def _audit_entries(self, query: dict[str, str], **_) -> dict:
        """The audit log, newest first (filters: actor, action, target, since, limit)."""
        try:
            since = float(query["since"]) if "since" in query else None
            limit = min(int(query.get("limit", 200)), 1000)
        except ValueError:
            raise ApiError(400, "since is epoch seconds and limit a whole number", field="since") from None
        entries = await asyncio.to_thread(self.audit.entries, actor=query.get("actor"), action=query.get("action"),
                                          target=query.get("target"), since=since, limit=limit)
        return {"entries": [vars(e) for e in entries]}

    def close(self) -> None:
        self.live.close()


async def _answer(action) -> dict:
    try:
        return await action
    except SupervisorError as exc:
        raise ApiError(exc.status, str(exc), **exc.details) from None
