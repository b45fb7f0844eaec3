"""The reports and live figures on the JSON API: ``/api/reports/*`` (the same reports as
``callcenter report``, through :mod:`callcenter.kpi.reports`) and ``/api/realtime`` (today's
figures kept up to date one event at a time by :class:`~callcenter.kpi.realtime.RealtimeKpis`).

Reports read the whole event log: they run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine

from callcenter.config import Settings
from callcenter.events.log import read_events_since
from callcenter.events.queue_log import queue_log_lines
from callcenter.kpi import reports
from callcenter.kpi.definitions import interval_start
from callcenter.kpi.realtime import RealtimeKpis
from callcenter.web.api import ApiError, JsonApi
from callcenter.web.auth import FLOOR

# Waiting callers seeded at start may have queued before midnight: read back this far.
SEED_LOOKBACK_SECONDS = 86400.0


class KpiApi:
    def __init__(self, db: Engine, settings: Settings, *, clock=time.time,
                 queue_sl_seconds: Callable[[str], float | None] = lambda queue: None):
        self.db = db
        self.settings = settings
        self.clock = clock
        self.defaults = reports.KpiQuery(tz=settings.time_zone, sl_target=settings.sl_target,
                                         sl_seconds=settings.sl_seconds,
                                         short_abandon_seconds=settings.short_abandon_seconds,
                                         fcr_days=settings.fcr_days)
        self.realtime = RealtimeKpis(tz=settings.time_zone, sl_seconds=settings.sl_seconds,
                                     short_abandon_seconds=settings.short_abandon_seconds,
                                     queue_sl_seconds=queue_sl_seconds)

    def seed(self) -> int:
        """Feed today's events (and the day before, for callers still waiting) to the live
        figures, so a restarted engine does not start the day again at zero."""
        since = interval_start(self.clock(), "day", reports.zone(self.settings.time_zone)) - SEED_LOOKBACK_SECONDS
        rows = read_events_since(self.db, since)
        for row in rows:
            self.realtime.apply(row)
        return len(rows)

    def register(self, api: JsonApi) -> None:
        api.add("GET", "/api/realtime", self._realtime, role=FLOOR)
        api.add("GET", "/api/reports/kpis", self._kpis, role=FLOOR)
        api.add("GET", "/api/reports/forecast", self._forecast, role=FLOOR)
        api.add("GET", "/api/reports/queue-log", self._queue_log, role=FLOOR)

    def _realtime(self, **_: Any) -> dict:
        snapshot = self.realtime.snapshot(self.clock())
        return {"sl_target": self.settings.sl_target, **asdict(snapshot)}

    async def _kpis(self, query: dict[str, str], **_: Any) -> dict:
        try:
            wanted = reports.KpiQuery.from_params(query, self.defaults)
        except reports.ReportParamError as exc:
            raise ApiError(400, str(exc)) from None
        result = await asyncio.to_thread(reports.kpis, self.db, wanted)
        return {"sl_target": wanted.sl_target, **asdict(result)}

    async def _forecast(self, query: dict[str, str], **_: Any) -> dict:
        try:
            wanted = _forecast_query(query, self.settings)
            rows = await asyncio.to_thread(reports.forecast, self.db, wanted, now=self.clock())
        except reports.ReportParamError as exc:
            raise ApiError(400, str(exc)) from None
        return {"query": asdict(wanted), "intervals": [asdict(r) for r in rows]}

    async def _queue_log(self, query: dict[str, str], **_: Any) -> dict:
        if query:
            raise ApiError(400, f"unknown parameter(s): {', '.join(sorted(query))}")
        lines = await asyncio.to_thread(lambda: queue_log_lines(reports.stream_events(self.db)))
        return {"format": "epoch|callid|queue|agent|EVENT|data1|...", "lines": lines}


def _forecast_query(params: dict[str, str], settings: Settings) -> reports.ForecastQuery:
    unknown = sorted(set(params) - {"day", "interval", "weeks", "queue", "tz", "sl", "max_occupancy", "shrinkage"})
    if unknown:
        raise reports.ReportParamError(f"unknown parameter(s): {', '.join(unknown)}")
    interval = params.get("interval", "30m")
    if interval not in ("15m", "30m", "60m"):
        raise reports.ReportParamError(f"interval: {interval!r} is not one of 15m, 30m, 60m")
    tz = params.get("tz") or settings.time_zone
    day = params.get("day")
    if day is not None:
        reports.check_day(day, reports.zone(tz))
    target, threshold = (reports.parse_service_level(params["sl"]) if params.get("sl")
                         else (settings.sl_target, settings.sl_seconds))
    weeks = reports.number_param(params, "weeks", 8, 1, 52)
    if weeks != int(weeks):
        raise reports.ReportParamError(f"weeks: {params['weeks']!r} is not a whole number of weeks")
    return reports.ForecastQuery(
        tz=tz, interval_minutes=int(interval[:-1]), weeks=int(weeks), day=day, queue=params.get("queue") or None,
        sl_target=target, sl_seconds=threshold,
        max_occupancy=reports.number_param(params, "max_occupancy", 0.85, 0.01, 1),
        shrinkage=reports.number_param(params, "shrinkage", 0.3, 0, 0.95),
        short_abandon_seconds=settings.short_abandon_seconds)
