"""A throwaway redis-server for tests.

Owns one ``redis-server`` process: on 127.0.0.1 at a free port of 16500-16599 (a range kept for
these tests; never 6379), working in a given temporary folder, with persistence off
(``--save "" --appendonly no``: a restart comes back empty, like a lost Redis). ``start`` waits
until it answers, and checks the answer comes from the process it started; ``kill`` ends it
abruptly (SIGKILL, the way a crash looks to clients) and ``restart`` brings it back on the same
port, so clients can be shown to reconnect. The port stays locked (a lock file in the temporary
folder) from start to the end, so test runs side by side never pick the port of a server
another run killed to restart it.

In a test module (a local fixture, so pytest finds it and ruff does not see an import shadowed
by a parameter):

    @pytest.fixture
    def redis_server(tmp_path):
        with throwaway_redis(tmp_path) as server:
            yield server          # server.url, server.kill(), server.restart()

``run_bounded`` runs a test's coroutine with a time limit (a client waiting on a lost server must
fail the test, not hang it), and ``wait_until`` waits, also bounded, for what another task or
process is about to make true.
"""

from __future__ import annotations

import asyncio
import fcntl
import inspect
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PORTS = range(16500, 16600)
START_TIMEOUT = 10.0
PORT_LOCKS = Path(tempfile.gettempdir()) / "callcenter-test-redis-ports"

T = TypeVar("T")


class RedisServerError(RuntimeError):
    pass


def _lock_port(port: int) -> int | None:
    """An open, exclusively locked file for ``port`` (None if another run holds it). The kernel
    drops the lock when this process ends, however it ends."""
    PORT_LOCKS.mkdir(exist_ok=True)
    handle = os.open(PORT_LOCKS / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    return handle


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _server_pid(port: int) -> int | None:
    """The process id of the redis-server answering on ``port``, None if none answers yet."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5,
                         retry=Retry(NoBackoff(), 0))  # the caller polls; no hidden waits
    try:
        return int(client.info("server")["process_id"])
    except redis.exceptions.RedisError:  # refused, still loading, or not a Redis at all
        return None
    finally:
        client.close()


class RedisServer:
    def __init__(self, directory: Path, *, program: str | None = None):
        self.directory = Path(directory)
        self.program = program or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._port_lock: int | None = None  # held from start until release()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("the server has not been started")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start on a free port of PORTS that no other run holds (something else may still take
        the port between the probe and the bind: then the next one is tried)."""
        tried = 0
        for port in random.sample(PORTS, len(PORTS)):
            if tried == 5:
                break
            lock = _lock_port(port)
            if lock is None:
                continue
            if _port_is_free(port):
                tried += 1
                if self._start_on(port):
                    self._port_lock = lock
                    return self
            os.close(lock)
        raise RedisServerError(f"no redis-server could listen on a free port of {PORTS}; "
                               f"see {self.directory}/redis-*.log")

    def restart(self) -> RedisServer:
        """Start again on the same port (empty: nothing was saved)."""
        if self.port is None:
            raise RedisServerError("the server has never been started")
        self.kill()
        if not self._start_on(self.port):
            raise RedisServerError(f"redis-server did not come back on port {self.port}; "
                                   f"see {self.directory}/redis-{self.port}.log")
        return self

    def _start_on(self, port: int) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.directory / f"redis-{port}.log"),
             "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = port
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # it exited: the port was taken after all
                self.process = None
                return False
            # Ours, not a server another test run started on the same port a moment earlier
            # (ours then fails to bind and exits, which the next round sees).
            if _server_pid(port) == self.process.pid:
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def kill(self) -> None:
        """End the server abruptly (no-op if it is not running)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def release(self) -> None:
        """Kill the server and give its port back to other runs."""
        self.kill()
        if self._port_lock is not None:
            os.close(self._port_lock)
            self._port_lock = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextmanager
def throwaway_redis(directory: Path) -> Iterator[RedisServer]:
    """A started RedisServer working in ``directory``, killed at the end whatever happened."""
    server = RedisServer(directory).start()
    try:
        yield server
    finally:
        server.release()


class BoundExceeded(AssertionError):
    pass


def run_bounded(coroutine: Coroutine[Any, Any, T], seconds: float = 30.0) -> T:
    """Run ``coroutine`` and fail the test if it takes longer than ``seconds``. Cancelling it
    (wait_for) is the polite way; a timer signal, repeating every 5 s, also interrupts a loop that
    does not stop when cancelled, and asyncio.run's own clean-up of such a loop."""
    def interrupt(signum, frame):
        raise BoundExceeded(f"the test's coroutine did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds + 5, 5)
    try:
        return asyncio.run(asyncio.wait_for(coroutine, seconds))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


async def wait_until(condition: Callable[[], Awaitable[bool] | bool], *, seconds: float = 10.0,
                     what: str = "the condition") -> None:
    """Poll ``condition`` (sync or async) until it is true; AssertionError naming ``what`` after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds:g} s")
        await asyncio.sleep(0.02)
