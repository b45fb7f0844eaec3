"""Real-stack test harness: the engine as a subprocess (so tests can kill it), its JSON API,
and waiting on the event log in the real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from sqlalchemy import select

from callcenter.config import Settings
from callcenter.events.log import events_table, read_events
from callcenter.storage import make_engine
from callcenter.web.auth import read_api_token


def write_settings(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump({k: str(v) if isinstance(v, Path) else v for k, v in values.items()}))
    return path


class EngineProcess:
    def __init__(self, config_path: Path, log_path: Path):
        self.config_path = config_path
        self.log_path = log_path
        self.settings = Settings.load(config_path)
        self.proc: subprocess.Popen | None = None
        self.db = make_engine(self.settings.db_url)

    def start(self, timeout: float = 20.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callcenter", "-v", "--config", str(self.config_path), "run"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.api("GET", "/api/health")["ami_connected"]:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"engine not healthy after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM the engine and return its exit code (None if it was not running any more)."""
        code = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = "killed after 10 s"
        self.proc = None
        return code

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 3.0,
            headers: dict | None = None, *, token: bool = True):
        """A JSON API call as an ops tool (the engine's API token), or with ``token=False`` as nobody."""
        s = self.settings
        data = json.dumps(body).encode() if body is not None else None
        auth = {"authorization": f"Bearer {read_api_token(s.data_dir)}"} if token else {}
        req = urllib.request.Request(f"http://{s.web_host}:{s.web_port}{path}", data=data, method=method,
                                     headers={"content-type": "application/json", **auth, **(headers or {})})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def login(self, agent_id: str, *queues: str) -> None:
        """Log in with these queues, or with no queues given, those of the routing file."""
        self.api("POST", f"/api/agents/{agent_id}/login", {"queues": list(queues)} if queues else {})

    def events(self, call_id: str | None = None) -> list[dict]:
        # all of them: the session's database outgrows read_events' default page of 1000
        return read_events(self.db, call_id=call_id, limit=10_000_000)

    def wait_for_event(self, kind: str, *, call_id: str | None = None, timeout: float = 20.0, after: int = 0,
                       **match) -> dict:
        """The first event of ``kind`` (with id > ``after``) whose columns equal ``match``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in self._rows(kind, call_id=call_id, after=after):
                if all(row.get(k) == v for k, v in match.items()):
                    return row
            time.sleep(0.2)
        raise AssertionError(f"no {kind!r} event {match} for call {call_id} within {timeout} s; have: "
                             f"{[(r['kind'], r['call_id'], r['agent_id']) for r in self.events(call_id)][-30:]}"
                             f"\nengine log:\n{self.log_tail()}")

    def _rows(self, kind: str, *, call_id: str | None = None, after: int = 0) -> list[dict]:
        """Every event of ``kind`` (of one call) after id ``after``, oldest first, however many
        the session's shared database holds (``events()`` stops at its first 1000)."""
        t = events_table.c
        query = select(events_table).where(t.kind == kind, t.id > after).order_by(t.id)
        if call_id is not None:
            query = query.where(t.call_id == call_id)
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def events_since(self, since: float, *kinds: str) -> list[dict]:
        """Every event at or after ``since`` (of these kinds), oldest first: the session's database
        is shared, so a test reads its own time window."""
        t = events_table.c
        query = select(events_table).where(t.ts >= since).order_by(t.id)
        if kinds:
            query = query.where(t.kind.in_(kinds))
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def call_id_for(self, caller_number: str, timeout: float = 20.0) -> str:
        """The call id of the (only) call from ``caller_number``; tests give every caller its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in self._rows("call_arrived"):
                if row["data"].get("caller") == caller_number:
                    return row["call_id"]
            time.sleep(0.2)
        raise AssertionError(f"no call from {caller_number} within {timeout} s\nengine log:\n{self.log_tail()}")
