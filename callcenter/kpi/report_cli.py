"""``callcenter report``: KPIs and a queue_log export from the engine's event database.

Parsing, reading and printing live here; every number comes from
:mod:`callcenter.kpi.definitions`, every queue_log line from :mod:`callcenter.events.queue_log`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from callcenter.kpi.cli import ServiceLevel
from callcenter.kpi.definitions import (
    DEFAULT_SHORT_ABANDON_SECONDS,
    INTERVALS,
    AgentKpis,
    KpiReport,
    QueueKpis,
    kpi_report,
)

PAGE = 1000


def read_all_events(db_url: str) -> Iterator[dict[str, Any]]:
    """Every event row, in log order, a page at a time (the table can be large)."""
    from callcenter.events.log import read_events
    from callcenter.storage import make_engine

    engine = make_engine(db_url)
    try:
        since = 0
        while page := read_events(engine, since_id=since, limit=PAGE):
            yield from page
            since = page[-1]["id"]
    finally:
        engine.dispose()


def parse_moment(text: str, tz: ZoneInfo) -> float:
    """``2024-03-01`` (local midnight) or ``2024-03-01T08:30`` (local unless it has an offset)."""
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time(0))
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (2024-03-01) or date-time (2024-03-01T08:30)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).timestamp()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {name!r} (e.g. Asia/Shanghai, UTC)", param_hint="--tz") from None


@click.group()
def report() -> None:
    """Reports from the event log: KPIs, queue_log export."""


@report.command("kpis")
@click.option("--queue", default=None, help="Only this queue's call figures.")
@click.option("--agent", default=None, help="Only this agent's row.")
@click.option("--interval", type=click.Choice(list(INTERVALS)), default=None,
              help="Split into intervals (local time of --tz); default: one block.")
@click.option("--from", "start", default=None, help="Calls queued from (inclusive): 2024-03-01 or 2024-03-01T08:00.")
@click.option("--to", "end", default=None, help="Calls queued until (exclusive), same forms.")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone for intervals and dates.")
@click.option("--sl", "sl", type=ServiceLevel(), default="80/20", show_default=True,
              help="Service-level target: percent/seconds.")
@click.option("--short-abandon", type=click.FloatRange(min=0), default=DEFAULT_SHORT_ABANDON_SECONDS,
              show_default=True, help="Abandons with a shorter wait (s) are left out of offered and abandoned.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def report_kpis(ctx: click.Context, queue: str | None, agent: str | None, interval: str | None,
                start: str | None, end: str | None, tz: str, sl: tuple[float, float], short_abandon: float,
                fmt: str) -> None:
    """Offered, answered, abandoned, service level, ASA, AHT, occupancy (docs/kpi.md)."""
    zone = _zone(tz)
    target, sl_seconds = sl
    result = kpi_report(
        read_all_events(ctx.obj["settings"].db_url), interval=interval, tz=tz,
        start=parse_moment(start, zone) if start else None, end=parse_moment(end, zone) if end else None,
        queue=queue, agent=agent, sl_seconds=sl_seconds, short_abandon_seconds=short_abandon)
    if fmt == "json":
        click.echo(json.dumps({"sl_target": target, **asdict(result)}, indent=2))
    else:
        click.echo(render_text(result, target))


@report.command("queue-log")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (replaced); default: standard output.")
@click.option("--agent-name", default="PJSIP/agent{agent_id}", show_default=True,
              help="Agent field template, e.g. Agent/{agent_id}.")
@click.pass_context
def report_queue_log(ctx: click.Context, out: Path | None, agent_name: str) -> None:
    """The event log as an Asterisk queue_log (epoch|callid|queue|agent|EVENT|data...)."""
    from callcenter.events.queue_log import export_queue_log, queue_log_lines

    if "{agent_id}" not in agent_name:
        raise click.BadParameter("must contain {agent_id}", param_hint="--agent-name")
    rows = read_all_events(ctx.obj["settings"].db_url)
    name = agent_name.format_map
    if out is None:
        for text in queue_log_lines(rows, agent_name=lambda a: name({"agent_id": a})):
            click.echo(text)
    else:
        count = export_queue_log(rows, out, agent_name=lambda a: name({"agent_id": a}))
        click.echo(f"{count} lines written to {out}", err=True)


# ---------------------------------------------------------------------------- text output
def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value * 100:.1f} %"


def _secs(value: float | None) -> str:
    return "no data" if value is None else f"{value:.1f} s"


def _queue_lines(k: QueueKpis, target: float) -> list[str]:
    sl = k.service_level
    met = "" if sl.of_offered is None else ("  (target met)" if sl.of_offered >= target else "  (target missed)")
    return [
        (f"  queue {k.queue}: offered {k.offered} (raw {k.offered_raw}), answered {k.answered}, "
         f"abandoned {k.abandoned} (+{k.short_abandoned} short), exited to fallback {k.exited}, "
         f"unresolved {k.unresolved}"),
        (f"    SL {target * 100:g}/{sl.threshold:g}: {_pct(sl.of_offered)} of offered{met}; "
         f"{_pct(sl.of_answered)} of answered; {_pct(sl.abandons_met)} abandons-within-met"),
        (f"    answer rate {_pct(k.answer_rate)}, abandon rate {_pct(k.abandon_rate)}, ASA {_secs(k.asa)}, "
         f"longest wait {_secs(k.longest_wait)}"),
        f"    AHT {_secs(k.aht)} over {k.handled} (talk {_secs(k.avg_talk)}, ACW {_secs(k.avg_acw)})",
    ]


def _agent_line(a: AgentKpis) -> str:
    return (f"  agent {a.agent_id}: answered {a.answered}, AHT {_secs(a.aht)}, talk {_secs(a.avg_talk)}, "
            f"ACW {_secs(a.avg_acw)}, offers not taken {a.offers_not_taken}, logged in {a.logged_in_time:.0f} s, "
            f"paused {a.paused_time:.0f} s, handling {a.handling_time:.0f} s, occupancy {_pct(a.occupancy)}")


def render_text(result: KpiReport, target: float) -> str:
    if not result.intervals:
        return "no events"
    out = [(f"time zone {result.tz}; SL threshold {result.sl_seconds:g} s (wait <= threshold); "
            f"short abandon < {result.short_abandon_seconds:g} s")]
    for bucket in result.intervals:
        out.append(f"{bucket.label}")
        if not bucket.queues and not bucket.agents:
            out.append("  no calls, no agents")
            continue
        for k in ([bucket.total] if len(bucket.queues) > 1 else []) + list(bucket.queues):
            out.extend(_queue_lines(k, target))
        out.extend(_agent_line(a) for a in bucket.agents)
    return "\n".join(out)
