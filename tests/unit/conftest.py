"""Fixtures shared by the unit tests of the reports."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.events.log import EventLog
from callcenter.kpi import reports
from callcenter.storage import make_engine


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
