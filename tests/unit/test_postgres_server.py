"""The throwaway PostgreSQL server (callcenter.storage.postgres_server) is a real server: SQLAlchemy
creates, writes and reads tables in it, the event log's own table and writer work on it (its
"insert once" statement is PostgreSQL's ON CONFLICT there), the report's reader reads it back,
and stopping it leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from callcenter.events.log import EventLog, events_table, read_events
from callcenter.kpi.report_cli import read_all_events
from callcenter.storage import make_engine
from callcenter.storage.postgres_server import PostgresServer, PostgresServerError


@pytest.fixture
def engine(postgres_url: str):
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def test_the_url_is_a_psycopg_url_on_loopback(postgres_url: str) -> None:
    url = sa.make_url(postgres_url)
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "127.0.0.1", "callcenter_test")
    assert url.port and url.password


def test_a_table_made_through_sqlalchemy_is_written_and_read_back(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    notes = sa.Table("server_check_notes", meta,
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("text", sa.String(40), nullable=False),
                     sa.Column("extra", sa.JSON, nullable=False))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(notes), [{"text": "first", "extra": {"n": 1}}, {"text": "二", "extra": {"n": [2]}}])
    with engine.connect() as conn:
        assert conn.execute(sa.text("select version()")).scalar().startswith("PostgreSQL")
        rows = conn.execute(sa.select(notes.c.text, notes.c.extra).order_by(notes.c.id)).all()
    assert [tuple(r) for r in rows] == [("first", {"n": 1}), ("二", {"n": [2]})]
    meta.drop_all(engine)


def test_the_event_log_creates_and_writes_its_table_on_postgresql(engine: sa.Engine, postgres_url: str) -> None:
    async def run() -> tuple[int, int]:
        log = EventLog(engine)
        log.record("queued", call_id="pg-1", queue="support", ts=100.0, data={"priority": 5, "requirement": "true"})
        log.record("answered", call_id="pg-1", queue="support", agent_id="1001", ts=112.5,
                   data={"offer_id": "pg-1/1", "wait": 12.5})
        log.record("answered", call_id="pg-1", ts=113.0, key="fixed-key")
        log.record("answered", call_id="pg-1", ts=113.0, key="fixed-key")  # a duplicate: stored once
        await log.flush()
        return log.rejected, log.skipped

    assert asyncio.run(run()) == (0, 1)
    assert engine.dialect.name == "postgresql"
    assert "events" in sa.inspect(engine).get_table_names()
    rows = read_events(engine, call_id="pg-1")
    assert [(r["kind"], r["ts"], r["queue"], r["agent_id"]) for r in rows] == [
        ("queued", 100.0, "support", None), ("answered", 112.5, "support", "1001"), ("answered", 113.0, None, None)]
    assert rows[1]["data"] == {"offer_id": "pg-1/1", "wait": 12.5}  # JSON comes back as a dict
    # the KPI report's reader pages through the same rows
    assert [r["kind"] for r in read_all_events(postgres_url) if r["call_id"] == "pg-1"] == [
        "queued", "answered", "answered"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events_table)
                            .where(events_table.c.call_id == "pg-1")).scalar() == 3


def test_stopping_removes_the_cluster_and_closes_the_port(tmp_path) -> None:
    server = PostgresServer(database="stop_check").start()
    folder, url = server.base_dir, server.url
    assert folder is not None and (folder / "data" / "PG_VERSION").is_file()
    assert (folder / f".s.PGSQL.{server.port}").exists()  # the socket lives in the private folder
    server.stop()
    assert not folder.exists()
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    with pytest.raises(sa.exc.OperationalError):
        engine.connect()
    engine.dispose()
    with pytest.raises(PostgresServerError, match="not running"):
        _ = server.url


def test_missing_server_programs_are_named(tmp_path) -> None:
    with pytest.raises(PostgresServerError, match="initdb, pg_ctl, postgres.*not found.*postgresql"):
        PostgresServer(bin_dir=tmp_path)
