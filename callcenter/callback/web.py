"""Callbacks on the web: the public request endpoint behind the embeddable form (validated,
rate-limited per number), the ops endpoints to list and cancel, and the form's two files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from pathlib import Path

from twisted.web import resource, static

from callcenter.acd.router import RoutingError
from callcenter.callback.model import (
    CallbackPolicy,
    CallbackRateLimited,
    CallbackRequestError,
    receipt,
    request_number,
    validate_web_request,
)
from callcenter.callback.service import CallbackService
from callcenter.callback.store import CallbackStore
from callcenter.web.api import ApiError, JsonApi
from callcenter.web.auth import Role

STATIC_DIR = Path(__file__).parent / "static"
# The form's page may run its own script and talk to this server only.
FORM_CSP = (b"default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
            b"form-action 'none'; base-uri 'none'")


class _Page(static.File):
    def render_GET(self, request):
        request.setHeader(b"content-security-policy", FORM_CSP)
        request.setHeader(b"x-content-type-options", b"nosniff")
        return super().render_GET(request)


class CallbackApi:
    def __init__(self, service: CallbackService, store: CallbackStore, policy: CallbackPolicy,
                 known_queues: Callable[[], Collection[str]], *, clock=time.time):
        self.service = service
        self.store = store
        self.policy = policy
        self.known_queues = known_queues
        self.clock = clock

    def pages(self) -> dict[bytes, resource.Resource]:
        folder = resource.Resource()
        folder.putChild(b"form", _Page(str(STATIC_DIR / "form.html"), defaultType="text/html; charset=utf-8"))
        folder.putChild(b"form.js", _Page(str(STATIC_DIR / "form.js"), defaultType="text/javascript"))
        return {b"callback": folder}

    def register(self, api: JsonApi) -> None:
        api.add("POST", "/api/public/callbacks", self._request, role=Role.PUBLIC)
        api.add("POST", "/api/callbacks", self._request, role=Role.ADMIN)
        api.add("GET", "/api/callbacks", self._search, role=Role.ADMIN)
        api.add("POST", "/api/callbacks/{callback_id}/cancel", self._cancel, role=Role.ADMIN)

    async def _request(self, body: dict, **_) -> dict:
        now = self.clock()
        try:
            number = request_number(body, self.policy)
            recent = await asyncio.to_thread(self.store.recent_count, number, self.policy.rate_limit_since(now))
            request = validate_web_request(body, policy=self.policy, known_queues=self.known_queues(), now=now,
                                           recent_requests_for_number=recent)
        except CallbackRateLimited as exc:
            raise ApiError(429, exc.message) from None
        except CallbackRequestError as exc:
            raise ApiError(400, exc.message, field=exc.field) from None
        callback = await asyncio.to_thread(self.store.add_web, request, self.policy, now)
        await self.service.add_web(callback, request.deferred_to_opening)
        return receipt(callback, deferred_to_opening=request.deferred_to_opening)

    async def _search(self, query: dict, **_) -> list[dict]:
        rows = await asyncio.to_thread(self.store.search, query.get("status") or None, query.get("queue") or None)
        return [receipt(row) | {"call_id": row.call_id, "source": row.source, "attempts": row.attempts,
                                "last_outcome": row.last_outcome, "agent_id": row.agent_id} for row in rows]

    async def _cancel(self, callback_id: str, **_) -> dict:
        if not callback_id.isdigit():
            raise ApiError(400, "callback_id must be a number")
        try:
            callback = await self.service.cancel(int(callback_id))
        except RoutingError as exc:
            raise ApiError(409, str(exc)) from None
        if callback is None:
            raise ApiError(404, f"no callback {callback_id}")
        return receipt(callback)
