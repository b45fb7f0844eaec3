"""Fixtures shared by unit tests: the reports' event files, a throwaway redis-server, an events table."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from callcenter.events.log import EventLog, create_events_table
from callcenter.kpi import reports
from callcenter.storage import make_engine
from tests.redis_server import throwaway_redis


@pytest.fixture
def events_config(tmp_path, monkeypatch):
    """events_config(rows) -> a settings file whose database holds ``rows``, written by the real
    EventLog into SQLite and read back in pages of 4 (the paging must not lose rows)."""
    def write(rows) -> object:
        db = tmp_path / "events.db"
        engine = make_engine(f"sqlite:///{db}")
        log = EventLog(engine)
        for row in rows:
            log.record(row["kind"], call_id=row["call_id"], queue=row["queue"], agent_id=row["agent_id"],
                       data=row["data"], ts=row["ts"])
        asyncio.run(log.flush())
        engine.dispose()
        config = tmp_path / "settings.yaml"
        config.write_text(f"database_url: sqlite:///{db}\ndata_dir: {tmp_path}\n")
        monkeypatch.setattr(reports, "PAGE", 4)
        return config
    return write


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a loopback port of its own (tests.redis_server), gone afterwards."""
    with throwaway_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def database(tmp_path):
    """An empty events table in a SQLite file."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/events.db")
    create_events_table(engine)
    yield engine
    engine.dispose()
