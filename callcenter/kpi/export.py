"""KPI report as flat rows and CSV: one row per interval and queue (``*`` = all queues), agent or
campaign.

This module owns the *shape* of the tabular export, not the figures: every figure column comes
from the dataclasses of :mod:`callcenter.kpi.definitions` through :func:`dataclasses.fields`, so a
field added there (hold time, transfers, ...) becomes a column here without a change. Nested
dataclasses become dotted columns (``service_level.of_offered``).

Pure: no I/O except writing to the text stream handed to :func:`write_csv`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from callcenter.kpi.definitions import (
    AgentKpis,
    CampaignKpis,
    IntervalKpis,
    KpiReport,
    QueueKpis,
)

# The columns every row starts with, in this order; figure columns follow.
INTERVAL, INTERVAL_START, INTERVAL_END, SCOPE, NAME = "interval", "interval_start", "interval_end", "scope", "name"
LEADING_COLUMNS = (INTERVAL, INTERVAL_START, INTERVAL_END, SCOPE, NAME)
QUEUE_SCOPE, AGENT_SCOPE, CAMPAIGN_SCOPE = "queue", "agent", "campaign"

# The field that names a row's subject: it becomes the `name` column, not a figure.
_NAME_FIELD = {QueueKpis: "queue", AgentKpis: "agent_id", CampaignKpis: "campaign"}
# IntervalKpis fields that are the interval's identity or its rows. Any other field someone adds
# to IntervalKpis is an interval-wide figure and is repeated on each of its rows as `interval.<x>`.
_INTERVAL_STRUCTURE = frozenset({"label", "start", "end", "total", "queues", "agents", "campaigns"})


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A dataclass instance as ``{column: value}``; nested dataclasses become ``a.b`` columns."""
    out: dict[str, Any] = {}
    for field in fields(obj):
        value = getattr(obj, field.name)
        if is_dataclass(value) and not isinstance(value, type):
            out.update(flatten(value, f"{prefix}{field.name}."))
        else:
            out[f"{prefix}{field.name}"] = value
    return out


def report_rows(report: KpiReport) -> list[dict[str, Any]]:
    """Every interval's queue rows (``*`` first, then by name), agent rows and campaign rows (by
    name, only for campaigns that dialled in the interval), flattened.

    With ``--queue`` the report's total *is* that queue, so it is not repeated as a second row.
    """
    zone = ZoneInfo(report.tz)
    rows: list[dict[str, Any]] = []
    for interval in report.intervals:
        head = {
            INTERVAL: interval.label,
            INTERVAL_START: datetime.fromtimestamp(interval.start, zone).isoformat(),
            INTERVAL_END: datetime.fromtimestamp(interval.end, zone).isoformat(),
        }
        extra = _interval_figures(interval)
        named = {q.queue for q in interval.queues}
        queues = ([interval.total] if interval.total.queue not in named else []) + list(interval.queues)
        rows.extend(_row(head, QUEUE_SCOPE, q, extra) for q in queues)
        rows.extend(_row(head, AGENT_SCOPE, a, extra) for a in interval.agents)
        rows.extend(_row(head, CAMPAIGN_SCOPE, c, extra) for c in interval.campaigns.values())
    return rows


def columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The leading columns, then every other column in order of first appearance.

    Queue and agent rows share the columns of the same name (``answered``, ``aht``, ...): they mean
    the same thing over a different set of calls. A cell a row has no such figure for stays empty.
    """
    seen = dict.fromkeys(LEADING_COLUMNS)
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def write_csv(report: KpiReport, stream: TextIO) -> int:
    """Write :func:`report_rows` as CSV (header first) to ``stream``; returns the data rows written.

    ``None`` (no data) is an empty cell, never 0; floats are written as ``repr`` gives them, so
    reading a cell back with ``float()`` gives the report's exact value. Open files with
    ``newline=""``, as the csv module asks.
    """
    rows = report_rows(report)
    writer = csv.DictWriter(stream, fieldnames=columns(rows), restval="")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return len(rows)


def _row(head: dict[str, Any], scope: str, kpis: QueueKpis | AgentKpis | CampaignKpis,
         extra: dict[str, Any]) -> dict[str, Any]:
    figures = flatten(kpis)
    name = figures.pop(_name_field(kpis))
    row = {**head, SCOPE: scope, NAME: name}
    for key, value in {**extra, **figures}.items():
        if key in row:  # a figure named like a leading column would silently overwrite it
            raise ValueError(f"figure {key!r} of {type(kpis).__name__} clashes with a leading CSV column")
        row[key] = value
    return row


def _name_field(kpis: QueueKpis | AgentKpis | CampaignKpis) -> str:
    # isinstance, not type(): a subclass (a richer QueueKpis) names its subject as its base does.
    for base, name in _NAME_FIELD.items():
        if isinstance(kpis, base):
            return name
    raise TypeError(f"not a queue, agent or campaign figure set: {type(kpis).__name__}")


def _interval_figures(interval: IntervalKpis) -> dict[str, Any]:
    return {f"interval.{key}": value for key, value in flatten(interval).items()
            if key.split(".", 1)[0] not in _INTERVAL_STRUCTURE}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        # A future multi-valued figure: JSON keeps it one cell and machine-readable.
        return json.dumps(value, default=lambda v: flatten(v) if is_dataclass(v) else str(v))
    return value  # csv writes floats with repr(): no rounding
