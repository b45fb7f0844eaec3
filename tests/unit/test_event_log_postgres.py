"""The event log and the KPI report on a real PostgreSQL server (a throwaway one, see
callcenter/storage/postgres_server.py): duplicate events stored once, and the same report as on
SQLite from the same events."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import make_url, text

from callcenter.events.log import EventLog, read_events
from callcenter.kpi import reports
from callcenter.storage import make_engine
from tests.unit.test_kpis import ROWS, T0


def fresh_schema(url: str):
    """An engine whose events table lives in a schema of its own (tests share one server)."""
    schema = f"t{uuid.uuid4().hex[:12]}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return make_engine(scoped.render_as_string(hide_password=False))


def store(engine, rows, **keys) -> EventLog:
    async def run():
        log = EventLog(engine)
        for i, row in enumerate(rows):
            log.record(row["kind"], call_id=row["call_id"], queue=row["queue"], agent_id=row["agent_id"],
                       data=row["data"], ts=row["ts"], key=keys.get("prefix", "k") + str(i) if keys else None)
        await log.flush()
        return log
    return asyncio.run(run())


def test_a_replayed_stream_is_stored_once_on_postgresql(postgres_url):
    engine = fresh_schema(postgres_url)
    first = store(engine, ROWS, prefix="stream-")
    again = store(engine, ROWS, prefix="stream-")  # the same keys: a replay
    assert (first.skipped, again.skipped, again.rejected) == (0, len(ROWS), 0)
    assert len(read_events(engine, limit=10_000)) == len(ROWS)


def test_the_kpi_report_is_the_same_on_postgresql_and_sqlite(postgres_url, tmp_path):
    pg = fresh_schema(postgres_url)
    lite = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    for engine in (pg, lite):
        store(engine, ROWS)
    query = reports.KpiQuery(interval="30m", tz="Asia/Shanghai")
    on_pg, on_sqlite = reports.kpis(pg, query, now=T0 + 200), reports.kpis(lite, query, now=T0 + 200)
    assert on_pg == on_sqlite
    assert on_pg.intervals[0].total.answered == 2
