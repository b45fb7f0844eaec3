"""`callcenter report forecast` and the report parameters the JSON API parses, over a real
SQLite event log: four Mondays of history, then the Monday being scheduled."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from callcenter.cli import main
from callcenter.events.log import EventLog
from callcenter.kpi import reports
from callcenter.storage import make_engine

ZONE = ZoneInfo("Asia/Shanghai")
DAY = datetime(2024, 3, 25, tzinfo=ZONE)  # a Monday
NINE = datetime(2024, 3, 25, 9, 0, tzinfo=ZONE).timestamp()


def write_history(path) -> None:
    engine = make_engine(f"sqlite:///{path}")
    log = EventLog(engine)
    for week in range(1, 5):
        base = NINE - week * 7 * 86400
        for n in range(100):  # 100 calls between 09:00 and 09:30, AHT 180 s
            t, call = base + n * 17, f"w{week}c{n}"
            log.record("queued", call_id=call, queue="support", ts=t)
            log.record("answered", call_id=call, queue="support", agent_id="1001", ts=t + 5, data={"wait": 5.0})
            log.record("ended", call_id=call, queue="support", agent_id="1001", ts=t + 175, data={"talk": 170.0})
            log.record("agent_state", agent_id="1001", ts=t + 175, data={"state": "wrap_up"})
            log.record("agent_state", agent_id="1001", ts=t + 185, data={"state": "available"})
        log.record("agent_state", agent_id="1001", ts=base + 3600, data={"state": "logged_out"})
    # the day itself: 12 agents available from 09:00 to 09:30, one of them paused for 15 minutes
    team = [str(agent) for agent in range(2001, 2013)]
    for agent in team:
        log.record("agent_state", agent_id=agent, ts=NINE, data={"state": "available"})
    log.record("agent_state", agent_id="2001", ts=NINE + 900, data={"state": "paused", "reason": "break"})
    for agent in team:
        log.record("agent_state", agent_id=agent, ts=NINE + 1800, data={"state": "logged_out"})
    asyncio.run(log.flush())
    engine.dispose()


@pytest.fixture
def config(tmp_path):
    write_history(tmp_path / "events.db")
    path = tmp_path / "settings.yaml"
    path.write_text(f"database_url: sqlite:///{tmp_path / 'events.db'}\ndata_dir: {tmp_path}\n"
                    "time_zone: Asia/Shanghai\n")
    return path


def test_forecast_needs_14_agents_at_nine_and_shows_who_was_there(config, tmp_path):
    out = CliRunner().invoke(main, ["--config", str(config), "report", "forecast", "--day", "2024-03-25",
                                    "--format", "json", "--shrinkage", "0.3", "--png", str(tmp_path / "f.png"),
                                    "--html", str(tmp_path / "f.html")])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    rows = {r["interval"][11:16]: r for r in result["intervals"]}
    assert len(rows) == 48
    nine = rows["09:00"]
    # 100 calls in 30 min, AHT 180 s, 80/20: the reference case, 14 on the phones, 14/0.7 = 20 scheduled
    assert (nine["forecast_calls"], nine["forecast_aht"]) == (100, 180)
    assert (nine["required_on_phones"], nine["required_scheduled"]) == (14, 20)
    assert nine["staffed"] == 11.5 and nine["gap"] == -2.5  # 12 agents, one paused half the interval
    assert (rows["10:00"]["forecast_calls"], rows["10:00"]["required_on_phones"]) == (0, 0)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "09:00" in (tmp_path / "f.html").read_text()


def test_forecast_text_table_and_bad_day(config):
    out = CliRunner().invoke(main, ["--config", str(config), "report", "forecast", "--day", "2024-03-25"])
    assert out.exit_code == 0, out.output
    nine = next(line for line in out.stdout.splitlines() if line.startswith("2024-03-25T09:00"))
    assert nine.split()[1:7] == ["100", "180", "14", "20", "11.5", "-2.5"]
    bad = CliRunner().invoke(main, ["--config", str(config), "report", "forecast", "--day", "25/03/2024"])
    assert bad.exit_code != 0 and "is not a date" in bad.output


def test_report_parameters_from_the_api_are_checked_one_by_one():
    defaults = reports.KpiQuery(tz="Asia/Shanghai", sl_seconds=30, sl_target=0.9)
    q = reports.KpiQuery.from_params({"interval": "30m", "from": "2024-03-25", "sl": "80/20"}, defaults)
    assert (q.interval, q.tz, q.start, q.sl_target, q.sl_seconds) == ("30m", "Asia/Shanghai", DAY.timestamp(), 0.8, 20)
    assert reports.KpiQuery.from_params({}, defaults) == defaults
    for params, message in [({"interval": "7m"}, "interval: '7m' is not one of"),
                            ({"tz": "Mars/Base"}, "tz: unknown time zone 'Mars/Base'"),
                            ({"from": "yesterday"}, "from: 'yesterday' is not a date"),
                            ({"sl": "80"}, "sl: '80' is not percent/seconds"),
                            ({"sl": "180/20"}, "sl: '180/20'"),
                            ({"fcr_days": "-1"}, "fcr_days: '-1' is not a number from 0 to 365"),
                            ({"colour": "red"}, "unknown parameter(s): colour")]:
        with pytest.raises(reports.ReportParamError, match=message.replace("(", r"\(").replace(")", r"\)")):
            reports.KpiQuery.from_params(params, defaults)
