"""``callcenter routing``: check the routing file, reload it into the running engine, and ask
why a call went (or did not go) to an agent."""

from __future__ import annotations

import json
from pathlib import Path

import click

from callcenter.acd.config import RoutingConfigError, load_routing
from callcenter.web.cli_client import api_call, command_settings, show


@click.group("routing")
def routing() -> None:
    """Routing rules (routing.yaml): check, reload, explain."""


@routing.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def check(ctx: click.Context, path: Path | None, fmt: str) -> None:
    """Validate a routing file (default: the configured one); non-zero exit on any problem."""
    path = path or command_settings(ctx).routing_file
    try:
        plan = load_routing(path)
    except RoutingConfigError as exc:
        if fmt == "json":
            click.echo(json.dumps({"ok": False, "problems": [vars(p) for p in exc.problems]}, indent=2))
        else:
            click.echo(str(exc))
            click.echo(f"{len(exc.problems)} problem(s)", err=True)
        ctx.exit(1)
        return
    summary = {
        "ok": True,
        "queues": {q.name: {"strategy": q.strategy.value, "steps": q.steps.describe(),
                            "max_wait": None if q.max_wait is None else
                            f"{q.max_wait.seconds:g}s -> {q.max_wait.action.value}"
                            + (f" {q.max_wait.target}" if q.max_wait.target else "")}
                   for q in plan.queues},
        "agents": len(plan.agents),
    }
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    for name, queue in summary["queues"].items():
        click.echo(f"{name}: {queue['strategy']}; " + "; ".join(queue["steps"])
                   + (f"; max wait {queue['max_wait']}" if queue["max_wait"] else ""))
    click.echo(f"{path}: OK ({len(plan.queues)} queue(s), {len(plan.agents)} agent(s))")


@routing.command("reload")
@click.pass_context
def reload(ctx: click.Context) -> None:
    """Re-read the routing file into the running engine without dropping a call."""
    show(api_call(ctx, "POST", "/api/routing/reload", {}))


@routing.command("explain")
@click.argument("call_id")
@click.pass_context
def explain(ctx: click.Context, call_id: str) -> None:
    """Why a call is waiting, or why it went to the agent it went to."""
    show(api_call(ctx, "GET", f"/api/calls/{call_id}/explain"))
