"""``callcenter report``: KPIs and a queue_log export from the engine's event database.

Parsing, reading and printing live here; every number comes from
:mod:`callcenter.kpi.definitions`, every queue_log line from :mod:`callcenter.events.queue_log`,
the CSV shape from :mod:`callcenter.kpi.export` and the charts and HTML page from
:mod:`callcenter.kpi.charts`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from callcenter.kpi import reports
from callcenter.kpi.cli import ServiceLevel
from callcenter.kpi.definitions import (
    DEFAULT_FCR_DAYS,
    DEFAULT_SHORT_ABANDON_SECONDS,
    INTERVALS,
    AgentKpis,
    CampaignKpis,
    KpiReport,
    QueueKpis,
)

def read_all_events(db_url: str, *, progress: bool = False) -> Iterator[dict[str, Any]]:
    """Every event row, in log order, a page at a time (the table can be large).

    ``progress``: show a progress bar on stderr, but only if stderr is a terminal, so that
    pipes, logs, CI and tests stay quiet."""
    with _database(db_url) as engine:
        quiet = contextlib.nullcontext(lambda last_id: None)
        with _reading_progress(engine) if progress and stderr_is_tty() else quiet as advance:
            yield from reports.stream_events(engine, advance=advance)


@contextlib.contextmanager
def _database(db_url: str) -> Iterator[Any]:
    from callcenter.storage import make_engine

    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def stderr_is_tty() -> bool:
    # sys.stderr, not a click helper: it is what CliRunner swaps, and click 8.5 deprecates
    # get_text_stream.
    return sys.stderr.isatty()


@contextlib.contextmanager
def _reading_progress(engine: Any) -> Iterator[Callable[[int], None]]:
    """A click progress bar on stderr over the event ids present when reading starts; yields
    ``advance(last id read)``.

    Ids, not a row count: min/max of the primary key are cheap where COUNT(*) scans the table,
    and the pages are read by id anyway. Events written while we read end at 100 %."""
    from sqlalchemy import func, select

    from callcenter.events.log import events_table

    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(events_table.c.id), func.max(events_table.c.id))).one()
    done = (first or 1) - 1
    with click.progressbar(length=max((last or 0) - done, 1), label="reading events",
                           file=sys.stderr) as bar:
        def advance(last_id: int) -> None:
            nonlocal done
            bar.update(max(last_id - done, 0))
            done = max(done, last_id)

        yield advance


def parse_moment(text: str, tz: ZoneInfo) -> float:
    try:
        return reports.parse_moment(text, tz)
    except reports.ReportParamError as exc:
        raise click.BadParameter(str(exc)) from None


def _zone(name: str) -> ZoneInfo:
    try:
        return reports.zone(name)
    except reports.ReportParamError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None


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
@click.option("--tz", default=None, help="IANA time zone for intervals and dates (default: the time_zone setting).")
@click.option("--sl", "sl", type=ServiceLevel(), default="80/20", show_default=True,
              help="Service-level target: percent/seconds.")
@click.option("--short-abandon", type=click.FloatRange(min=0), default=DEFAULT_SHORT_ABANDON_SECONDS,
              show_default=True, help="Abandons with a shorter wait (s) are left out of offered and abandoned.")
@click.option("--fcr-days", type=click.FloatRange(min=0, max=365), default=DEFAULT_FCR_DAYS, show_default=True,
              help="First-contact resolution: a repeat contact within this many days means not resolved.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True,
              help="csv: one row per interval and queue ('*' = all queues) or agent.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the chart (calls and service level per interval) to this PNG file.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML page (chart and queue table) to this file.")
@click.pass_context
def report_kpis(ctx: click.Context, queue: str | None, agent: str | None, interval: str | None,
                start: str | None, end: str | None, tz: str | None, sl: tuple[float, float], short_abandon: float,
                fcr_days: float, fmt: str, png_path: Path | None, html_path: Path | None) -> None:
    """Offered, answered, abandoned, service level, ASA, AHT, FCR, CSAT, occupancy (docs/kpi.md)."""
    tz = tz or ctx.obj["settings"].time_zone
    zone = _zone(tz)
    target, sl_seconds = sl
    if (png_path or html_path) and target > 1:  # before reading: the chart cannot draw it
        raise click.BadParameter(f"a target above 100 % cannot be charted ({target * 100:g} %)", param_hint="--sl")
    query = reports.KpiQuery(
        interval=interval, tz=tz, start=parse_moment(start, zone) if start else None,
        end=parse_moment(end, zone) if end else None, queue=queue, agent=agent, sl_target=target,
        sl_seconds=sl_seconds, short_abandon_seconds=short_abandon, fcr_days=fcr_days)
    with _database(ctx.obj["settings"].db_url) as db:
        quiet = contextlib.nullcontext(lambda last_id: None)
        with _reading_progress(db) if stderr_is_tty() else quiet as advance:
            result = reports.kpis(db, query, advance=advance)  # the same code as /api/reports/kpis
    if fmt == "json":
        click.echo(json.dumps({"sl_target": target, **asdict(result)}, indent=2))
    elif fmt == "csv":
        from callcenter.kpi.export import write_csv

        buffer = io.StringIO()
        write_csv(result, buffer)
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(render_text(result, target))
    if png_path is not None or html_path is not None:
        _write_charts(result, target, png_path, html_path)


def _write_charts(result: KpiReport, target: float, png_path: Path | None, html_path: Path | None) -> None:
    # Imported here: matplotlib takes a moment to load and only these two options need it.
    from callcenter.kpi.charts import html_page, kpi_figure, save_png
    from callcenter.kpi.export import CAMPAIGN_SCOPE, QUEUE_SCOPE, SCOPE, report_rows

    figure = kpi_figure(result, sl_target=target)
    if png_path is not None:
        save_png(figure, png_path)
        click.echo(f"chart written to {png_path}", err=True)
    if html_path is not None:
        rows = report_rows(result)
        queue_rows = [{key: value for key, value in row.items() if key != SCOPE}  # all the same here
                      for row in rows if row[SCOPE] == QUEUE_SCOPE]
        campaign_rows = [{key: value for key, value in row.items() if key != SCOPE}
                         for row in rows if row[SCOPE] == CAMPAIGN_SCOPE]
        settings = [{"time zone": result.tz, "interval": result.interval or "whole period",
                     "service level": f"{target * 100:g} % answered within {result.sl_seconds:g} s",
                     "short abandon": f"wait < {result.short_abandon_seconds:g} s"}]
        caption = f"Calls per interval (bars) and service level of offered (line, target {target * 100:g} %)"
        tables = [("Settings", settings), ("Queues", queue_rows)] + ([("Campaigns", campaign_rows)] if campaign_rows else [])
        page = html_page("Call-center KPIs", [(caption, figure)], tables)
        html_path.write_text(page, encoding="utf-8")
        click.echo(f"HTML report written to {html_path}", err=True)


@report.command("forecast")
@click.option("--day", default=None, help="The local day to schedule, 2024-03-01 (default: today).")
@click.option("--interval", type=click.Choice(["15m", "30m", "60m"]), default="30m", show_default=True)
@click.option("--weeks", type=click.IntRange(1, 52), default=8, show_default=True,
              help="Weeks of history before the day (median per interval of the week).")
@click.option("--queue", default=None, help="Only this queue's calls (staffed agents are all agents).")
@click.option("--tz", default=None, help="IANA time zone (default: the time_zone setting).")
@click.option("--sl", "sl", type=ServiceLevel(), default="80/20", show_default=True,
              help="Service-level target the requirement must meet: percent/seconds.")
@click.option("--max-occupancy", type=click.FloatRange(0, 1, min_open=True), default=0.85, show_default=True)
@click.option("--shrinkage", type=click.FloatRange(0, 1, max_open=True), default=0.3, show_default=True,
              help="Share of paid time off the phones (breaks, training): scheduled = on phones / (1 - shrinkage).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the chart (agents required vs staffed) to this PNG file.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML page (chart and table) to this file.")
@click.pass_context
def report_forecast(ctx: click.Context, day: str | None, interval: str, weeks: int, queue: str | None,
                    tz: str | None, sl: tuple[float, float], max_occupancy: float, shrinkage: float, fmt: str,
                    png_path: Path | None, html_path: Path | None) -> None:
    """Calls and AHT forecast per interval from past weeks, agents required (Erlang C) and agents
    actually staffed (docs/forecast.md)."""
    import time as clock

    settings = ctx.obj["settings"]
    zone_name = tz or settings.time_zone
    local = _zone(zone_name)
    target, sl_seconds = sl
    query = reports.ForecastQuery(tz=zone_name, interval_minutes=int(interval[:-1]), weeks=weeks,
                                  day=None if day is None else _iso_day(day, local), queue=queue,
                                  sl_target=target, sl_seconds=sl_seconds, max_occupancy=max_occupancy,
                                  shrinkage=shrinkage, short_abandon_seconds=settings.short_abandon_seconds)
    with _database(settings.db_url) as db:
        rows = reports.forecast(db, query, now=clock.time())
    table = [schedule_record(r) for r in rows]
    if fmt == "json":
        click.echo(json.dumps({"query": asdict(query), "intervals": table}, indent=2))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["interval"])
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in table)
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(render_schedule(table))
    if png_path is not None or html_path is not None:
        from callcenter.kpi.charts import html_page, save_png, staffing_figure

        figure = staffing_figure([r["interval"][11:16] for r in table], [r["required_on_phones"] for r in table],
                                 [r["staffed"] for r in table], [r["forecast_calls"] for r in table])
        if png_path is not None:
            save_png(figure, png_path)
            click.echo(f"chart written to {png_path}", err=True)
        if html_path is not None:
            title = f"Forecast and staffing {table[0]['interval'][:10] if table else ''}"
            html_path.write_text(html_page(title, [("Agents required (line) vs staffed (bars)", figure)],
                                           [("Intervals", table)]), encoding="utf-8")
            click.echo(f"HTML report written to {html_path}", err=True)


def _iso_day(text: str, tz: ZoneInfo) -> str:
    try:
        return reports.check_day(text, tz)
    except reports.ReportParamError as exc:
        raise click.BadParameter(str(exc), param_hint="--day") from None


def schedule_record(row: Any) -> dict[str, Any]:
    """One schedule interval as a flat record (CSV, JSON, the HTML table)."""
    return {"interval": row.label, "forecast_calls": _rounded(row.forecast_calls),
            "forecast_aht": _rounded(row.forecast_aht), "required_on_phones": row.required_on_phones,
            "required_scheduled": row.required_scheduled, "staffed": _rounded(row.staffed),
            "gap": _rounded(row.gap), "note": row.error or ""}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def render_schedule(table: list[dict[str, Any]]) -> str:
    if not table:
        return "no intervals"
    out = [f"{'interval':<25} {'calls':>7} {'AHT s':>7} {'req':>5} {'sched':>6} {'staffed':>8} {'gap':>6}  note"]
    for r in table:
        cells = [_cell(r[k]) for k in ("forecast_calls", "forecast_aht", "required_on_phones", "required_scheduled",
                                       "staffed", "gap")]
        out.append(f"{r['interval']:<25} {cells[0]:>7} {cells[1]:>7} {cells[2]:>5} {cells[3]:>6} {cells[4]:>8} "
                   f"{cells[5]:>6}  {r['note']}")
    return "\n".join(out)


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


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
        *_other_directions(k),
    ]


def _other_directions(k: QueueKpis) -> list[str]:
    """Callback and campaign lines of a queue, only when it has any."""
    c = k.callbacks
    lines = []
    if c.offered or c.accepted or c.requested or k.callback_answered:
        lines.append(
            f"    callbacks: offered {c.offered}, accepted {c.accepted}, requested {c.requested}, "
            f"attempts {c.attempts}, completed {c.completed}, failed {c.failed}, expired {c.expired}, "
            f"cancelled {c.cancelled}, pending {c.pending}; completed {_pct(c.completion_rate)} of finished, "
            f"avg delay {_secs(c.avg_delay)}; callback legs answered {k.callback_answered}")
    if k.outbound_answered or k.campaign_abandoned:
        lines.append(f"    outbound: answered {k.outbound_answered}, campaign abandoned {k.campaign_abandoned}")
    return lines


def _campaign_line(c: CampaignKpis) -> str:
    o = c.outcomes
    return (f"  campaign {c.campaign}: contacts {c.contacts}, dials {c.attempts} (pending {c.pending}), "
            f"connected {o.connected} (connect rate {_pct(c.connect_rate)}), busy {o.busy}, no answer {o.no_answer}, "
            f"failed {o.failed}, interrupted {o.interrupted}, dnc {o.dnc}; finished {sum(vars(c.final).values())}; "
            f"answered {c.answered}, abandoned {c.abandoned} ({_pct(c.abandon_rate)} of connected), "
            f"AHT {_secs(c.aht)} over {c.handled}")


def _agent_line(a: AgentKpis) -> str:
    others = "".join(f", {label} {n}" for label, n in (("callbacks", a.callback_answered),
                                                       ("outbound", a.outbound_answered)) if n)
    return (f"  agent {a.agent_id}: answered {a.answered}{others}, AHT {_secs(a.aht)} over {a.handled}, "
            f"talk {_secs(a.avg_talk)}, "
            f"ACW {_secs(a.avg_acw)}, offers not taken {a.offers_not_taken}, logged in {a.logged_in_time:.0f} s, "
            f"paused {a.paused_time:.0f} s, handling {a.handling_time:.0f} s, occupancy {_pct(a.occupancy)}")


def render_text(result: KpiReport, target: float) -> str:
    if not result.intervals:
        return "no events"
    out = [(f"time zone {result.tz}; SL threshold {result.sl_seconds:g} s (wait <= threshold); "
            f"short abandon < {result.short_abandon_seconds:g} s")]
    for bucket in result.intervals:
        out.append(f"{bucket.label}")
        if not bucket.queues and not bucket.agents and not bucket.campaigns:
            out.append("  no calls, no agents")
            continue
        for k in ([bucket.total] if len(bucket.queues) > 1 else []) + list(bucket.queues):
            out.extend(_queue_lines(k, target))
        out.extend(_agent_line(a) for a in bucket.agents)
        out.extend(_campaign_line(c) for c in bucket.campaigns.values())
    return "\n".join(out)
