"""The callbacks table and every change the engine makes to a callback, each one atomic.

Synchronous, like the CRM store: the engine calls it from a worker thread, the API handlers and
the command line directly. Works on SQLite and PostgreSQL. A state change is one conditional
UPDATE (``... WHERE status = 'waiting'``), so two engines, or two tasks of one, racing for the
same callback cannot both win: the loser gets None.

What the columns may hold is decided in :mod:`callcenter.callback.model`; this module stores it.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from callcenter.callback.model import (
    E164,
    FINAL_STATUSES,
    MAX_NAME_LENGTH,
    MAX_NOTE_LENGTH,
    OPEN_STATUSES,
    OUTCOMES,
    STATUSES,
    AttemptDecision,
    Callback,
    CallbackPolicy,
    ValidatedRequest,
)

log = logging.getLogger(__name__)

metadata = MetaData()

callbacks_table = Table(
    "callbacks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(64), nullable=False, unique=True),  # hold: the caller's call id; web: cb-<id>
    Column("source", String(8), nullable=False),                 # hold, web
    Column("queue", String(32), nullable=False),
    Column("number", String(16), nullable=False),                # E.164: at most 15 digits and the '+'
    Column("name", String(MAX_NAME_LENGTH), nullable=True),
    Column("note", String(MAX_NOTE_LENGTH), nullable=True),
    Column("priority", Integer, nullable=False, default=0),
    Column("enqueued_at", Float, nullable=False),                # epoch seconds: the place in line
    Column("not_before", Float, nullable=True),
    Column("not_after", Float, nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=True),
    Column("last_outcome", String(16), nullable=True),
    Column("agent_id", String(16), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_callbacks_status", "status"),
    Index("ix_callbacks_number_created", "number", "created_at"),   # the rate limit's count
)

_CALLBACK_FIELDS = ("id", "call_id", "source", "queue", "number", "priority", "enqueued_at", "not_before",
                    "not_after", "status", "attempts", "next_attempt_at", "last_outcome", "agent_id",
                    "created_at", "name", "note", "updated_at")
MAX_SEARCH_LIMIT = 1000


def create_tables(engine: Engine) -> None:
    """Create the callbacks table if it is not there (running it again changes nothing)."""
    metadata.create_all(engine)


class CallbackStore:
    """Callbacks in ``engine``'s database; :func:`create_tables` must have been run."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # ---- adding
    def add_hold(self, call_id: str, queue: str, number: str, priority: int, enqueued_at: float,
                 now: float) -> Callback:
        """A virtual-hold callback for the caller ``call_id``, keeping its place (``enqueued_at``).
        Idempotent: if ``call_id`` already has one (the key pressed twice, an event replayed), that
        one is returned unchanged. ``number`` must already be E.164 (model.callable_number)."""
        _check_e164(number)
        existing = self.by_call_id(call_id)
        if existing is not None:
            return existing
        row = {"call_id": call_id, "source": "hold", "queue": queue, "number": number, "priority": priority,
               "enqueued_at": enqueued_at, "status": "waiting", "attempts": 0, "created_at": now,
               "updated_at": now}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(callbacks_table).values(row))
        except IntegrityError:
            # Another writer added the same call between our look and our insert: theirs stands.
            existing = self.by_call_id(call_id)
            if existing is None:
                raise
            return existing
        log.info("callback: caller %s on %s chose virtual hold", call_id, queue)
        return self._one(callbacks_table.c.call_id == call_id)

    def add_web(self, validated: ValidatedRequest, policy: CallbackPolicy, now: float) -> Callback:
        """A web callback; its place in line is the start of its window (or now), its call id
        ``cb-<id>``."""
        _check_e164(validated.number)
        with self.engine.begin() as conn:
            # The call id needs the row's id: a placeholder, unique and never seen outside this
            # transaction, is replaced before the commit.
            callback_id = conn.execute(insert(callbacks_table).values(
                call_id=f"cb-new-{uuid.uuid4().hex}", source="web", queue=validated.queue,
                number=validated.number, name=validated.name, note=validated.note, priority=policy.priority,
                enqueued_at=validated.not_before if validated.not_before is not None else now,
                not_before=validated.not_before, not_after=validated.not_after, status="waiting",
                attempts=0, created_at=now, updated_at=now)).inserted_primary_key[0]
            conn.execute(update(callbacks_table).where(callbacks_table.c.id == callback_id)
                         .values(call_id=f"cb-{callback_id}"))
            callback = _read(conn, callbacks_table.c.id == callback_id)
        log.info("callback: web request cb-%s for %s", callback_id, validated.queue)
        return callback

    # ---- reading
    def get(self, callback_id: int) -> Callback | None:
        return self._maybe(callbacks_table.c.id == callback_id)

    def by_call_id(self, call_id: str) -> Callback | None:
        return self._maybe(callbacks_table.c.call_id == call_id)

    def open_callbacks(self) -> list[Callback]:
        """Callbacks waiting or being dialled, in line order: what the engine restores at start."""
        query = (select(callbacks_table).where(callbacks_table.c.status.in_(OPEN_STATUSES))
                 .order_by(callbacks_table.c.enqueued_at, callbacks_table.c.id))
        with self.engine.connect() as conn:
            return [_callback(row) for row in conn.execute(query)]

    def recent_count(self, number: str, since: float) -> int:
        """Web requests for ``number`` (E.164) created at or after ``since``, whatever became of
        them: the rate limit counts asking, not calling."""
        query = (select(func.count()).select_from(callbacks_table)
                 .where(callbacks_table.c.source == "web", callbacks_table.c.number == number,
                        callbacks_table.c.created_at >= since))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def search(self, status: str | None = None, queue: str | None = None, limit: int = 100) -> list[Callback]:
        """Callbacks, newest first, optionally only those with ``status`` or in ``queue``."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"{status!r} is not a callback status (one of: {', '.join(STATUSES)})")
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_SEARCH_LIMIT}, not {limit}")
        query = select(callbacks_table)
        if status is not None:
            query = query.where(callbacks_table.c.status == status)
        if queue is not None:
            query = query.where(callbacks_table.c.queue == queue)
        query = query.order_by(callbacks_table.c.created_at.desc(), callbacks_table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_callback(row) for row in conn.execute(query)]

    # ---- attempts
    def start_attempt(self, call_id: str, agent_id: str, now: float) -> Callback | None:
        """waiting -> dialing for ``agent_id``, counting one more attempt; None if the callback is
        not waiting (another task took it, it was cancelled, it does not exist)."""
        return self._change(call_id, ("waiting",), now, status="dialing",
                            attempts=callbacks_table.c.attempts + 1, agent_id=agent_id)

    def finish_attempt(self, call_id: str, decision: AttemptDecision, outcome: str, now: float) -> Callback | None:
        """Apply :func:`~callcenter.callback.model.after_attempt`'s decision to a callback being
        dialled; None if it is no longer dialing (cancelled meanwhile: it stays cancelled)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"{outcome!r} is not an attempt outcome (one of: {', '.join(OUTCOMES)})")
        if decision.status not in ("waiting", *FINAL_STATUSES):
            raise ValueError(f"an attempt cannot end in status {decision.status!r}")
        return self._change(call_id, ("dialing",), now, status=decision.status,
                            next_attempt_at=decision.next_attempt_at, last_outcome=outcome)

    def release(self, call_id: str, now: float) -> Callback | None:
        """dialing -> waiting without counting the attempt: the reserved agent did not answer, so
        the customer was never dialled. None if it was not dialing."""
        return self._change(call_id, ("dialing",), now, status="waiting",
                            attempts=callbacks_table.c.attempts - 1, agent_id=None)

    def set_status(self, call_id: str, status: str, now: float) -> Callback | None:
        """End an open callback (``expired``, ``cancelled``, ``failed``, ``completed``); None if it
        is not open. Going back to waiting is :meth:`release`, to dialing :meth:`start_attempt`."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"set_status ends a callback: {status!r} is not one of {', '.join(FINAL_STATUSES)} "
                             "(back to waiting is release(), to dialing start_attempt())")
        return self._change(call_id, OPEN_STATUSES, now, status=status)

    # ---- inside
    def _change(self, call_id: str, from_statuses: tuple[str, ...], now: float, **values) -> Callback | None:
        """One conditional UPDATE: the row changes only if its status is still one of
        ``from_statuses``; the changed row, or None."""
        statement = (update(callbacks_table)
                     .where(callbacks_table.c.call_id == call_id, callbacks_table.c.status.in_(from_statuses))
                     .values(updated_at=now, **values))
        with self.engine.begin() as conn:
            if conn.execute(statement).rowcount != 1:
                return None
            return _read(conn, callbacks_table.c.call_id == call_id)

    def _maybe(self, condition) -> Callback | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(callbacks_table).where(condition)).first()
        return None if row is None else _callback(row)

    def _one(self, condition) -> Callback:
        with self.engine.connect() as conn:
            return _read(conn, condition)


def _read(conn: Connection, condition) -> Callback:
    return _callback(conn.execute(select(callbacks_table).where(condition)).one())


def _callback(row) -> Callback:
    values = row._mapping
    return Callback(**{name: values[name] for name in _CALLBACK_FIELDS})


def _check_e164(number: str) -> None:
    if not isinstance(number, str) or not E164.match(number):
        raise ValueError(f"{number!r} is not an E.164 number (normalise it with the callback model first)")
