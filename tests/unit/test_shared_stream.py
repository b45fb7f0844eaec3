"""The event stream against a real redis-server and a real SQLite file: what is published reaches
the events table once, however often it is delivered (replays, a consumer that died before
acknowledging, a store that failed), and the consumer's loop outlives Redis going away."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import sqlalchemy as sa

from callcenter.events.log import EventRecord, events_table, read_events
from callcenter.shared import connect
from callcenter.shared.stream import EventStream, StreamConsumer, sql_event_store
from tests.redis_server import run_bounded, wait_until

GROUP = "event-log"
STREAM = "cc:events"




def row_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one()


def events(count: int, *, run: str = "run-1") -> list[EventRecord]:
    """``count`` distinct events with every field used, some of them empty."""
    kinds = ("call_arrived", "queued", "offered", "answered", "hangup")
    return [EventRecord(kinds[n % 5], 1711352000.0 + n / 7, call_id=f"call-{n // 5}",
                        queue="support" if n % 5 else None, agent_id="1001" if n % 5 >= 2 else None,
                        data={"n": n, "note": "接通", "nested": {"wait": n * 0.5}}, key=f"{run}:{n}")
            for n in range(count)]


class CountingStore:
    """The SQL store, counting how often each event key was handed to it."""

    def __init__(self, engine: sa.Engine):
        self.sql = sql_event_store(engine)
        self.handed: Counter[str] = Counter()

    async def __call__(self, records: list[EventRecord]) -> None:
        self.handed.update(record.key for record in records)
        await self.sql(records)


async def publish_all(url: str, records: list[EventRecord]) -> None:
    client = connect(url)
    try:
        stream = EventStream(client)
        for record in records:
            await stream.publish(record)
    finally:
        await client.aclose()


def test_published_events_are_stored_once_and_replays_add_no_rows(redis_server, database) -> None:
    published = events(300)

    async def scenario():
        await publish_all(redis_server.url, published)
        client = connect(redis_server.url)
        try:
            # batch 128: three reads, and replays in three pages
            consumer = StreamConsumer(client, sql_event_store(database), consumer="writer-1", batch=128, block_ms=50)
            stored = [await consumer.run_once() for _ in range(4)]
            pending = (await client.xpending(STREAM, GROUP))["pending"]
            replays = [await consumer.replay() for _ in range(3)]
            return stored, pending, replays
        finally:
            await client.aclose()

    stored, pending, replays = run_bounded(scenario())
    assert stored == [128, 128, 44, 0]
    assert pending == 0  # every entry stored was acknowledged
    assert replays == [300, 300, 300]
    assert row_count(database) == 300  # no duplicates
    rows = read_events(database, limit=1000)
    assert [(r["kind"], r["ts"], r["call_id"], r["queue"], r["agent_id"], r["data"], r["event_key"]) for r in rows] \
        == [(e.kind, e.ts, e.call_id, e.queue, e.agent_id, e.data, e.key) for e in published]


def test_an_event_without_its_key_is_refused(redis_server) -> None:
    async def scenario():
        client = connect(redis_server.url)
        try:
            with pytest.raises(ValueError, match="key"):
                await EventStream(client).publish(EventRecord("queued", 1.0))
            return await client.exists(STREAM)
        finally:
            await client.aclose()

    assert run_bounded(scenario()) == 0


def test_entries_a_dead_consumer_never_acknowledged_are_taken_over_and_stored_once(redis_server, database) -> None:
    store = CountingStore(database)

    async def scenario():
        client = connect(redis_server.url)
        try:
            survivor = StreamConsumer(client, store, consumer="survivor", claim_idle_ms=200, block_ms=50)
            assert await survivor.run_once() == 0  # makes the group; nothing published yet
            await publish_all(redis_server.url, events(50))
            # the dead consumer read everything and crashed before XACK
            read = await client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=100)
            assert len(read[0][1]) == 50
            too_early = await survivor.run_once()  # delivered to "dead", not idle long enough yet
            await asyncio.sleep(0.3)
            taken_over = await survivor.run_once()
            pending = await client.xpending(STREAM, GROUP)
            await asyncio.sleep(0.3)  # past claim_idle_ms again: nothing left to take over
            later = await survivor.run_once()
            return too_early, taken_over, pending, later
        finally:
            await client.aclose()

    too_early, taken_over, pending, later = run_bounded(scenario())
    assert (too_early, taken_over, later) == (0, 50, 0)
    assert pending["pending"] == 0
    assert set(store.handed.values()) == {1} and len(store.handed) == 50  # each event stored once
    assert row_count(database) == 50


def test_a_consumer_restarted_under_its_name_stores_its_unacknowledged_entries_at_once(redis_server, database) -> None:
    async def scenario():
        client = connect(redis_server.url)
        try:
            await publish_all(redis_server.url, events(20))
            await client.xgroup_create(STREAM, GROUP, id="0")
            await client.xreadgroup(GROUP, "writer-1", {STREAM: ">"}, count=100)  # then it crashed
            # claim_idle_ms is long: only reading its own pending entries can find them now
            restarted = StreamConsumer(client, sql_event_store(database), consumer="writer-1", block_ms=50)
            return await restarted.run_once(), (await client.xpending(STREAM, GROUP))["pending"]
        finally:
            await client.aclose()

    assert run_bounded(scenario()) == (20, 0)
    assert row_count(database) == 20


def test_a_failing_store_leaves_its_entries_pending_until_they_are_stored(redis_server, database) -> None:
    sql = sql_event_store(database)
    attempts = []

    async def store_failing_once(records: list[EventRecord]) -> None:
        attempts.append(len(records))
        if len(attempts) == 1:
            raise RuntimeError("database refused the batch")
        await sql(records)

    async def scenario():
        client = connect(redis_server.url)
        try:
            await publish_all(redis_server.url, events(30))
            consumer = StreamConsumer(client, store_failing_once, consumer="writer-1", block_ms=50)
            with pytest.raises(RuntimeError):
                await consumer.run_once()
            pending_after_failure = (await client.xpending(STREAM, GROUP))["pending"]
            stored = await consumer.run_once()
            return pending_after_failure, stored, (await client.xpending(STREAM, GROUP))["pending"]
        finally:
            await client.aclose()

    assert run_bounded(scenario()) == (30, 30, 0)
    assert attempts == [30, 30]
    assert row_count(database) == 30


def test_run_keeps_going_through_a_redis_restart(redis_server, database) -> None:
    async def scenario():
        client = connect(redis_server.url)
        consumer = StreamConsumer(client, sql_event_store(database), consumer="writer-1", block_ms=100,
                                  retry_delay=0.05, max_retry_delay=0.4)
        running = asyncio.create_task(consumer.run())
        try:
            await publish_all(redis_server.url, events(100, run="before"))
            await wait_until(lambda: row_count(database) == 100, what="the first 100 events stored")
            redis_server.kill()
            await asyncio.sleep(0.8)  # run() meets the outage several times
            assert not running.done()
            redis_server.restart()  # empty: the stream and the group are gone too
            await publish_all(redis_server.url, events(100, run="after"))
            await wait_until(lambda: row_count(database) == 200, what="the events published after the restart stored")

            async def all_acknowledged() -> bool:
                return (await client.xpending(STREAM, GROUP))["pending"] == 0
            await wait_until(all_acknowledged, what="the events after the restart acknowledged")
            assert not running.done()
            return await client.xlen(STREAM)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await client.aclose()

    assert run_bounded(scenario()) == 100  # the restarted Redis holds only what came after
    assert row_count(database) == 200


def test_a_blocking_read_longer_than_the_client_timeout_is_refused(redis_server) -> None:
    async def scenario():
        client = connect(redis_server.url, timeout=0.5)
        try:
            with pytest.raises(ValueError, match="socket_timeout"):
                StreamConsumer(client, lambda records: None, consumer="writer-1", block_ms=1000)
        finally:
            await client.aclose()

    run_bounded(scenario())


def test_run_stops_when_cancelled_in_the_middle_of_its_work(redis_server) -> None:
    async def stops_within(seconds: float, client, group: str) -> bool:
        consumer = StreamConsumer(client, lambda records: None, group=group, consumer="writer-1", batch=5,
                                  block_ms=100)
        running = asyncio.create_task(consumer.run())
        await wait_until(lambda: consumer.stored > 0, what="the consumer at work")
        running.cancel()  # somewhere in its round trips to Redis
        done, _ = await asyncio.wait([running], timeout=seconds)
        while not running.done():  # a loop that ignored it: stop it all the same, to report it
            running.cancel()
            await asyncio.sleep(0.01)
        return bool(done)

    async def scenario():
        await publish_all(redis_server.url, events(2000))
        client = connect(redis_server.url)
        try:
            # a new group each time: every consumer starts at the beginning of the stream
            return [await stops_within(1.0, client, f"group-{n}") for n in range(10)]
        finally:
            await client.aclose()

    assert run_bounded(scenario()) == [True] * 10
