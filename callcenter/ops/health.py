"""The ``/api/health`` report: is each part the engine needs up right now?

Parts: AMI (logged in), FastAGI (listening), the database (``SELECT 1`` answers) and Redis (PING
answers, only when a Redis URL is configured). ``ok`` is true when every required part is up; Redis
is required only when configured. Each check has a time limit, so a hung database or Redis makes
the report say so instead of making the health check hang with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import Engine, text

DEFAULT_TIMEOUT = 2.0


def _error_detail(exc: BaseException) -> str:
    # SQLAlchemy appends the SQL and a documentation link on further lines: the first says it
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


class HealthCheck:
    """Checks the engine's parts on demand; ``report()`` is what ``/api/health`` answers.

    ``ami_connected`` and ``agi_listening`` read the engine's connections (they must not block);
    ``database`` is the engine's SQLAlchemy engine; ``redis_url`` None means Redis is not used.
    """

    def __init__(self, *, database: Engine, ami_connected: Callable[[], bool], agi_listening: Callable[[], bool],
                 redis_url: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.database = database
        self.ami_connected = ami_connected
        self.agi_listening = agi_listening
        self.redis_url = redis_url
        self.timeout = timeout
        # The SELECT 1 runs in a worker thread, which a timeout cannot stop: while one is stuck on
        # a hung database, later reports wait on that same probe instead of stacking up more
        # stuck threads in the default executor (which the event log's writes use too).
        self._database_probe: asyncio.Future[float] | None = None

    async def report(self, **extra: Any) -> dict[str, Any]:
        """{"ok", "parts": {"ami", "agi", "database", "redis"}, **extra}; ``extra`` is the caller's
        own fields (the engine's uptime, loop ticks), which may not be named ok or parts."""
        reserved = {"ok", "parts"} & extra.keys()
        if reserved:
            raise TypeError(f"extra health fields may not be named {sorted(reserved)}")
        database, redis_part = await asyncio.gather(self.check_database(), self.check_redis())
        parts = {"ami": self.check_ami(), "agi": self.check_agi(), "database": database, "redis": redis_part}
        # ok None (Redis not configured) is not a failure
        ok = all(part["ok"] is not False for part in parts.values())
        return {"ok": ok, "parts": parts, **extra}

    def check_ami(self) -> dict[str, Any]:
        up = bool(self.ami_connected())
        return {"ok": up, "detail": "logged in" if up else "not connected"}

    def check_agi(self) -> dict[str, Any]:
        up = bool(self.agi_listening())
        return {"ok": up, "detail": "listening" if up else "not listening"}

    async def check_database(self) -> dict[str, Any]:
        if self._database_probe is None or self._database_probe.done():
            self._database_probe = asyncio.ensure_future(asyncio.to_thread(self._select_one))
        try:
            # shield: a timeout here leaves the probe running, for the next report to wait on
            latency_ms = await asyncio.wait_for(asyncio.shield(self._database_probe), self.timeout)
        except asyncio.TimeoutError:
            return {"ok": False, "detail": f"no answer to SELECT 1 within {self.timeout:g} s", "latency_ms": None}
        except Exception as exc:
            return {"ok": False, "detail": _error_detail(exc), "latency_ms": None}
        return {"ok": True, "detail": f"{self.database.dialect.name}: SELECT 1 answered", "latency_ms": latency_ms}

    def _select_one(self) -> float:
        started = time.perf_counter()
        with self.database.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()
        return _elapsed_ms(started)

    async def check_redis(self) -> dict[str, Any]:
        if not self.redis_url:
            return {"ok": None, "detail": "not configured", "latency_ms": None}
        started = time.perf_counter()
        client = None
        try:
            # No retries: a health check reports the failure, it does not ride it out.
            client = redis.asyncio.from_url(self.redis_url, socket_connect_timeout=self.timeout,
                                            socket_timeout=self.timeout, retry=Retry(NoBackoff(), 0))
            await asyncio.wait_for(client.ping(), self.timeout)
        except asyncio.TimeoutError:
            return {"ok": False, "detail": f"no answer to PING within {self.timeout:g} s", "latency_ms": None}
        except Exception as exc:  # a malformed URL as much as a refused connection
            return {"ok": False, "detail": _error_detail(exc), "latency_ms": None}
        finally:
            if client is not None:
                await client.aclose()
        return {"ok": True, "detail": "PING answered", "latency_ms": _elapsed_ms(started)}
