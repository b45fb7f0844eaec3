"""Event table and its batched, non-blocking, idempotent writer.

Every event carries a unique ``event_key``. The writer inserts with "on conflict do nothing", so
an event stored twice (a batch retried after a commit whose answer was lost, a stream replayed
after a crash) is one row. Keys are ``<run id>:<sequence>`` unless the producer gives its own
(a replay keeps the keys it read).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (JSON, Column, Engine, Float, Index, Integer, MetaData, String, Table, inspect,
                        select, text)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

RELAY_RETRY_SECONDS = 5

metadata = MetaData()

events_table = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),            # epoch seconds, when it happened
    Column("kind", String(40), nullable=False),     # e.g. call_arrived, ivr_choice, queued, offered
    Column("call_id", String(64), nullable=True),
    Column("queue", String(32), nullable=True),
    Column("agent_id", String(16), nullable=True),
    Column("data", JSON, nullable=False, default=dict),
    # Unique: a replayed or duplicated event is stored once. Nullable only for rows written before
    # the key existed (both SQLite and PostgreSQL let NULLs repeat under a unique index).
    Column("event_key", String(80), nullable=True),
    Index("ix_events_call", "call_id", "id"),
    Index("ix_events_ts", "ts"),
    Index("ux_events_key", "event_key", unique=True),
)


def create_events_table(engine: Engine) -> None:
    """Create the table, or bring one written by an older version up to this schema."""
    metadata.create_all(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("events")}
    if "event_key" not in columns:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE events ADD COLUMN event_key VARCHAR(80)"))
            conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS ux_events_key ON events (event_key)"))
        log.info("events table: added the unique event_key column")


def _insert_once(engine: Engine):
    """INSERT that skips rows whose event_key is already stored."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(engine.dialect.name)
    if dialect is None:
        raise RuntimeError(f"the event log supports SQLite and PostgreSQL, not {engine.dialect.name}")
    # RETURNING names the rows actually stored: rowcount after executemany is not reliable
    # across drivers (psycopg reports the batch, stored or not).
    return (dialect.insert(events_table).on_conflict_do_nothing(index_elements=["event_key"])
            .returning(events_table.c.id))


@dataclass(frozen=True)
class EventRecord:
    kind: str
    ts: float
    call_id: str | None = None
    queue: str | None = None
    agent_id: str | None = None
    data: dict = field(default_factory=dict)
    key: str | None = None

    def row(self) -> dict:
        return {"kind": self.kind, "ts": self.ts, "call_id": self.call_id, "queue": self.queue,
                "agent_id": self.agent_id, "data": json.loads(json.dumps(self.data, default=str)),
                "event_key": self.key}


class EventLog:
    """``record`` never blocks the loop: rows are buffered and inserted by a background task in a
    worker thread, in order, every ``flush_interval`` seconds or as soon as a batch is full."""

    def __init__(self, engine: Engine, *, flush_interval: float = 0.2, batch_size: int = 500,
                 clock=time.time):
        self.engine = engine
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.clock = clock
        self._pending: list[EventRecord] = []
        self.rejected = 0  # rows the database refused on their own (logged with their content)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        # One run id per writer: keys stay unique across restarts without reading the table.
        self._run_id = uuid.uuid4().hex[:16]
        self._sequence = itertools.count(1)
        self.skipped = 0  # events whose key was already stored (duplicates), not inserted again
        self.last_write_ok: bool | None = None  # the last batch reached the database (None: none yet)
        # Called with each event as a row (as read_events gives it, without id) the moment it is
        # recorded: live figures follow the log without reading it back.
        self.listeners: list[Callable[[dict], None]] = []
        # Engines sharing queues send their events through a relay (a Redis stream that a
        # consumer stores into this table); a relay that raises is left alone for
        # RELAY_RETRY_SECONDS and the rows are stored here directly meanwhile (keys make any
        # row that also comes through the relay later one row).
        self.relay: Callable[[list[EventRecord]], Awaitable[Any]] | None = None
        self._relay_down_until = 0.0
        create_events_table(engine)
        self._insert_statement = _insert_once(engine)

    def record(self, kind: str, *, call_id: str | None = None, queue: str | None = None,
               agent_id: str | None = None, data: dict | None = None, ts: float | None = None,
               key: str | None = None) -> None:
        """Queue an event for the table. ``key`` identifies it for good (default: a new one)."""
        event = EventRecord(kind, ts if ts is not None else self.clock(), call_id, queue, agent_id, data or {},
                            key or f"{self._run_id}:{next(self._sequence)}")
        self._pending.append(event)
        for listener in self.listeners:
            try:
                # the event as read back, minus the JSON round trip the insert needs
                listener({"kind": kind, "ts": event.ts, "call_id": call_id, "queue": queue,
                          "agent_id": agent_id, "data": event.data})
            except Exception:
                log.exception("event listener failed on %s", kind)  # a live view never stops the log
        if len(self._pending) >= self.batch_size:
            self._wakeup.set()

    def lag_seconds(self) -> float:
        """How long the oldest event not yet in the database has waited (0: none waits)."""
        return max(0.0, self.clock() - self._pending[0].ts) if self._pending else 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-log-writer")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._wakeup.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size:]
            try:
                written = await self._write(batch)
            except asyncio.CancelledError:
                # stopped mid-write (close() cancels the writer): the batch goes back for the last
                # flush; had it been written after all, its keys make the second write a no-op
                self._pending[:0] = batch
                raise
            if not written:  # the database is away: keep every row, in order, and retry later
                self._pending[:0] = batch
                return

    async def _write(self, batch: list[EventRecord]) -> bool:
        """Relay or store the batch; False if the database is unreachable (nothing stored)."""
        if await self._relayed(batch):
            return True
        try:
            await asyncio.to_thread(self._insert, batch)
            self.last_write_ok = True
        except (OperationalError, OSError) as exc:
            log.error("event log write failed (%s); keeping %d events for the next try", exc, len(batch))
            self.last_write_ok = False
            return False
        except Exception as exc:
            # the database answered but refused the batch: one row is bad. Store the others one
            # by one, so a single bad row can never block the log.
            log.warning("event batch refused (%s); storing its %d rows one by one", exc, len(batch))
            await asyncio.to_thread(self._insert_one_by_one, batch)
        return True

    async def _relayed(self, batch: list[EventRecord]) -> bool:
        if self.relay is None or time.monotonic() < self._relay_down_until:
            return False
        try:
            await self.relay(batch)
            return True
        except Exception as exc:  # unreachable (ConnectionError) or refusing: the table is always there
            log.warning("event relay unavailable (%s); storing events directly for %d s", exc, RELAY_RETRY_SECONDS)
            self._relay_down_until = time.monotonic() + RELAY_RETRY_SECONDS
            return False

    def _insert(self, batch: list[EventRecord]) -> None:
        with self.engine.begin() as conn:
            stored = len(conn.execute(self._insert_statement, [e.row() for e in batch]).all())
        self.skipped += len(batch) - stored

    def _insert_one_by_one(self, batch: list[EventRecord]) -> None:
        for event in batch:
            try:
                self._insert([event])
            except (OperationalError, OSError):
                raise
            except Exception as exc:
                self.rejected += 1
                log.error("event refused by the database and left out: %r (%s)", event, exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()


def read_events(engine: Engine, *, call_id: str | None = None, since_id: int = 0, limit: int = 1000) -> list[dict]:
    query = select(events_table).where(events_table.c.id > since_id).order_by(events_table.c.id).limit(limit)
    if call_id is not None:
        query = query.where(events_table.c.call_id == call_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def read_agent_day(engine: Engine, agent_id: str, since: float) -> list[dict]:
    """What an agent's own figures since ``since`` are made of: the agent's events, every event of
    the calls they answered, and engine starts/stops (which end every state)."""
    t = events_table.c
    answered = select(t.call_id).where(t.agent_id == agent_id, t.kind == "answered", t.ts >= since)
    query = (select(events_table)
             .where(t.ts >= since,
                    (t.agent_id == agent_id) | t.call_id.in_(answered)
                    | t.kind.in_(("engine_started", "engine_stopped")))
             .order_by(t.id))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def read_events_since(engine: Engine, since_ts: float) -> list[dict]:
    """Every event from ``since_ts`` on, in log order (a day's worth to seed live figures)."""
    t = events_table.c
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(events_table).where(t.ts >= since_ts).order_by(t.id))]

