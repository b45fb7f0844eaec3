"""The ``qa_evaluations`` table: one row per evaluation of a recorded call, with the answers, the
score and the fingerprint of the form version that produced it. Rows are written once and read
back as plain dicts (the API's JSON). Portable column types only: SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Mapping

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from callcenter.qa.forms import Form, Scored

metadata = MetaData()
evaluations_table = Table(
    "qa_evaluations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(64), nullable=False),
    Column("agent_id", String(16), nullable=False),
    Column("queue", String(32), nullable=True),
    Column("team", String(64), nullable=True),       # the agent's team when the call was scored
    Column("form", String(64), nullable=False),
    Column("form_fingerprint", String(16), nullable=False),
    Column("evaluator", String(64), nullable=False),  # staff user name, or "api-token"
    Column("answers", JSON, nullable=False),          # question id -> true/false, 0..max or "na"
    Column("total", Float, nullable=False),
    Column("sections", JSON, nullable=False),         # section id -> percent or null
    Column("critical_failed", JSON, nullable=False),  # question ids
    Column("comment", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_qa_evaluations_created", "created_at"),
    Index("ix_qa_evaluations_agent", "agent_id", "created_at"),
    Index("ix_qa_evaluations_call", "call_id"),
)


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine)


class QaStore:
    """Evaluations in the engine's database; creates its table on first use."""

    def __init__(self, engine: Engine, *, clock=time.time):
        self.engine = engine
        self.clock = clock
        create_tables(engine)

    def add(self, *, call_id: str, agent_id: str, form: Form, scored: Scored, answers: Mapping[str, object],
            evaluator: str, queue: str | None = None, team: str | None = None, comment: str | None = None,
            created_at: float | None = None) -> int:
        """Store an evaluation scored with ``form``; returns its id."""
        row = {
            "call_id": call_id, "agent_id": agent_id, "queue": queue, "team": team,
            "form": form.name, "form_fingerprint": form.fingerprint, "evaluator": evaluator,
            "answers": dict(answers), "total": scored.total, "sections": dict(scored.sections),
            "critical_failed": list(scored.critical_failed), "comment": comment,
            "created_at": self.clock() if created_at is None else created_at,
        }
        with self.engine.begin() as conn:
            return conn.execute(insert(evaluations_table).values(row)).inserted_primary_key[0]

    def get(self, evaluation_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(evaluations_table)
                               .where(evaluations_table.c.id == evaluation_id)).mappings().first()
        return dict(row) if row is not None else None

    def list(self, agent_id: str | None = None, call_id: str | None = None, since: float | None = None,
             until: float | None = None, limit: int | None = 500) -> list[dict]:
        """Newest first; ``since`` inclusive, ``until`` exclusive; ``limit`` None: all of them."""
        table = evaluations_table
        query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc())
        if agent_id is not None:
            query = query.where(table.c.agent_id == agent_id)
        if call_id is not None:
            query = query.where(table.c.call_id == call_id)
        if since is not None:
            query = query.where(table.c.created_at >= since)
        if until is not None:
            query = query.where(table.c.created_at < until)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
