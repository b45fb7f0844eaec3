"""An agent's desktop as a program: a cookie-keeping HTTP client for /api/desktop and a reader of
the /live/desk event stream (each frame kept with the local time it arrived)."""

from __future__ import annotations

import http.cookiejar
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


class HttpError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Frame:
    event: str
    data: dict
    at: float  # time.time() when it arrived


class AgentDesktop:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.frames: list[Frame] = []
        self._stream = None
        self._reader: threading.Thread | None = None

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 5.0):
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise HttpError(exc.code, json.loads(exc.read() or b"{}")) from None

    def login(self, agent_id: str, password: str) -> dict:
        return self.call("POST", "/api/desktop/login", {"agent_id": agent_id, "password": password})

    def listen(self) -> None:
        """Open /live/desk and collect its frames in the background."""
        self._stream = self.opener.open(self.base_url + "/live/desk", timeout=60)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        event, data = None, None
        try:
            for raw in self._stream:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and event is not None:
                    self.frames.append(Frame(event, data, time.time()))
                    event, data = None, None
        except (OSError, ValueError, AttributeError):  # AttributeError: closed under the reader
            return

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "a desk frame") -> Frame:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in list(self.frames):
                if frame.event == "desk" and predicate(frame.data):
                    return frame
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s; last frames: {[f.data for f in self.frames[-3:]]}")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def stage_of(desk: dict) -> str | None:
    return desk["call"]["stage"] if desk.get("call") else None
