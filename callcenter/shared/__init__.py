"""Live state shared by several engines through Redis.

Owns what the three parts have in common: the one error every part raises when Redis cannot be
reached (``SharedStateUnavailable``, so an engine can catch it and keep serving from its own
state), a client factory with timeouts and retries sized for that (``connect``), and decoding
of replies from clients made with or without ``decode_responses``.

The parts:

- ``claims``: atomic offer claims (one call to one agent at a time, across engines) and the
  registry of waiting calls and agents (``RedisClaims``).
- ``stream``: the event stream feeding the SQL event log (``EventStream``, ``StreamConsumer``,
  ``sql_event_store``).
- ``fanout``: live-view messages between engines (``LiveFanout``).

Every key lives under a prefix (default ``cc:``). Operations that touch several keys at once
need them on one node: on Redis Cluster give a prefix with a hash tag (``{cc}:``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "cc:"


class SharedStateUnavailable(ConnectionError):
    """Redis could not be reached (refused, dropped, timed out, still loading its data). The
    shared state is unknown, not empty: callers keep serving from their own state and retry."""


@contextmanager
def reaching_redis(what: str) -> Iterator[None]:
    """Turn redis-py's connection and timeout errors inside the block into SharedStateUnavailable
    naming ``what`` was being done. Other Redis errors (a bad command, a script error) are bugs
    and pass unchanged."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise SharedStateUnavailable(f"{what}: Redis unreachable ({exc.__class__.__name__}: {exc})") from exc


P = ParamSpec("P")
T = TypeVar("T")


def redis_operation(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorator for async methods: ``reaching_redis`` around the whole call."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with reaching_redis(method.__qualname__):
            return await method(*args, **kwargs)
    return wrapper


def connect(url: str, *, timeout: float = 2.0, retries: int = 1, max_connections: int = 50) -> redis.asyncio.Redis:
    """A client for the shared state: replies decoded to str; a lost Redis reported within about
    ``timeout`` seconds instead of after redis-py's default of ten retries; and a burst of more
    concurrent operations than ``max_connections`` waits (up to ``timeout``) for a connection
    instead of failing. A stream consumer's blocking read must be shorter than ``timeout``
    (StreamConsumer checks)."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, decode_responses=True,
        socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries))
    return redis.asyncio.Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop. Loops that run until
    cancelled call it on every round: redis-py (8.1 on Python 3.11, reads under a socket
    timeout) sometimes swallows a cancellation that arrives during a command, and the loop would
    go on for ever. The request stays counted on the task (``cancelling()``), so it is not lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def as_text(value: str | bytes | None) -> str | None:
    """A reply value as str whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


# Imported last: the parts import SharedStateUnavailable and the helpers above from this module.
from callcenter.shared.claims import (AgentEntry, Claim, OfferHolder, RedisClaims, SharedSnapshot,  # noqa: E402
                                      WaitingCall)
from callcenter.shared.fanout import LiveFanout  # noqa: E402
from callcenter.shared.stream import EventStream, StreamConsumer, sql_event_store  # noqa: E402

__all__ = [
    "DEFAULT_PREFIX", "SharedStateUnavailable", "connect", "reaching_redis", "redis_operation", "as_text",
    "raise_if_cancelled",
    "RedisClaims", "Claim", "OfferHolder", "SharedSnapshot", "WaitingCall", "AgentEntry",
    "EventStream", "StreamConsumer", "sql_event_store", "LiveFanout",
]
