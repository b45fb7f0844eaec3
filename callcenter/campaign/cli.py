"""``callcenter campaign`` and ``callcenter dnc``: define, import, start and follow outbound
campaigns, and keep the do-not-call list.

Registered on the main command line by ``main.add_command``; settings come from the main group's
context (``--config``), the database is the settings' ``db_url``, and the campaign tables are
created there on first use. The commands only change the store: the engine's dialer sees a
started, paused or stopped campaign at its next look.

Exit codes: 0 done; 1 an import stored its good rows but refused others; 2 bad input (a campaign
file, number or state change that is refused; a file that is not a list of contacts), with one
line per problem on stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from callcenter.web.cli_client import command_settings

if TYPE_CHECKING:
    from callcenter.campaign.store import CampaignRow, CampaignStore

BAR_WIDTH = 30


class BadInput(click.ClickException):
    """Refused input: ``Error: <message>`` on stderr, exit code 2."""

    exit_code = 2


@click.group("campaign")
def campaign() -> None:
    """Outbound campaigns: a list of contacts called for the agents of a queue (docs/campaigns.md)."""


@click.group("dnc")
def dnc() -> None:
    """The do-not-call list: numbers no campaign ever dials."""


# ------------------------------------------------------------------------------ campaign
@campaign.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def create_command(ctx: click.Context, file: Path) -> None:
    """Create a campaign from a campaign FILE (YAML), in state draft."""
    from callcenter.campaign.model import load_campaign_spec

    with _bad_input(), _store(ctx) as store:
        spec = load_campaign_spec(file)
        store.create(spec)
    click.echo(f"campaign {spec.name} created (draft); next: callcenter campaign import {spec.name} FILE.csv, "
               f"then callcenter campaign start {spec.name}")


@campaign.command("update")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def update_command(ctx: click.Context, file: Path) -> None:
    """Replace a campaign's settings with those of FILE (the campaign named in it; not while it runs)."""
    from callcenter.campaign.model import load_campaign_spec

    with _bad_input(), _store(ctx) as store:
        spec = load_campaign_spec(file)
        row = store.replace_spec(spec.name, spec)
    click.echo(f"campaign {row.name} updated ({row.state})")


@campaign.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--region", metavar="CC", help="Country of numbers written without +code (default: the "
              "campaign's default_region).")
@click.pass_context
def import_command(ctx: click.Context, name: str, file: Path, region: str | None) -> None:
    """Import contacts into campaign NAME from a CSV FILE (header line; column number required,
    name and customer_id optional, other columns kept for the agent). Good rows are stored even
    when others are refused; each refused row is listed as file:line: column: message (exit 1)."""
    from callcenter.campaign.importer import FILE, import_contacts

    with _bad_input(), _store(ctx) as store:
        report = import_contacts(store, name, file, region=region)
    for problem in report.errors:
        click.echo(str(problem), err=True)
    if any(problem.column == FILE for problem in report.errors):
        raise BadInput(report.summary())
    click.echo(report.summary())
    if not report.ok:
        ctx.exit(1)


def _state_command(verb: str, state: str, help_text: str) -> None:
    @campaign.command(verb, help=help_text)
    @click.argument("name")
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        with _bad_input(), _store(ctx) as store:
            row = store.set_state(name, state)
        click.echo(f"campaign {row.name} {row.state}")


_state_command("start", "running", "Start campaign NAME (from draft): the dialer calls its contacts.")
_state_command("pause", "paused", "Pause campaign NAME: no new calls; calls under way go on.")
_state_command("resume", "running", "Resume paused campaign NAME.")
_state_command("stop", "stopped", "Stop campaign NAME for good (it cannot be started again).")


@campaign.command("list")
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """Every campaign: state, queue, pacing and how many contacts are finished."""
    with _bad_input(), _store(ctx) as store:
        rows = [(row, store.progress(row.id)) for row in store.list()]
    if not rows:
        click.echo("no campaigns (create one with: callcenter campaign create FILE.yaml)")
        return
    click.echo(f"{'name':<32} {'state':<10} {'queue':<16} {'pacing':<12} contacts finished")
    for row, progress in rows:
        click.echo(f"{row.name:<32} {row.state:<10} {row.spec.queue:<16} {row.spec.pacing.mode:<12} "
                   f"{progress['finished']}/{progress['total']}")


@campaign.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The figures as JSON.")
@click.pass_context
def status_command(ctx: click.Context, name: str, as_json: bool) -> None:
    """Campaign NAME's progress: contacts by status and by last outcome, calls placed, and a bar
    of the contacts finished (done, failed, dnc or invalid) out of all."""
    from callcenter.campaign.model import in_window, next_window_open

    now = time.time()
    with _bad_input(), _store(ctx) as store:
        row = store.get(name)
        progress = store.progress(row.id)
    open_now = in_window(row.spec, now)
    opens_at = next_window_open(row.spec, now)
    if as_json:
        click.echo(json.dumps({"name": row.name, "state": row.state, "queue": row.spec.queue,
                               "in_window": open_now, "next_window_open": opens_at, **progress}, indent=2))
        return
    click.echo(_render_status(row, progress, open_now, opens_at))


def _render_status(row: CampaignRow, progress: dict[str, Any], open_now: bool, opens_at: float) -> str:
    from datetime import datetime

    spec = row.spec
    pacing = spec.pacing
    lines = [f"campaign {row.name}: {row.state}, queue {spec.queue}, caller id {spec.caller_id}"]
    per_agent = f"{pacing.lines_per_agent} line(s) per agent, " if pacing.mode == "progressive" else ""
    lines.append(f"pacing   {pacing.mode} ({per_agent}at most {pacing.max_lines} lines)")
    window = f"{','.join(spec.window.days)} {spec.window.start}-{spec.window.end} {spec.time_zone}"
    when = "open now" if open_now else \
        f"closed; opens {datetime.fromtimestamp(opens_at, spec.zone()).strftime('%Y-%m-%d %H:%M %Z')}"
    lines.append(f"window   {window}: {when}")
    total, finished = progress["total"], progress["finished"]
    filled = round(BAR_WIDTH * finished / total) if total else 0
    percent = f"{100 * finished / total:.0f}%" if total else "-"
    lines.append(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {finished}/{total} finished ({percent})")
    lines.append("status   " + "  ".join(f"{k} {v}" for k, v in progress["by_status"].items()))
    lines.append("last     " + "  ".join(f"{k} {v}" for k, v in progress["by_outcome"].items()))
    lines.append(f"calls    {progress['attempts']} placed, {progress['connected']} contact(s) connected")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ dnc
def _region_option(command: Any) -> Any:
    return click.option("--region", metavar="CC", help="Country of numbers written without +code "
                        "(default: the crm_region setting).")(command)


@dnc.command("add")
@click.argument("number")
@click.option("--reason", default="", help="Why (kept with the number).")
@_region_option
@click.pass_context
def dnc_add_command(ctx: click.Context, number: str, reason: str, region: str | None) -> None:
    """Put NUMBER on the do-not-call list."""
    with _bad_input(), _store(ctx) as store:
        e164 = _normalize(ctx, number, region)
        added = store.dnc_add(e164, reason)
    click.echo(f"{e164} added to the do-not-call list" if added else f"{e164} was already on the do-not-call list")


@dnc.command("remove")
@click.argument("number")
@_region_option
@click.pass_context
def dnc_remove_command(ctx: click.Context, number: str, region: str | None) -> None:
    """Take NUMBER off the do-not-call list."""
    with _bad_input(), _store(ctx) as store:
        e164 = _normalize(ctx, number, region)
        if not store.dnc_remove(e164):
            raise BadInput(f"{e164} is not on the do-not-call list")
    click.echo(f"{e164} removed from the do-not-call list")


@dnc.command("list")
@click.pass_context
def dnc_list_command(ctx: click.Context) -> None:
    """Every number on the do-not-call list, with when and why it was added."""
    with _bad_input(), _store(ctx) as store:
        entries = store.dnc_list()
    for entry in entries:
        added = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.added_at))
        click.echo(f"{entry.number:<16} {added}  {entry.reason}".rstrip())
    if not entries:
        click.echo("the do-not-call list is empty")


@dnc.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", default="", help="Reason noted for numbers without a reason column.")
@_region_option
@click.pass_context
def dnc_import_command(ctx: click.Context, file: Path, reason: str, region: str | None) -> None:
    """Add the numbers of FILE to the do-not-call list: one number per line, or a CSV with a
    number column (and optionally reason). Good numbers are added even when others are refused
    (exit 1)."""
    from callcenter.campaign.importer import FILE, import_dnc

    with _bad_input(), _store(ctx) as store:
        report = import_dnc(store, file, region or command_settings(ctx).crm_region, reason=reason)
    for problem in report.errors:
        click.echo(str(problem), err=True)
    if any(problem.column == FILE for problem in report.errors):
        raise BadInput(report.summary())
    click.echo(report.summary())
    if not report.ok:
        ctx.exit(1)


# ------------------------------------------------------------------------------ shared
@contextmanager
def _bad_input() -> Iterator[None]:
    """Refusals (invalid campaign files, unknown campaigns, bad numbers, state changes that are not
    allowed: all ValueErrors) as exit code 2 with their message."""
    try:
        yield
    except ValueError as exc:
        raise BadInput(str(exc)) from None


@contextmanager
def _store(ctx: click.Context) -> Iterator[CampaignStore]:
    from callcenter.campaign.store import CampaignStore, create_tables
    from callcenter.storage import make_engine

    engine = make_engine(command_settings(ctx).db_url)
    try:
        create_tables(engine)
        yield CampaignStore(engine)
    finally:
        engine.dispose()


def _normalize(ctx: click.Context, number: str, region: str | None) -> str:
    from callcenter.crm.phone import normalize_number

    return normalize_number(number, region or command_settings(ctx).crm_region)
