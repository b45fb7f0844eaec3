"""The /api/health report: a real SQLite file, broken and hung databases, Redis at a closed port, a
stand-in Redis that answers PING, and one that never answers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine

from callcenter.ops.health import HealthCheck
from callcenter.storage import make_engine


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'engine.db'}")
    yield engine
    engine.dispose()


def health(database, *, ami=True, agi=True, **kwargs) -> HealthCheck:
    return HealthCheck(database=database, ami_connected=lambda: ami, agi_listening=lambda: agi, **kwargs)


def report(check: HealthCheck, **extra) -> dict:
    return asyncio.run(check.report(**extra))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_up_with_redis_not_configured(sqlite_engine):
    result = report(health(sqlite_engine))
    assert result["ok"] is True
    parts = result["parts"]
    assert parts["ami"] == {"ok": True, "detail": "logged in"}
    assert parts["agi"] == {"ok": True, "detail": "listening"}
    assert parts["database"]["ok"] is True
    assert parts["database"]["detail"].startswith("sqlite")
    assert parts["database"]["latency_ms"] >= 0
    assert parts["redis"]["ok"] is None and parts["redis"]["detail"] == "not configured"


def test_ami_down_is_not_ok(sqlite_engine):
    result = report(health(sqlite_engine, ami=False))
    assert result["ok"] is False
    assert result["parts"]["ami"] == {"ok": False, "detail": "not connected"}
    assert result["parts"]["database"]["ok"] is True


def test_agi_not_listening_is_not_ok(sqlite_engine):
    result = report(health(sqlite_engine, agi=False))
    assert result["ok"] is False
    assert result["parts"]["agi"]["ok"] is False


def test_database_url_that_cannot_open(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'engine.db'}")
    result = report(health(engine))
    assert result["ok"] is False
    database = result["parts"]["database"]
    assert database["ok"] is False and database["latency_ms"] is None
    assert database["detail"].startswith("OperationalError:")
    assert "unable to open database file" in database["detail"]
    assert "\n" not in database["detail"]


def test_database_gone_after_the_engine_worked(tmp_path, sqlite_engine):
    check = health(sqlite_engine)
    assert report(check)["ok"] is True
    sqlite_engine.dispose()  # no pooled connection to the old file survives: the next check reconnects
    shutil.rmtree(tmp_path / "db")
    database = report(check)["parts"]["database"]
    assert database["ok"] is False
    assert "unable to open database file" in database["detail"]


def test_hung_database_times_out_and_is_probed_once(tmp_path):
    release = threading.Event()
    connects = []

    def hanging_connect():
        connects.append(time.monotonic())
        release.wait(10)
        return sqlite3.connect(":memory:", check_same_thread=False)

    engine = create_engine("sqlite://", creator=hanging_connect)
    check = health(engine, timeout=0.2)

    async def two_reports():
        first = await check.report()
        second = await check.report()  # the first probe is still stuck
        release.set()
        third = await check.report()  # waits for that probe, which now answers
        return first, second, third

    try:
        started = time.monotonic()
        first, second, third = asyncio.run(two_reports())
    finally:
        release.set()
        engine.dispose()
    assert time.monotonic() - started < 3
    for stuck in (first, second):
        assert stuck["ok"] is False
        assert stuck["parts"]["database"]["detail"] == "no answer to SELECT 1 within 0.2 s"
    assert third["parts"]["database"]["ok"] is True
    assert len(connects) == 1


def test_redis_at_a_closed_port_fails_quickly(sqlite_engine):
    port = closed_port()
    started = time.monotonic()
    result = report(health(sqlite_engine, redis_url=f"redis://127.0.0.1:{port}/0"))
    assert time.monotonic() - started < 1.5
    assert result["ok"] is False
    redis_part = result["parts"]["redis"]
    assert redis_part["ok"] is False
    assert "ConnectionError" in redis_part["detail"] and str(port) in redis_part["detail"]


def test_malformed_redis_url_is_a_failure_not_a_crash(sqlite_engine):
    result = report(health(sqlite_engine, redis_url="http://127.0.0.1:1/"))
    assert result["ok"] is False
    assert result["parts"]["redis"]["ok"] is False


async def _stand_in_redis(answer: bool):
    """A RESP server on loopback that says +PONG to PING and +OK to anything else (the client's
    CLIENT SETINFO on connect), or, with answer=False, reads and never replies."""

    async def serve(reader, writer):
        try:
            while line := await reader.readline():
                if not line.startswith(b"*"):
                    continue
                words = []
                for _ in range(int(line[1:])):
                    await reader.readline()  # $<length>
                    words.append((await reader.readline()).strip().upper())
                if answer:
                    writer.write(b"+PONG\r\n" if words[0] == b"PING" else b"+OK\r\n")
                    await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("answer", [True, False])
def test_redis_ping(sqlite_engine, answer):
    async def scenario():
        server, port = await _stand_in_redis(answer)
        async with server:
            check = health(sqlite_engine, redis_url=f"redis://127.0.0.1:{port}/0", timeout=0.3)
            return await check.report()

    result = asyncio.run(scenario())
    redis_part = result["parts"]["redis"]
    if answer:
        assert result["ok"] is True
        assert redis_part["ok"] is True and redis_part["latency_ms"] >= 0
    else:
        assert result["ok"] is False
        assert redis_part == {"ok": False, "detail": "no answer to PING within 0.3 s", "latency_ms": None}


def test_extra_fields_are_added(sqlite_engine):
    result = report(health(sqlite_engine), uptime=12.5, loop_ticks=40)
    assert (result["uptime"], result["loop_ticks"]) == (12.5, 40)
    with pytest.raises(TypeError, match="ok"):
        report(health(sqlite_engine), ok=True)
