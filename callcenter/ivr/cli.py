"""``callcenter flows``: check flow files, and dry-run a flow without a phone.

Registered on the main command line by ``main.add_command(flows)``; settings come from the main
group's context (``ctx.obj["settings"]``), so ``--config`` applies here as everywhere else.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import click

from callcenter.acd.config import RoutingConfigError, load_routing
from callcenter.config import Settings
from callcenter.ivr.flow import FLOW_SUFFIXES, Flow, FlowError, flow_file, flow_json_schema, load_flow
from callcenter.ivr.lint import Finding, FlowDirectory, has_errors, lint_paths
from callcenter.ivr.interpreter import Lookup, LookupStatus
from callcenter.ivr.simulate import LookupAnswer, no_crm, parse_digits, render, simulate
from callcenter.web.cli_client import api_call, command_settings, show

# What --at accepts: a local date and time, as people write it and as ISO 8601 writes it.
AT_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


@click.group("flows")
def flows() -> None:
    """IVR flow files: check them, dry-run a caller through one, and see what the running engine
    serves (it reloads edited files by itself)."""


@flows.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def check(ctx: click.Context, paths: tuple[Path, ...], fmt: str) -> None:
    """Check flow files (default: every flow in the flows directory).

    Reports what the engine would refuse to load, unreachable nodes, loops that never wait for the
    caller, queues the settings do not define, and prompts the provisioned Asterisk cannot play.
    Exits non-zero when there is any error (warnings alone do not fail).
    """
    settings = command_settings(ctx)
    findings = [_for_display(f) for f in lint_paths(
        paths or (settings.flows_dir,), queues=_queue_names(settings), asterisk_root=settings.asterisk_root)]
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    if fmt == "json":
        click.echo(json.dumps({"ok": errors == 0, "errors": errors, "warnings": warnings,
                               "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        for finding in findings:
            click.echo(str(finding))
        click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)
    if has_errors(findings):
        ctx.exit(1)


@flows.command("simulate")
@click.argument("flow")
@click.option("--digits", "digits", default="", metavar="KEYS",
              help="Key groups the caller presses, one per menu wait, ',' between them; an empty "
                   "group is a timeout (e.g. 9,,2). When they run out the caller stays silent.")
@click.option("--caller", default="", help="The caller's number (caller ID).")
@click.option("--at", "at", type=click.DateTime(AT_FORMATS), default=None,
              help='When the call is placed, e.g. "2026-11-23 09:00" (recorded; for schedule nodes).')
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def simulate_command(ctx: click.Context, flow: str, digits: str, caller: str, at: datetime | None,
                     fmt: str) -> None:
    """Walk a caller through FLOW (a flow name in the flows directory, or a file) without a phone.

    Lookup nodes read the configured CRM database (read only); goto nodes find flows next to FLOW.
    """
    settings = command_settings(ctx)
    try:
        keys = parse_digits(digits)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--digits") from None
    loaded = _load(flow, settings)
    result = simulate(loaded, keys, caller=caller, at=at, flows=FlowDirectory(Path(loaded.source).parent).get,
                      lookup=_crm_answers(settings))
    click.echo(json.dumps(result.as_dict(), indent=2) if fmt == "json" else render(result))


def _load(flow: str, settings: Settings) -> Flow:
    path = _flow_path(flow, settings.flows_dir)
    try:
        # With the configured queues: the engine would refuse a flow that names another one.
        return load_flow(path, known_queues=_queue_names(settings))
    except FlowError as exc:
        raise click.ClickException(f"flow cannot be loaded:\n{exc}") from None


def _crm_answers(settings: Settings) -> LookupAnswer:
    """Lookups answered from the configured CRM, as on a real call (without its timeout); without
    CRM tables there, every lookup is "unavailable", as a call gets from a CRM that is down. The
    database is opened at the first lookup, so flows without lookup nodes never touch it."""
    from callcenter.crm.lookup import query_by
    from callcenter.crm.schema import CrmSchemaError
    from callcenter.crm.store import CrmStore
    from callcenter.storage import make_engine

    stores: list[CrmStore | None] = []

    def answer(lookup: Lookup) -> tuple[LookupStatus, dict | None]:
        if not stores:
            try:
                stores.append(CrmStore(make_engine(settings.db_url), region=settings.crm_region))
            except CrmSchemaError as exc:
                click.echo(f"note: no CRM to look customers up in ({exc}); lookups answer 'unavailable'", err=True)
                stores.append(None)
        store = stores[0]
        if store is None:
            return no_crm(lookup)
        card = query_by(store, lookup.by)(lookup.value)
        return ("found", card.ivr_facts()) if card is not None else ("not_found", None)

    return answer


def _queue_names(settings: Settings) -> list[str]:
    """The queues a flow may name: those of the routing file."""
    try:
        return load_routing(settings.routing_file).queue_names
    except RoutingConfigError as exc:
        raise click.ClickException(f"the routing file cannot be loaded:\n{exc}") from None


def _flow_path(flow: str, flows_dir: Path) -> Path:
    """A flow name ('main') is looked up in the flows directory; anything path-like is a path."""
    given = Path(flow)
    if given.suffix in FLOW_SUFFIXES or os.sep in flow or given.is_file():
        return given
    found = flow_file(flows_dir, flow)
    if found is not None:
        return found
    raise click.ClickException(f"no flow named {flow!r} in {flows_dir} (and no file {flow!r})")


def _for_display(finding: Finding) -> Finding:
    """File names relative to the current directory when under it, as compilers print them."""
    try:
        return replace(finding, file=os.path.relpath(finding.file) if Path(finding.file).resolve()
                       .is_relative_to(Path.cwd()) else finding.file)
    except ValueError:  # e.g. another drive on Windows
        return finding


@flows.command("schema")
def schema() -> None:
    """Print the JSON Schema of flow files (published as ivr_flows/flow.schema.json)."""
    click.echo(json.dumps(flow_json_schema(), indent=2, sort_keys=True))


@flows.command("status")
@click.pass_context
def status_command(ctx: click.Context) -> None:
    """The running engine's flows: file, when loaded, and any error keeping an edit out."""
    show(api_call(ctx, "GET", "/api/flows"))


@flows.command("reload")
@click.pass_context
def reload_command(ctx: click.Context) -> None:
    """Make the running engine pick up edited flow files now (it also does so by itself)."""
    show(api_call(ctx, "POST", "/api/flows/reload", {}))
