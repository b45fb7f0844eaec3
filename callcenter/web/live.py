"""Live channels: Server-Sent Events from the engine's Twisted server to browsers.

A page opens ``/live/<channel>`` with EventSource; the request stays open and the engine writes
``event: <name>`` / ``data: <json>`` frames to it as things happen (a screen pop the moment the
agent's phone starts ringing), plus a comment every ``keepalive`` seconds so that proxies keep the
stream open and a vanished browser is noticed. Who may listen to which topic is decided by the
channel's ``subscribe`` callback (an agent hears only their own topic).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from twisted.web import resource, server

log = logging.getLogger(__name__)

# (request) -> (topic, first frames to send) or raises PermissionError with the reason
Subscribe = Callable[[server.Request], tuple[str, list[tuple[str, object]]]]


def frame(event: str, data: object) -> bytes:
    # json.dumps never emits a raw newline, so one data: line carries the whole object
    return f"event: {event}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n".encode()


class LiveChannel(resource.Resource):
    isLeaf = True

    def __init__(self, subscribe: Subscribe, *, keepalive: float = 15.0):
        super().__init__()
        self.subscribe = subscribe
        self.keepalive = keepalive
        self._listeners: dict[str, set[server.Request]] = {}
        self._keepalive_task: asyncio.Task | None = None

    def render_GET(self, request: server.Request) -> bytes | int:
        try:
            topic, first = self.subscribe(request)
        except PermissionError as exc:
            request.setResponseCode(401)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"{exc}\n".encode()
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.write(b"retry: 2000\n\n")
        for event, data in first:
            request.write(frame(event, data))
        listeners = self._listeners.setdefault(topic, set())
        listeners.add(request)
        request.notifyFinish().addBoth(lambda _: self._drop(topic, request))
        self._ensure_keepalive()
        return server.NOT_DONE_YET

    def publish(self, topic: str, event: str, data: object) -> int:
        """Send one frame to every listener of ``topic``; returns how many got it."""
        listeners = self._listeners.get(topic, ())
        payload = frame(event, data)
        for request in list(listeners):
            _send(request, payload)
        return len(listeners)

    def listeners(self, topic: str) -> int:
        return len(self._listeners.get(topic, ()))

    def _drop(self, topic: str, request: server.Request) -> None:
        listeners = self._listeners.get(topic)
        if listeners is not None:
            listeners.discard(request)
            if not listeners:
                del self._listeners[topic]

    def _ensure_keepalive(self) -> None:
        if self._keepalive_task is None or self._keepalive_task.done():
            self._keepalive_task = asyncio.get_running_loop().create_task(self._keep_alive(), name="live keepalive")

    async def _keep_alive(self) -> None:
        while self._listeners:
            await asyncio.sleep(self.keepalive)
            for listeners in list(self._listeners.values()):
                for request in list(listeners):
                    _send(request, b": keepalive\n\n")

    def close(self) -> None:
        """End every stream (the engine is stopping)."""
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        for listeners in list(self._listeners.values()):
            for request in list(listeners):
                if not request.finished:
                    request.finish()
        self._listeners.clear()


def _send(request: server.Request, payload: bytes) -> None:
    # a browser that went away is dropped by notifyFinish; until then, writes to it are skipped
    if not request.finished and not request._disconnected:
        request.write(payload)
