"""The audit log: who did what to whom, and when, for every supervisor action, recording playback
or export and other staff action. One append-only table (``audit_log``); rows are never updated.
Writes are synchronous and small (one INSERT), and happen before the action's answer is sent, so
an action whose audit row could not be written fails instead of going unrecorded."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import JSON, Column, Engine, Float, Index, Integer, MetaData, String, Table, insert, select

metadata = MetaData()
audit_table = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(64), nullable=False),   # "supervisor:alice", "admin:api-token", "agent:1001"
    Column("action", String(48), nullable=False),  # e.g. agent_paused, spy_started, recording_played
    Column("target", String(96), nullable=False),  # what it was done to: "agent:1001", "call:<id>", ...
    Column("details", JSON, nullable=False, default=dict),
    Index("ix_audit_ts", "ts"),
    Index("ix_audit_target", "target", "id"),
)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    action: str
    target: str
    details: dict


class AuditLog:
    def __init__(self, engine: Engine, *, clock=time.time):
        self.engine = engine
        self.clock = clock
        metadata.create_all(engine)

    def record(self, actor: str, action: str, target: str, **details: object) -> None:
        """``actor``: an Identity's ``actor`` string; ``details``: JSON-able facts of the action."""
        with self.engine.begin() as conn:
            conn.execute(insert(audit_table).values(ts=self.clock(), actor=actor, action=action, target=target,
                                                    details=details))

    def entries(self, *, actor: str | None = None, action: str | None = None, target: str | None = None,
                since: float | None = None, limit: int = 500) -> list[AuditEntry]:
        """Newest first."""
        query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        for column, value in (("actor", actor), ("action", action), ("target", target)):
            if value is not None:
                query = query.where(audit_table.c[column] == value)
        if since is not None:
            query = query.where(audit_table.c.ts >= since)
        with self.engine.connect() as conn:
            return [AuditEntry(r.id, r.ts, r.actor, r.action, r.target, dict(r.details or {}))
                    for r in conn.execute(query)]
