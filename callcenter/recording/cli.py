"""``callcenter recordings``: search the recordings index and run the retention purge.

Registered on the main command line by ``main.add_command``; settings come from the main group's
context (``--config``). Works on the database (the settings' ``db_url``) and the Asterisk
instance's recordings folder directly, so it needs no running engine.

Exit codes: 0 done; 1 the purge kept recordings whose file could not be removed; 2 bad input.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from callcenter.web.cli_client import command_settings

if TYPE_CHECKING:
    from callcenter.recording.model import Recording
    from callcenter.recording.service import PurgeReport, RecordingService


@click.group("recordings")
def recordings() -> None:
    """Call recordings: search the index, apply the retention policy (docs/recordings.md)."""


@recordings.command("list")
@click.option("--agent", help="Only this agent's recordings.")
@click.option("--queue", help="Only this queue's recordings.")
@click.option("--customer", help="Part of the customer's number or name.")
@click.option("--call", "call_id", help="Only this call's recordings.")
@click.option("--from", "since", metavar="WHEN", help="Started at or after WHEN: 2024-03-01, 2024-03-01T08:30 "
              "or epoch seconds (the time_zone setting unless an offset is given).")
@click.option("--to", "until", metavar="WHEN", help="Started before WHEN (same forms as --from).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.pass_context
def list_command(ctx: click.Context, agent: str | None, queue: str | None, customer: str | None,
                 call_id: str | None, since: str | None, until: str | None, limit: int) -> None:
    """Recordings, newest first."""
    zone = ZoneInfo(command_settings(ctx).time_zone)
    with _service(ctx) as service:
        rows, total = service.store.search(agent_id=agent, queue=queue, customer=customer, call_id=call_id,
                                           since=_when(since, zone, "--from"), until=_when(until, zone, "--to"),
                                           limit=limit)
    if not rows:
        click.echo("no recordings match")
        return
    click.echo(f"{'started':<19} {'length':>8} {'agent':<8} {'queue':<16} {'customer':<16} {'name':<20} id")
    for row in rows:
        click.echo(_line(row, zone))
    click.echo(f"{len(rows)} of {total} recording(s)")


@recordings.command("purge")
@click.option("--dry-run", is_flag=True, help="Only say what the retention policy would remove.")
@click.pass_context
def purge_command(ctx: click.Context, dry_run: bool) -> None:
    """Remove the recordings (files and index rows) older than their queue's retention. A file
    that cannot be removed keeps its row and is listed (exit 1)."""
    with _service(ctx) as service:
        report = service.purge(actor=f"cli:{getpass.getuser()}", dry_run=dry_run)
    click.echo(_render_purge(report))
    if report.errors:
        ctx.exit(1)


def _render_purge(report: PurgeReport) -> str:
    verb, freed = ("would remove", "to free") if report.dry_run else ("removed", "freed")
    size = _size(report.bytes_freed)
    lines = [f"{verb} {report.removed} recording(s): {report.files_removed} file(s), {size} {freed}"]
    lines += [f"  {queue or '(no queue)':<24} {count}" for queue, count in report.by_queue.items()]
    if report.missing:
        rows = "rows would be removed" if report.dry_run else "rows removed"
        lines.append(f"{len(report.missing)} file(s) already gone ({rows}):")
        lines += [f"  {recording_id}" for recording_id in report.missing]
    if report.errors:
        lines.append(f"{len(report.errors)} recording(s) kept, their file could not be removed:")
        lines += [f"  {error['id']}: {error['file']}: {error['error']}" for error in report.errors]
    return "\n".join(lines)


def _line(row: Recording, zone: ZoneInfo) -> str:
    started = datetime.fromtimestamp(row.started_at, zone).strftime("%Y-%m-%d %H:%M:%S")
    minutes, seconds = divmod(round(row.duration), 60)
    return (f"{started:<19} {minutes:>5}:{seconds:02d} {row.agent_id or '-':<8} {row.queue or '-':<16} "
            f"{row.customer or '-':<16} {(row.customer_name or '-')[:20]:<20} {row.id}")


def _size(size: int) -> str:
    units = ("bytes", "KB", "MB", "GB", "TB")
    value, unit = float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} bytes" if unit == 0 else f"{value:.1f} {units[unit]}"


def _when(text: str | None, zone: ZoneInfo, option: str) -> float | None:
    from callcenter.recording.model import parse_when

    if text is None:
        return None
    try:
        return parse_when(text, zone, option)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@contextmanager
def _service(ctx: click.Context) -> Iterator[RecordingService]:
    from callcenter.asterisk.process import AsteriskInstance
    from callcenter.audit import AuditLog
    from callcenter.recording.model import RecordingsSettings
    from callcenter.recording.service import RecordingService
    from callcenter.recording.store import RecordingStore, create_tables
    from callcenter.storage import make_engine

    settings = command_settings(ctx)
    # the settings' recordings section, once the engine's Settings has one; the defaults until then
    recordings_settings = getattr(settings, "recordings", None) or RecordingsSettings()
    engine = make_engine(settings.db_url)
    try:
        create_tables(engine)
        yield RecordingService(RecordingStore(engine), AsteriskInstance(settings).recordings_dir,
                               recordings_settings, AuditLog(engine))
    finally:
        engine.dispose()
