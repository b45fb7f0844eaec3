"""The recordings index: one row per recorded file, in the engine's database.

Synchronous, like the other stores: the engine calls it from a worker thread, the API handlers
through ``asyncio.to_thread``, the command line directly. Portable column types only, so it works
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from callcenter.recording.model import Recording

metadata = MetaData()

recordings_table = Table(
    "recordings", metadata,
    Column("id", String(96), primary_key=True),           # the call id, or <call id>-<part>
    Column("call_id", String(64), nullable=False),
    Column("agent_id", String(16), nullable=True),
    Column("queue", String(32), nullable=True),
    Column("customer", String(32), nullable=True),        # the caller's (or called) number
    Column("customer_name", String(128), nullable=True),
    Column("direction", String(16), nullable=True),       # inbound, outbound, callback
    Column("started_at", Float, nullable=False),          # epoch seconds: the recording's start
    Column("ended_at", Float, nullable=False),
    Column("duration", Float, nullable=False),            # seconds of audio, read from the file
    Column("file", String(255), nullable=False),          # relative to the recordings folder
    Column("size_bytes", BigInteger, nullable=False),     # a WAV may pass 2 GiB (PostgreSQL INTEGER)
    Column("pci_spans", JSON, nullable=False, default=list),  # [[start, end], ...] seconds into the file
    Column("indexed_at", Float, nullable=False),
    Index("ix_recordings_call_id", "call_id"),
    Index("ix_recordings_started_at", "started_at"),
    Index("ix_recordings_agent_started", "agent_id", "started_at"),
    Index("ix_recordings_queue_started", "queue", "started_at"),
)

MAX_SEARCH_LIMIT = 500


def create_tables(engine: Engine) -> None:
    """Create the recordings table if it is not there (running it again changes nothing)."""
    metadata.create_all(engine)


class RecordingStore:
    """Recordings in ``engine``'s database; :func:`create_tables` must have been run."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def upsert(self, recording: Recording) -> Recording:
        """Add the row, or replace the one with the same id: indexing a call again (a retry, an
        event replayed) leaves one row, with the latest facts."""
        values = recording.to_json()
        changes = {k: v for k, v in values.items() if k != "id"}
        by_id = recordings_table.c.id == recording.id
        try:
            with self.engine.begin() as conn:
                if conn.execute(update(recordings_table).where(by_id).values(changes)).rowcount == 0:
                    conn.execute(insert(recordings_table).values(values))
        except IntegrityError:
            # Another writer inserted the same id between our UPDATE and INSERT: update theirs.
            with self.engine.begin() as conn:
                conn.execute(update(recordings_table).where(by_id).values(changes))
        return recording

    def get(self, recording_id: str) -> Recording | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(recordings_table).where(recordings_table.c.id == recording_id)).first()
        return None if row is None else _recording(row)

    def search(self, *, agent_id: str | None = None, queue: str | None = None, customer: str | None = None,
               call_id: str | None = None, since: float | None = None, until: float | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[Recording], int]:
        """One page of the recordings that match, newest first, and how many match in all.
        ``customer``: part of the number or (any case) of the name; ``since`` inclusive and
        ``until`` exclusive bound the start time."""
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_SEARCH_LIMIT}, not {limit}")
        if offset < 0:
            raise ValueError(f"offset must be 0 or more, not {offset}")
        c = recordings_table.c
        conditions = []
        for column, value in ((c.agent_id, agent_id), (c.queue, queue), (c.call_id, call_id)):
            if value is not None:
                conditions.append(column == value)
        if customer:
            conditions.append(or_(c.customer.contains(customer, autoescape=True),
                                  c.customer_name.icontains(customer, autoescape=True)))
        if since is not None:
            conditions.append(c.started_at >= since)
        if until is not None:
            conditions.append(c.started_at < until)
        where = and_(true(), *conditions)
        page = (select(recordings_table).where(where)
                .order_by(c.started_at.desc(), c.id.desc()).limit(limit).offset(offset))
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(recordings_table).where(where)).scalar_one()
            rows = [_recording(row) for row in conn.execute(page)]
        return rows, total

    def started_before(self, moment: float, *, after: tuple[float, str] | None = None,
                       limit: int = 500) -> list[Recording]:
        """Up to ``limit`` recordings that started before ``moment``, oldest first; ``after``
        (the last row's started_at and id) continues from a previous page, so rows a caller keeps
        are not read again."""
        c = recordings_table.c
        query = select(recordings_table).where(c.started_at < moment)
        if after is not None:
            started, last_id = after
            query = query.where(or_(c.started_at > started, and_(c.started_at == started, c.id > last_id)))
        query = query.order_by(c.started_at, c.id).limit(limit)
        with self.engine.connect() as conn:
            return [_recording(row) for row in conn.execute(query)]

    def delete(self, ids: list[str]) -> int:
        """Remove these rows; how many there were."""
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(delete(recordings_table).where(recordings_table.c.id.in_(ids))).rowcount


def _recording(row) -> Recording:
    values = dict(row._mapping)
    values["pci_spans"] = tuple(tuple(span) for span in values["pci_spans"] or ())
    return Recording(**values)
