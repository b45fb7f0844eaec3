"""/api/health on the real stack, with a real redis-server on loopback: every part the engine uses
is reported, and a Redis that goes away turns the report to not ok (naming the part) while the
engine keeps serving."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

REDIS_PORT = 16379


@pytest.fixture
def redis_server(tmp_path):
    proc = subprocess.Popen(["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("redis-server did not start (scripts/install installs it)")
    yield proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def test_health_reports_ami_agi_database_and_a_real_redis(engine_with_routing, redis_server):
    engine = engine_with_routing(None, redis_url=f"redis://127.0.0.1:{REDIS_PORT}/0")
    health = engine.api("GET", "/api/health", token=False)
    assert health["ok"] is True, health
    parts = health["parts"]
    assert parts["ami"]["ok"] and parts["agi"]["ok"] and parts["database"]["ok"], parts
    assert parts["redis"]["ok"] is True and parts["redis"]["latency_ms"] is not None, parts["redis"]

    redis_server.terminate()
    redis_server.wait(timeout=10)
    health = engine.api("GET", "/api/health", token=False, timeout=10)
    assert health["ok"] is False and health["parts"]["redis"]["ok"] is False, health
    assert health["parts"]["database"]["ok"] is True and health["parts"]["ami"]["ok"] is True
    assert health["parts"]["redis"]["detail"], "the reason is given"
    # the engine itself goes on: the floor is still served
    assert engine.api("GET", "/api/queues")
