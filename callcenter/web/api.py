"""JSON API resources. Each route is a small function of (request body) -> JSON-able result, and
declares who may call it (callcenter.web.auth.Role); the router refuses everyone else."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twisted.web import resource, server, static
from twisted.web.util import Redirect

from callcenter.web.auth import STAFF_ROLES, Identity, Role

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, **details: object):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details  # more fields of the error body, e.g. the request field it is about


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[..., object]
    roles: frozenset[Role]
    audited: bool = False  # the handler writes its own, richer audit rows


@dataclass(frozen=True)
class Reply:
    """A result with response headers of its own (the login's Set-Cookie)."""

    body: object
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TextReply:
    """A body that is not JSON (Prometheus' text format), with its content type."""

    body: bytes
    content_type: str


@dataclass(frozen=True)
class FileReply:
    """A file as the answer (a recording): streamed by Twisted's static.File, which honours HTTP
    Range requests (206 Partial Content), so a browser's audio element can seek in it."""

    path: Path
    content_type: str
    download_name: str | None = None  # set: sent as an attachment under this name (export)


# Who a request comes from (None: nobody we know; a list: several sessions, the first fitting a
# route's roles acts); see callcenter.web.auth.
Identify = Callable[[server.Request], Identity | list[Identity] | None]


class JsonApi(resource.Resource):
    """A tiny method+path router; handlers get path groups as arguments and ``body`` as a dict."""

    isLeaf = True

    def __init__(self, allowed_hosts: set[str] | None = None, identify: Identify = lambda request: None,
                 on_action: Callable[[Identity, str, str], None] | None = None):
        super().__init__()
        self.routes: list[Route] = []
        self.identify = identify
        # (who, method, path) of every POST a staff member or the API token made that succeeded,
        # for the audit log; routes marked ``audited`` write their own rows instead
        self.on_action = on_action
        # Host headers we answer to: a page from another site that rebinds its own name to
        # 127.0.0.1 (DNS rebinding) still sends its own name, and is refused.
        self.allowed_hosts = allowed_hosts

    def add(self, method: str, path: str, handler: Callable[..., object], role: Role | tuple[Role, ...] = Role.ADMIN,
            *, audited: bool = False) -> None:
        """``role``: who may call it. Handlers get ``who`` (the caller's Identity, None on public
        routes), ``body``, ``query`` and the path's {groups}. ``audited``: the handler writes its
        own audit rows (otherwise a staff member's or the token's successful POST gets one)."""
        pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9_.-]+)", path) + "$")
        self.routes.append(Route(method, pattern, handler, frozenset((role,) if isinstance(role, Role) else role),
                                 audited))

    def render(self, request: server.Request) -> bytes | int:
        path = request.path.decode("utf-8", "replace")
        method = request.method.decode()
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        try:
            result = self._dispatch(method, path, request)
        except Exception as exc:
            return self._encode(request, *self._failure(exc, method, path))
        if isinstance(result, FileReply):
            return self._serve_file(request, result)
        if not inspect.isawaitable(result):
            return self._encode(request, 200, result)
        # Slow handlers (database reads) are coroutines that run off the loop's critical path;
        # the response is written when they finish.
        future = asyncio.ensure_future(result)
        future.add_done_callback(lambda f: self._finish(request, f, method, path))
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, future: asyncio.Future, method: str, path: str) -> None:
        if request._disconnected:
            return
        exc = future.exception()
        status, result = self._failure(exc, method, path) if exc else (200, future.result())
        if isinstance(result, FileReply):
            body = self._serve_file(request, result)
            if body is server.NOT_DONE_YET:
                return  # the file's producer writes it and finishes the request
        else:
            body = self._encode(request, status, result)
        request.write(body)
        request.finish()

    @staticmethod
    def _serve_file(request: server.Request, reply: FileReply) -> bytes | int:
        if not reply.path.is_file():
            request.setResponseCode(404)
            return json.dumps({"error": f"file {reply.path.name} is not on disk"}).encode() + b"\n"
        if reply.download_name:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", reply.download_name)
            request.setHeader(b"content-disposition", f'attachment; filename="{safe}"'.encode())
        return static.File(str(reply.path), defaultType=reply.content_type).render(request)

    @staticmethod
    def _failure(exc: BaseException, method: str, path: str) -> tuple[int, dict]:
        if isinstance(exc, ApiError):
            return exc.status, {"error": exc.message, **exc.details}
        log.error("API %s %s failed", method, path, exc_info=exc)
        return 500, {"error": "internal error"}

    @staticmethod
    def _encode(request: server.Request, status: int, result: object) -> bytes:
        request.setResponseCode(status)
        if isinstance(result, TextReply):
            request.setHeader(b"content-type", result.content_type.encode())
            return result.body
        if isinstance(result, Reply):
            for name, value in result.headers.items():
                request.setHeader(name.encode(), value.encode())
            result = result.body
        return json.dumps(result, default=str).encode() + b"\n"

    def _dispatch(self, method: str, path: str, request: server.Request) -> object:
        host = (request.getHeader("host") or "").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            raise ApiError(403, f"host {host!r} is not this server")
        path_matched = False
        for route in self.routes:
            match = route.pattern.match(path)
            if not match:
                continue
            path_matched = True
            if route.method != method:
                continue
            who = self._authorize(route, request)
            body = {}
            if method == "POST":
                # A cross-site form cannot send application/json without a CORS preflight, which
                # we never grant: this keeps web pages in the agent's browser from posting here.
                ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
                if ctype != "application/json":
                    raise ApiError(415, "POST bodies must be sent as application/json")
                raw = request.content.read(65536)
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except json.JSONDecodeError as exc:
                        raise ApiError(400, f"request body is not JSON: {exc}") from None
                    if not isinstance(body, dict):
                        raise ApiError(400, "request body must be a JSON object")
            query = {k.decode(): v[0].decode() for k, v in request.args.items()}
            result = route.handler(body=body, query=query, who=who, **match.groupdict())
            if method == "POST" and not route.audited and self.on_action is not None and who is not None \
                    and who.role in STAFF_ROLES:
                return self._audit_after(result, who, method, path)
            return result
        if path_matched:
            raise ApiError(405, f"{method} not allowed on {path}")
        raise ApiError(404, f"no such endpoint: {path}")

    def _audit_after(self, result: object, who: Identity, method: str, path: str) -> object:
        if not inspect.isawaitable(result):
            self.on_action(who, method, path)
            return result

        async def then_audit():
            answer = await result
            await asyncio.to_thread(self.on_action, who, method, path)
            return answer
        return then_audit()

    def _authorize(self, route: Route, request: server.Request) -> Identity | None:
        # a browser may hold an agent's and a staff member's session at once: the route's roles
        # pick which of them is asking
        found = self.identify(request)
        identities = found if isinstance(found, list) else [found] if found is not None else []
        if Role.PUBLIC in route.roles:
            return identities[0] if identities else None
        if not identities:
            raise ApiError(401, "log in first (agents, staff), or send the API token as 'Authorization: Bearer ...'")
        for who in identities:
            if who.role in route.roles:
                return who
        raise ApiError(403, f"{identities[0].describe()} may not call this endpoint")


class ApiRoot(resource.Resource):
    """The site root: ``/api/...`` goes to the JSON API, ``/live/...`` to the live channels, and
    other names to the pages (the agent desktop); ``/`` leads to the desktop."""

    def __init__(self, api: JsonApi, children: dict[bytes, resource.Resource] | None = None):
        super().__init__()
        self.api = api
        self.pages = dict(children or {})

    def getChild(self, name: bytes, request: server.Request) -> resource.Resource:
        if name in (b"api", b"metrics"):
            return self.api
        if name == b"" and b"desktop" in self.pages:
            return Redirect(b"/desktop/")
        return self.pages.get(name) or resource.NoResource()

