"""The ``callcenter`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import click

from callcenter.config import ConfigError, Settings
from callcenter.web.cli_client import api_call, show


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


@click.group()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CALLCENTER_CONFIG", help="YAML settings file (default: built-in local defaults).")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """A call-center engine beside Asterisk: IVR, skills-based ACD, recording, events."""
    from callcenter.runtime import configure_logging

    configure_logging(verbose)
    try:
        ctx.obj = {"settings": Settings.load(config_path)}
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


# ---------------------------------------------------------------------------- asterisk
@main.group()
def asterisk() -> None:
    """Provision and run the project's own Asterisk."""


@asterisk.command("install")
@click.option("--force", is_flag=True, help="Rebuild the root even if one is cached.")
@click.pass_context
def asterisk_install(ctx: click.Context, force: bool) -> None:
    """Build (once) the Debian sid root with Asterisk 22 in it; reuse it afterwards."""
    from callcenter.asterisk.provision import ProvisionError, install

    try:
        install(_settings(ctx).asterisk_root, force=force, progress=click.echo)
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None


@asterisk.command("run")
@click.pass_context
def asterisk_run(ctx: click.Context) -> None:
    """Run Asterisk with the project's asterisk_conf/ and dialplan/ until Ctrl-C."""
    import signal

    from callcenter.asterisk.process import AsteriskInstance

    instance = AsteriskInstance(_settings(ctx))
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait, not as exceptions
    instance.start()
    click.echo(f"Asterisk running (log: {instance.log_file}). Ctrl-C stops it.")
    try:
        signal.sigwait(stop_signals)
    finally:
        instance.stop()


# ---------------------------------------------------------------------------- engine
@main.command("run")
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the engine (IVR, ACD, event log, web API) against an Asterisk that is already up."""
    from callcenter.runtime import run_on_shared_loop

    settings = _settings(ctx)

    async def serve(stop):
        from callcenter.engine import Engine

        engine = Engine(settings)
        await engine.start()
        click.echo(f"engine running; API on http://{settings.web_host}:{settings.web_port}/api", err=True)
        await stop.wait()
        await engine.stop()
        return 0

    sys.exit(run_on_shared_loop(serve))


@main.command("up")
@click.option("--demo", is_flag=True, help="Place a few SIPp calls with SIPp agent phones answering, and report.")
@click.option("--exit-after-demo", is_flag=True, help="With --demo: stop everything once the demo is done.")
@click.pass_context
def up(ctx: click.Context, demo: bool, exit_after_demo: bool) -> None:
    """Bring up everything on embedded defaults: Asterisk, the engine, SQLite, the web API."""
    from callcenter.asterisk.process import AsteriskInstance
    from callcenter.runtime import run_on_shared_loop

    settings = _settings(ctx)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    instance = AsteriskInstance(settings)
    click.echo("starting Asterisk ...")
    instance.start()

    async def serve(stop):
        from callcenter.engine import Engine

        engine = Engine(settings)
        await engine.start()
        from callcenter.crm.store import CrmStore
        from callcenter.demo import seed_demo_customers, seed_demo_passwords, seed_demo_staff

        seeded = await asyncio.to_thread(seed_demo_customers, CrmStore(engine.db, region=settings.crm_region))
        if seeded:
            click.echo(f"demo customers for the service line: {seeded}")
        passwords = await asyncio.to_thread(seed_demo_passwords, engine.credentials, list(settings.agents))
        if passwords:
            click.echo(f"demo desktop passwords (demo-<agent id>) set for agents {', '.join(passwords)}")
        staff = await asyncio.to_thread(seed_demo_staff, engine.staff_users)
        if staff:
            click.echo(f"demo staff users (password demo-<user name>): {', '.join(staff)}")
        click.echo(_banner(settings, instance))
        code = 0
        if demo:
            from callcenter.demo import run_demo

            code = await run_demo(settings, engine, echo=click.echo)
            if exit_after_demo:
                await engine.stop()
                return code
        click.echo("Ctrl-C stops everything.")
        await stop.wait()
        await engine.stop()
        return code

    try:
        code = run_on_shared_loop(serve)
    finally:
        click.echo("stopping Asterisk ...")
        instance.stop()
    sys.exit(code)


def _banner(settings: Settings, instance) -> str:
    return "\n".join([
        "",
        "callcenter is up:",
        "  dial      sip:5000@127.0.0.1:5060 (from any SIP client on this machine; 1 = sales, 2 = support)",
        "            sip:5001@127.0.0.1:5060 the service line: language, account number (12345678 is a VIP),",
        "            place in line and estimated wait (closed outside Shanghai business hours)",
        f"  agents    agent1001..agent1010 ring at: {', '.join(list(settings.agents.values())[:2])}, ...",
        f"  desktop   http://{settings.web_host}:{settings.web_port}/desktop/  (agent 1001, password demo-1001"
        " unless changed with `callcenter agent password`)",
        f"  wallboard http://{settings.web_host}:{settings.web_port}/wallboard/  (user supervisor, password"
        " demo-supervisor; its phone rings at " + settings.supervisor_phones.get("supervisor", "-") + ")",
        f"  QA        http://{settings.web_host}:{settings.web_port}/qa/  (user analyst, password demo-analyst)",
        f"  web API   http://{settings.web_host}:{settings.web_port}/api/queues  (/agents, /events, /health;"
        f" send the token in {settings.data_dir / 'api-token'} as 'Authorization: Bearer ...')",
        f"  database  {settings.db_url}",
        f"  records   {instance.recordings_dir}",
        "  log in    callcenter agent login 1001   (queues and skills: routing.yaml)",
        "",
    ])


@main.group()
def agent() -> None:
    """Agent state (login, logout, pause, unpause) and desktop passwords."""


@agent.command("login")
@click.argument("agent_id")
@click.option("--queues", default=None,
              help="Comma-separated queues to serve this session, e.g. support,sales "
                   "(default: the agent's queues in the routing file)")
@click.pass_context
def agent_login(ctx, agent_id, queues):
    """Log the agent in, with the queues and skill levels the routing file gives it."""
    body = {} if queues is None else {"queues": [q.strip() for q in queues.split(",") if q.strip()]}
    show(api_call(ctx, "POST", f"/api/agents/{agent_id}/login", body))


@agent.command("pause")
@click.argument("agent_id")
@click.option("--reason", default="break", show_default=True)
@click.pass_context
def agent_pause(ctx, agent_id, reason):
    """Pause the agent with a reason (no calls are offered while paused)."""
    show(api_call(ctx, "POST", f"/api/agents/{agent_id}/pause", {"reason": reason}))


def _plain_agent_command(verb: str, help_text: str) -> None:
    """Agent commands that take nothing but the agent id."""

    @agent.command(verb, help=help_text)
    @click.argument("agent_id")
    @click.pass_context
    def command(ctx, agent_id):
        show(api_call(ctx, "POST", f"/api/agents/{agent_id}/{verb}", {}))


_plain_agent_command("logout", "Log the agent out (refused while on a call).")


@agent.command("password")
@click.argument("agent_id")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The new password (asked for when not given; at least 8 characters)")
@click.pass_context
def agent_password(ctx, agent_id, password):
    """Set the password the agent logs in to the desktop with (stored as an Argon2id hash)."""
    from callcenter.storage import make_engine
    from callcenter.web.auth import Credentials, PasswordError

    settings = _settings(ctx)
    if agent_id not in settings.agents:
        raise click.ClickException(f"no agent {agent_id} in the settings' agents")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = make_engine(settings.db_url)
    try:
        Credentials(db).set_password(agent_id, password)
    except PasswordError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"password set for agent {agent_id}")
_plain_agent_command("unpause", "Make a paused agent available again.")


@main.command("queues")
@click.pass_context
def queues(ctx):
    """Queues and the calls waiting in them."""
    show(api_call(ctx, "GET", "/api/queues"))


@main.command("agents")
@click.pass_context
def agents(ctx):
    """Agents and their states."""
    show(api_call(ctx, "GET", "/api/agents"))


@main.command("events")
@click.option("--call", "call_id", default=None, help="Only this call's events.")
@click.pass_context
def events(ctx, call_id):
    """The event log (its first 1000 events), or one call's events."""
    rows = api_call(ctx, "GET", "/api/events" + (f"?call_id={call_id}" if call_id else ""))
    for row in rows:
        ts = time.strftime("%H:%M:%S", time.localtime(row["ts"]))
        click.echo(f"{ts} {row['kind']:<16} call={row['call_id'] or '-':<20} queue={row['queue'] or '-':<8} "
                   f"agent={row['agent_id'] or '-':<5} {json.dumps(row['data'])}")


def _register_capability_commands() -> None:
    # each capability owns its own command group
    from callcenter.acd.cli import routing
    from callcenter.campaign.cli import campaign, dnc
    from callcenter.crm.cli import crm
    from callcenter.ivr.cli import flows
    from callcenter.kpi.cli import staffing
    from callcenter.kpi.report_cli import report
    from callcenter.recording.cli import recordings
    from callcenter.web.staff_cli import user

    main.add_command(flows)
    main.add_command(routing)
    main.add_command(staffing)
    main.add_command(report)
    main.add_command(crm)
    main.add_command(campaign)
    main.add_command(dnc)
    main.add_command(user)
    main.add_command(recordings)


_register_capability_commands()

if __name__ == "__main__":
    main()
