"""The event stream between engines and the SQL event log (a Redis Stream with a consumer group).

Owns the stream's entry format and both ends of it:

- ``EventStream.publish`` appends an ``EventRecord`` (XADD, approximate MAXLEN). Every record
  carries its ``key``, so whatever delivers it twice, the SQL log stores it once.
- ``StreamConsumer`` reads the stream as one consumer of a group (XREADGROUP), hands batches to a
  store and acknowledges them only after the store returned (XACK): a consumer that dies
  in between leaves its entries pending, and a live consumer takes them over (XAUTOCLAIM) once
  they have been idle ``claim_idle_ms``. ``replay`` stores the whole stream again (rebuilding
  a log, or proving a second delivery changes nothing).
- ``sql_event_store`` is the store that writes into the ``events`` table with the event log's
  own insert-once statement.

Entry fields: ``kind``, ``ts`` (repr of the float), ``key``, ``data`` (JSON), and ``call_id``,
``queue``, ``agent_id`` only when set (absent means None).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio
from redis.exceptions import ResponseError
from sqlalchemy import Engine

from callcenter.events.log import EventRecord, _insert_once
from callcenter.shared import SharedStateUnavailable, as_text, raise_if_cancelled, redis_operation

log = logging.getLogger(__name__)

DEFAULT_STREAM = "cc:events"
OPTIONAL_FIELDS = ("call_id", "queue", "agent_id")

Store = Callable[[list[EventRecord]], "Awaitable[None] | None"]


def record_to_fields(record: EventRecord) -> dict[str, str]:
    if record.key is None:
        raise ValueError(f"an event on the stream needs its key (the SQL log's event_key): {record!r}")
    fields = {"kind": record.kind, "ts": repr(record.ts), "key": record.key,
              "data": json.dumps(record.data, default=str)}
    fields.update({name: getattr(record, name) for name in OPTIONAL_FIELDS if getattr(record, name) is not None})
    return fields


def fields_to_record(fields: dict) -> EventRecord:
    """An entry's fields (str or bytes) back as the EventRecord that was published."""
    text = {as_text(name): as_text(value) for name, value in fields.items()}
    return EventRecord(kind=text["kind"], ts=float(text["ts"]), data=json.loads(text["data"]), key=text["key"],
                       **{name: text.get(name) for name in OPTIONAL_FIELDS})


class EventStream:
    """The publishing end: one XADD per event."""

    def __init__(self, redis: redis.asyncio.Redis, *, stream: str = DEFAULT_STREAM, maxlen: int = 100_000):
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen

    @redis_operation
    async def publish(self, record: EventRecord) -> str:
        """Append ``record``; returns the entry id. The stream keeps about ``maxlen`` entries:
        older ones go even if no consumer has read them, so ``maxlen`` bounds the outage of the
        SQL writer the stream can ride out."""
        return as_text(await self.redis.xadd(self.stream, record_to_fields(record), maxlen=self.maxlen,
                                             approximate=True))


    @redis_operation
    async def publish_many(self, records: Sequence[EventRecord]) -> int:
        """Append ``records`` in order, in one round trip. If Redis is lost part way, some may
        be on the stream already: storing them again elsewhere is harmless (their keys)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.xadd(self.stream, record_to_fields(record), maxlen=self.maxlen, approximate=True)
            await pipe.execute()
        return len(records)


class StreamConsumer:
    """One consumer (``consumer``) of ``group`` on ``stream``, storing what it reads with ``store``
    (sync or async, given a list of EventRecord; it must be idempotent on the records' keys)."""

    def __init__(self, redis: redis.asyncio.Redis, store: Store, *, stream: str = DEFAULT_STREAM,
                 group: str = "event-log", consumer: str, batch: int = 500, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000, retry_delay: float = 0.1, max_retry_delay: float = 5.0):
        socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
        if block_ms > 0 and socket_timeout is not None and socket_timeout * 1000 <= block_ms:
            # the client would give up on a blocking read that is only waiting for new entries
            raise ValueError(f"block_ms={block_ms} needs a client socket_timeout above {block_ms / 1000:g} s "
                             f"(it is {socket_timeout:g} s)")
        self.redis = redis
        self.store = store
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.stored = 0  # entries handed to the store and acknowledged, over this object's life
        self.dropped = 0  # entries that could not be read back as events (logged, acknowledged)
        self.groups_recreated = 0  # times the group was found gone (Redis lost it) and made again
        self._group_ready = False
        # Entries read under this consumer name and never acknowledged (a crash, a failed store):
        # read again first, at start and after a failure, without waiting for claim_idle_ms.
        self._own_backlog = True
        self._claim_cursor = "0-0"

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.group, self.stream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    @redis_operation
    async def run_once(self) -> int:
        """Store what is due once: this consumer's own unacknowledged entries, entries other
        consumers left pending longer than ``claim_idle_ms``, then new entries (waiting up to
        ``block_ms`` for them only when nothing else was found). Returns how many were stored."""
        await self._ensure_group()
        try:
            handled = 0
            if self._own_backlog:
                handled += await self._read_own_backlog()
            handled += await self._take_over_idle()
            handled += await self._read_new(block=handled == 0)
            return handled
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis lost the group (restarted empty, or someone deleted it): make it again, and
            # whatever it held pending is gone with it.
            log.warning("consumer group %s on %s is gone; creating it again", self.group, self.stream)
            self.groups_recreated += 1
            self._group_ready, self._own_backlog, self._claim_cursor = False, False, "0-0"
            await self._ensure_group()
            return 0

    async def _read_own_backlog(self) -> int:
        handled = 0
        while True:
            raise_if_cancelled()
            entries = await self._xreadgroup("0", block=False)
            if not entries:
                self._own_backlog = False
                return handled
            handled += await self._handle(entries)

    async def _take_over_idle(self) -> int:
        cursor, entries, deleted = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms, start_id=self._claim_cursor,
            count=self.batch)
        self._claim_cursor = as_text(cursor)
        if deleted:
            # trimmed by MAXLEN while pending: the events never reached the log
            log.error("%d pending events of %s were trimmed before anyone stored them: %s",
                      len(deleted), self.stream, [as_text(d) for d in deleted[:10]])
        if entries:
            log.info("consumer %s took over %d events left pending by another consumer", self.consumer, len(entries))
        return await self._handle(entries)

    async def _read_new(self, *, block: bool) -> int:
        return await self._handle(await self._xreadgroup(">", block=block))

    async def _xreadgroup(self, start: str, *, block: bool) -> list:
        reply = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: start}, count=self.batch,
                                            block=self.block_ms if block and self.block_ms > 0 else None)
        # redis-py's legacy shape [[stream, entries]], or its unified one {stream: entries}
        per_stream = reply.values() if isinstance(reply, dict) else [entries for _, entries in reply or []]
        return [entry for entries in per_stream for entry in entries]

    def _records_of(self, entries: Sequence) -> tuple[list, list[EventRecord]]:
        """The entry ids and the events they hold. An entry that is no event (trimmed away while
        pending, or written by something else) is logged and left out of the records, but its id
        is kept: acknowledged all the same, it cannot be retried forever."""
        ids, records = [], []
        for entry_id, fields in entries:
            if entry_id is None:
                continue
            ids.append(entry_id)
            if not fields:
                self.dropped += 1
                log.error("event %s of %s was trimmed from the stream before it was stored",
                          as_text(entry_id), self.stream)
                continue
            try:
                records.append(fields_to_record(fields))
            except (KeyError, ValueError, TypeError) as exc:
                self.dropped += 1
                log.error("stream entry %s of %s is not an event and is skipped: %r (%s)",
                          as_text(entry_id), self.stream, fields, exc)
        return ids, records

    async def _handle(self, entries: Sequence) -> int:
        """Store the entries, then acknowledge them. A store that raises leaves them pending."""
        ids, records = self._records_of(entries)
        if not ids:
            return 0
        try:
            await _call_store(self.store, records)
        except Exception:
            self._own_backlog = True
            raise
        await self.redis.xack(self.stream, self.group, *ids)
        self.stored += len(records)
        return len(records)

    async def drain(self) -> int:
        """Store what is on the stream for this consumer now, without waiting for more (an
        engine stopping: what it published last reaches the log before it goes)."""
        blocking, self.block_ms = self.block_ms, 0
        try:
            total = 0
            while True:
                # a round that stored nothing may still have done something: made the group
                # again (Redis came back empty) or skipped entries that are no events
                recreated, dropped = self.groups_recreated, self.dropped
                handled = await self.run_once()
                total += handled
                if not handled and recreated == self.groups_recreated and dropped == self.dropped:
                    return total
        finally:
            self.block_ms = blocking

    async def run(self) -> None:
        """``run_once`` until cancelled. Redis or the store failing is logged once per outage
        and retried with a growing delay; nothing is acknowledged that was not stored."""
        delay = self.retry_delay
        failing = False
        while True:
            raise_if_cancelled()
            try:
                handled = await self.run_once()
            except Exception as exc:  # not CancelledError (a BaseException): cancelling stops the loop
                if not failing:
                    if isinstance(exc, SharedStateUnavailable):
                        log.warning("event stream consumer %s: %s; retrying", self.consumer, exc)
                    else:
                        log.exception("event stream consumer %s failed; retrying", self.consumer)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            if failing:
                log.info("event stream consumer %s is reading again", self.consumer)
            failing, delay = False, self.retry_delay
            if self.block_ms <= 0 and handled == 0:
                await asyncio.sleep(self.retry_delay)  # nothing blocks between reads: do not spin

    @redis_operation
    async def replay(self, from_id: str = "0") -> int:
        """Store every entry from ``from_id`` on again, in pages of ``batch`` (no group state
        changes). Returns how many were handed to the store."""
        count, start = 0, from_id
        while True:
            raise_if_cancelled()
            page = await self.redis.xrange(self.stream, min=start, max="+", count=self.batch)
            if not page:
                return count
            _, records = self._records_of(page)
            await _call_store(self.store, records)
            count += len(records)
            start = "(" + as_text(page[-1][0])  # exclusive: the next page starts after this one


async def _call_store(store: Store, records: list[EventRecord]) -> None:
    if records:
        result = store(records)
        if inspect.isawaitable(result):
            await result


def sql_event_store(engine: Engine) -> Callable[[list[EventRecord]], Awaitable[None]]:
    """A store writing EventRecords into the ``events`` table (create it first with
    ``create_events_table``), with the EventLog's own insert-once statement: a record whose key
    is already stored is skipped. The insert runs in a worker thread."""
    statement = _insert_once(engine)

    def insert(records: list[EventRecord]) -> None:
        with engine.begin() as conn:
            conn.execute(statement, [record.row() for record in records]).all()

    async def store(records: list[EventRecord]) -> None:
        if records:
            await asyncio.to_thread(insert, records)

    return store
