"""Live-view fan-out between engines (Redis pub/sub on one channel).

Owns the message format and both ends: ``LiveFanout.publish`` sends ``{"engine", "kind",
"payload", "sent_at"}`` as JSON; ``LiveFanout.listen`` yields the messages of the other engines
(an engine already applied its own) and rides out Redis dropping by subscribing again with a
growing delay.

Pub/sub keeps nothing: what is published while a listener is disconnected never reaches it. That
suits a live view (the next message brings it up to date); anything that must not be lost goes
through the event stream instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callcenter.shared import as_text, raise_if_cancelled, redis_operation

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "cc:live"


class LiveFanout:
    def __init__(self, redis: redis.asyncio.Redis, *, channel: str = DEFAULT_CHANNEL, engine_id: str,
                 retry_delay: float = 0.1, max_retry_delay: float = 5.0, poll_seconds: float = 1.0,
                 clock: Callable[[], float] = time.time):
        if not engine_id:
            raise ValueError("engine_id must name the engine")
        self.redis = redis
        self.channel = channel
        self.engine_id = engine_id
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.poll_seconds = poll_seconds  # longest wait for one message before waiting again
        self.clock = clock

    @redis_operation
    async def publish(self, kind: str, payload: dict) -> int:
        """Send a message to every engine listening; returns how many subscribers got it
        (this engine's own listener included)."""
        message = {"engine": self.engine_id, "kind": kind, "payload": payload, "sent_at": self.clock()}
        return await self.redis.publish(self.channel, json.dumps(message, default=str))

    async def listen(self) -> AsyncIterator[dict]:
        """The other engines' messages, in the order each sent them, until the caller stops
        iterating. Never raises for Redis going away: it subscribes again when Redis is back."""
        delay = self.retry_delay
        lost = False
        while True:
            raise_if_cancelled()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if lost:
                    log.info("live fan-out: subscribed to %s again", self.channel)
                lost, delay = False, self.retry_delay
                while True:
                    raise_if_cancelled()
                    raw = await pubsub.get_message(timeout=self.poll_seconds)
                    message = self._decode(raw)
                    if message is not None:
                        yield message
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if not lost:
                    log.warning("live fan-out: lost %s (%s); subscribing again", self.channel, exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
            finally:
                await _close_quietly(pubsub)

    def _decode(self, raw: dict | None) -> dict | None:
        """The message to hand on, or None: nothing arrived, it is this engine's own, or it is not
        a fan-out message (logged; someone else publishing on the channel must not stop us)."""
        if raw is None or raw.get("type") != "message":
            return None
        try:
            message = json.loads(as_text(raw["data"]))
            sender = message["engine"]
        except (ValueError, TypeError, KeyError):
            log.warning("live fan-out: ignoring a message on %s that is not ours: %r", self.channel, raw["data"])
            return None
        return None if sender == self.engine_id else message


async def _close_quietly(pubsub) -> None:
    try:
        await pubsub.aclose()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        # the connection is already dead; closing it is only tidying up
        log.debug("live fan-out: closing a lost subscription: %s", exc)
