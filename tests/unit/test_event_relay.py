"""The event log's relay (engines sharing queues send their events through a Redis stream that a
consumer stores into the events table), against a real SQLite file and, where Redis is involved,
a real redis-server (tests/redis_server.py; Redis is never mocked).

- EventLog: with a relay, flushed batches go to the relay in order and not into the table; a
  relay that raises (anything) has its batch stored directly, is left alone for
  RELAY_RETRY_SECONDS (monotonic clock) and then tried again; the writer never dies of it.
- EventLog -> EventStream.publish_many -> StreamConsumer.drain -> sql_event_store: every event
  once, in order; keys shared by two engines end as one row; Redis killed part way loses nothing
  the log still held.
- StreamConsumer.drain: never blocks, and gives block_ms back however it ends.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from callcenter.events import log as event_log_module
from callcenter.events.log import RELAY_RETRY_SECONDS, EventLog, EventRecord, events_table, \
    read_events
from callcenter.shared import SharedStateUnavailable, connect
from callcenter.shared.stream import EventStream, StreamConsumer, sql_event_store
from tests.redis_server import run_bounded, wait_until

STREAM = "cc:events"
GROUP = "event-log"




class FakeMonotonic:
    """Stands in for time.monotonic inside callcenter.events.log only (asyncio keeps the real one)."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch) -> FakeMonotonic:
    clock = FakeMonotonic()
    monkeypatch.setattr(event_log_module, "time", SimpleNamespace(monotonic=clock, time=time.time))
    return clock


class RecordingRelay:
    """A relay keeping every batch it accepted; ``fail_with`` (an exception, or a list of them
    used one per call, None meaning accept) makes calls raise instead."""

    def __init__(self, fail_with=None):
        self.batches: list[list[EventRecord]] = []
        self.calls = 0
        self.fail_with = fail_with

    async def __call__(self, batch: list[EventRecord]) -> None:
        self.calls += 1
        failure = self.fail_with.pop(0) if isinstance(self.fail_with, list) and self.fail_with else (
            None if isinstance(self.fail_with, list) else self.fail_with)
        if failure is not None:
            raise failure
        self.batches.append(list(batch))

    @property
    def keys(self) -> list[str]:
        return [record.key for batch in self.batches for record in batch]


def record_some(log: EventLog, count: int, *, label: str, key_prefix: str | None = None) -> list[str]:
    """Record ``count`` events (every field used) and return their keys, in recording order."""
    before = len(log._pending)
    for n in range(count):
        log.record("queued" if n % 2 else "offered", call_id=f"{label}-call-{n}", queue="support",
                   agent_id="1001" if n % 3 else None, data={"label": label, "n": n, "note": "接通"},
                   ts=1711352000.0 + n / 8, key=f"{key_prefix}:{n}" if key_prefix else None)
    return [event.key for event in log._pending[before:]]


def stored_keys(engine: sa.Engine) -> list[str]:
    """Every stored event_key in table (id) order."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(events_table.c.event_key).order_by(events_table.c.id)).scalars())


def sequence_of(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


# --- EventLog and its relay (no Redis) -------------------------------------------------------------


def test_with_a_relay_flushed_batches_go_to_the_relay_in_order_and_none_into_the_table(database) -> None:
    relay = RecordingRelay()
    log = EventLog(database, batch_size=4)
    log.relay = relay
    keys = record_some(log, 10, label="a")
    asyncio.run(log.flush())

    assert [len(batch) for batch in relay.batches] == [4, 4, 2]  # batch_size still cuts the batches
    assert relay.keys == keys  # in the order recorded
    assert [sequence_of(k) for k in keys] == list(range(1, 11))
    first = relay.batches[0][0]
    assert (first.kind, first.call_id, first.queue, first.agent_id, first.data) == \
        ("offered", "a-call-0", "support", None, {"label": "a", "n": 0, "note": "接通"})
    assert read_events(database) == []  # nothing inserted directly
    assert log._pending == [] and log.skipped == 0 and log.rejected == 0


def test_a_relay_raising_connection_error_has_its_batch_stored_and_is_left_alone_for_the_retry_period(
        database, monotonic) -> None:
    relay = RecordingRelay(fail_with=[ConnectionError("redis went away")])
    log = EventLog(database, batch_size=2)
    log.relay = relay

    async def scenario():
        # the first batch fails; the rest of the same flush is not offered to the relay again
        first = record_some(log, 5, label="first")
        await log.flush()
        after_failure = (relay.calls, stored_keys(database))

        monotonic.now += RELAY_RETRY_SECONDS - 0.01  # still within the retry period
        within = record_some(log, 3, label="within")
        await log.flush()
        within_period = (relay.calls, stored_keys(database))

        monotonic.now += 0.02  # past it: the relay is tried again and takes the batches
        later = record_some(log, 3, label="later")
        await log.flush()
        return first, within, later, after_failure, within_period

    first, within, later, after_failure, within_period = run_bounded(scenario(), 10)
    assert after_failure == (1, first)  # every row of the flush in the table, in order
    assert within_period == (1, first + within)  # relay not called during the period
    assert relay.calls == 3 and relay.keys == later  # tried again, and in use again
    assert stored_keys(database) == first + within  # nothing relayed was also inserted
    assert log.last_write_ok is True


@pytest.mark.parametrize("failure", [RuntimeError("relay bug"), ValueError("an event without its key"),
                                     SharedStateUnavailable("Redis unreachable")],
                         ids=lambda exc: type(exc).__name__)
def test_a_relay_raising_anything_falls_back_without_losing_rows_or_stopping_the_writer(database,
                                                                                        failure) -> None:
    relay = RecordingRelay(fail_with=failure)  # fails on every call

    async def scenario():
        log = EventLog(database, flush_interval=0.01, batch_size=3)
        log.relay = relay
        log.start()
        try:
            keys = record_some(log, 7, label="one")
            await wait_until(lambda: len(read_events(database)) == 7, seconds=5, what="the first rows stored")
            writer_alive = not log._task.done()
            keys += record_some(log, 4, label="two")  # the writer goes on after the failure
            await wait_until(lambda: len(read_events(database)) == 11, seconds=5, what="the later rows stored")
            return keys, writer_alive and not log._task.done()
        finally:
            await log.close()

    keys, writer_alive = run_bounded(scenario(), 15)
    assert writer_alive
    assert stored_keys(database) == keys  # all of them, once, in order
    assert relay.calls == 1  # tried once, then left alone (RELAY_RETRY_SECONDS has not passed)


def test_without_a_relay_the_log_inserts_directly_and_reports_no_relay_trouble(database, caplog) -> None:
    log = EventLog(database, batch_size=3)
    keys = record_some(log, 7, label="plain")
    asyncio.run(log.flush())
    assert stored_keys(database) == keys
    assert not [r for r in caplog.records if "relay" in r.getMessage()]
    assert log._relay_down_until == 0.0


# --- Through a real Redis ------------------------------------------------------------------------


def test_events_relayed_through_redis_are_stored_once_and_in_order_by_drain(redis_server, database) -> None:
    async def scenario():
        client = connect(redis_server.url)
        try:
            log = EventLog(database)
            log.relay = EventStream(client).publish_many
            # batch 20: drain has to go round several times to store the 50
            e1 = StreamConsumer(client, sql_event_store(database), consumer="e1", batch=20)
            keys = record_some(log, 50, label="relayed")
            await log.flush()
            on_stream, in_table_before = await client.xlen(STREAM), len(read_events(database))
            drained = await e1.drain()
            again = await e1.drain()
            # a second consumer of the group, willing to take over anything left pending at once
            e2 = StreamConsumer(client, sql_event_store(database), consumer="e2", claim_idle_ms=0)
            await asyncio.sleep(0.01)
            for_e2 = await e2.drain()
            pending = (await client.xpending(STREAM, GROUP))["pending"]
            return keys, on_stream, in_table_before, drained, again, for_e2, pending
        finally:
            await client.aclose()

    keys, on_stream, in_table_before, drained, again, for_e2, pending = run_bounded(scenario(), 15)
    assert (on_stream, in_table_before) == (50, 0)  # relayed, not inserted by the log
    assert (drained, again, for_e2, pending) == (50, 0, 0, 0)
    rows = read_events(database)
    assert [r["event_key"] for r in rows] == keys
    assert [sequence_of(r["event_key"]) for r in rows] == list(range(1, 51))
    assert [(r["kind"], r["call_id"], r["agent_id"], r["data"]["n"]) for r in rows[:3]] == \
        [("offered", "relayed-call-0", None, 0), ("queued", "relayed-call-1", "1001", 1),
         ("offered", "relayed-call-2", "1001", 2)]


def test_two_engines_logging_the_same_keys_through_redis_end_as_one_row_per_key(redis_server, database) -> None:
    async def scenario():
        clients = [connect(redis_server.url), connect(redis_server.url)]
        try:
            logs = []
            for client in clients:
                log = EventLog(database)
                log.relay = EventStream(client).publish_many
                logs.append(log)
            keys = set()
            for n, log in enumerate(logs):
                keys.update(record_some(log, 10, label="caller", key_prefix="caller-42"))  # the same keys
                keys.update(record_some(log, 20, label=f"engine-{n}"))
            for log in logs:
                await log.flush()
            on_stream = await clients[0].xlen(STREAM)
            drained = await StreamConsumer(clients[0], sql_event_store(database), consumer="e1").drain()
            return keys, on_stream, drained
        finally:
            for client in clients:
                await client.aclose()

    keys, on_stream, drained = run_bounded(scenario(), 15)
    assert (on_stream, drained) == (60, 60)  # both engines published all of theirs
    stored = stored_keys(database)
    assert len(keys) == 50
    assert sorted(stored) == sorted(keys)  # one row per key
    caller_rows = [r for r in read_events(database) if r["event_key"].startswith("caller-42:")]
    assert [r["event_key"] for r in caller_rows] == [f"caller-42:{n}" for n in range(10)]


def test_a_batch_published_but_reported_as_failed_is_stored_once(redis_server, database, monotonic) -> None:
    """The XADDs went through but the answer was lost: the log stores the batch directly and the
    consumer delivers it again; the keys make it one row each."""
    async def scenario():
        client = connect(redis_server.url)
        try:
            publish = EventStream(client).publish_many

            async def answer_lost(batch):
                await publish(batch)
                raise SharedStateUnavailable("answer lost")

            log = EventLog(database)
            log.relay = answer_lost
            keys = record_some(log, 15, label="twice")
            await log.flush()
            direct = stored_keys(database)
            drained = await StreamConsumer(client, sql_event_store(database), consumer="e1").drain()
            return keys, direct, drained
        finally:
            await client.aclose()

    keys, direct, drained = run_bounded(scenario(), 15)
    assert direct == keys and drained == 15
    assert stored_keys(database) == keys


def test_redis_killed_part_way_loses_nothing_the_log_still_held(redis_server, database, monotonic) -> None:
    async def scenario():
        client = connect(redis_server.url)
        try:
            log = EventLog(database)
            log.relay = EventStream(client).publish_many
            consumer = StreamConsumer(client, sql_event_store(database), consumer="e1")
            before = record_some(log, 20, label="before")
            await log.flush()
            assert await consumer.drain() == 20

            redis_server.kill()
            started = time.monotonic()
            during = record_some(log, 20, label="during")
            await log.flush()  # the relay fails: stored directly
            during += record_some(log, 10, label="still-down")
            await log.flush()  # within the retry period: straight into the table
            flush_seconds = time.monotonic() - started
            in_table_during = stored_keys(database)

            redis_server.restart()  # empty: the stream and its group are gone
            monotonic.now += RELAY_RETRY_SECONDS + 1
            after = record_some(log, 20, label="after")
            await log.flush()  # relayed again
            on_stream = await client.xlen(STREAM)
            in_table_before_drain = len(stored_keys(database))
            # A consumer made after the restart (the same object's drain: see the regression tests below)
            drained = await StreamConsumer(client, sql_event_store(database), consumer="e1").drain()
            return before, during, after, flush_seconds, in_table_during, on_stream, in_table_before_drain, drained
        finally:
            await client.aclose()

    (before, during, after, flush_seconds, in_table_during, on_stream, in_table_before_drain,
     drained) = run_bounded(scenario(), 20)
    assert flush_seconds < 3  # a refused connection does not hold the writer up
    assert in_table_during == before + during
    assert (on_stream, in_table_before_drain, drained) == (20, 50, 20)
    stored = stored_keys(database)
    assert stored == before + during + after  # everything, in order, each key once
    assert len(set(stored)) == len(stored)


# --- StreamConsumer.drain ------------------------------------------------------------------------


def test_drain_does_not_block_and_gives_block_ms_back(redis_server, database) -> None:
    async def scenario():
        client = connect(redis_server.url)
        try:
            consumer = StreamConsumer(client, sql_event_store(database), consumer="e1", block_ms=1500)
            await EventStream(client).publish_many(
                [EventRecord("queued", 1.0 + n, call_id="c", key=f"k:{n}") for n in range(5)])
            started = time.monotonic()
            drained = await consumer.drain()
            empty = await consumer.drain()  # nothing due: returns at once, it does not wait 1.5 s
            return drained, empty, time.monotonic() - started, consumer.block_ms
        finally:
            await client.aclose()

    drained, empty, seconds, block_ms = run_bounded(scenario(), 15)
    assert (drained, empty) == (5, 0)
    assert seconds < 1.0
    assert block_ms == 1500


def test_drain_gives_block_ms_back_when_the_store_fails_and_the_entries_stay_due(redis_server, database) -> None:
    sql = sql_event_store(database)
    failing = [True]

    async def store(records):
        if failing[0]:
            raise RuntimeError("database refused the batch")
        await sql(records)

    async def scenario():
        client = connect(redis_server.url)
        try:
            consumer = StreamConsumer(client, store, consumer="e1", block_ms=700)
            await EventStream(client).publish_many([EventRecord("queued", 1.0, key=f"k:{n}") for n in range(5)])
            with pytest.raises(RuntimeError, match="refused"):
                await consumer.drain()
            after_failure = consumer.block_ms
            failing[0] = False
            return after_failure, await consumer.drain(), consumer.block_ms
        finally:
            await client.aclose()

    assert run_bounded(scenario(), 15) == (700, 5, 700)
    assert stored_keys(database) == [f"k:{n}" for n in range(5)]


def test_drain_gives_block_ms_back_when_redis_is_gone(redis_server, database) -> None:
    async def scenario():
        client = connect(redis_server.url, timeout=1.0)
        try:
            consumer = StreamConsumer(client, sql_event_store(database), consumer="e1", block_ms=600)
            assert await consumer.drain() == 0
            redis_server.kill()
            with pytest.raises(SharedStateUnavailable):
                await consumer.drain()
            return consumer.block_ms
        finally:
            await client.aclose()

    assert run_bounded(scenario(), 15) == 600


# --- Bugs found by these tests, fixed: kept as regression tests -------------------------------------


def test_the_same_consumer_drains_everything_after_redis_came_back_empty(redis_server, database) -> None:
    async def scenario():
        client = connect(redis_server.url)
        try:
            stream = EventStream(client)
            consumer = StreamConsumer(client, sql_event_store(database), consumer="e1")
            await stream.publish_many([EventRecord("queued", 1.0, key="k:before")])
            assert await consumer.drain() == 1
            redis_server.kill()
            redis_server.restart()
            await stream.publish_many([EventRecord("queued", 2.0, key=f"k:after:{n}") for n in range(5)])
            return await consumer.drain()
        finally:
            await client.aclose()

    assert run_bounded(scenario(), 15) == 5
    assert len(stored_keys(database)) == 6


def test_drain_goes_past_a_batch_of_entries_that_are_not_events(redis_server, database) -> None:
    async def scenario():
        client = connect(redis_server.url)
        try:
            for _ in range(5):
                await client.xadd(STREAM, {"junk": "1"})
            await EventStream(client).publish_many([EventRecord("queued", 1.0, key=f"k:{n}") for n in range(5)])
            await StreamConsumer(client, sql_event_store(database), consumer="e1", batch=5).drain()
        finally:
            await client.aclose()

    run_bounded(scenario(), 15)
    assert stored_keys(database) == [f"k:{n}" for n in range(5)]


def test_closing_the_log_while_the_relay_is_busy_loses_no_event(database) -> None:
    async def scenario():
        relaying = asyncio.Event()

        calls = []

        async def slow_relay(batch):
            calls.append(len(batch))
            if len(calls) == 1:
                relaying.set()
                await asyncio.sleep(30)  # Redis slow or unreachable: the connect timeout
            raise ConnectionError("Redis unreachable")  # later calls: the log stores directly

        log = EventLog(database, flush_interval=0.01)
        log.relay = slow_relay
        log.start()
        keys = record_some(log, 3, label="closing")
        await relaying.wait()
        await log.close()
        return keys

    keys = run_bounded(scenario(), 10)
    assert stored_keys(database) == keys
