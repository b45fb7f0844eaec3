"""``callcenter user ...``: the staff users (supervisors, QA analysts, admins) who log in to the
wallboard and QA pages. Works on the database directly, so it also works with the engine down."""

from __future__ import annotations

import click

from callcenter.web.auth import STAFF_ROLES, PasswordError, StaffUsers


def _users(ctx: click.Context):
    from callcenter.cli import _settings
    from callcenter.storage import make_engine

    settings = _settings(ctx)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = make_engine(settings.db_url)
    return db, StaffUsers(db)


@click.group("user")
def user() -> None:
    """Staff users: supervisors, QA analysts and admins."""


@user.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in STAFF_ROLES]), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The password (asked for when not given; at least 8 characters)")
@click.pass_context
def user_add(ctx, username, role, password):
    """Add a user, or change an existing user's role and password."""
    db, users = _users(ctx)
    try:
        users.add(username, role, password)
    except PasswordError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"{role} {username} saved")


@user.command("list")
@click.pass_context
def user_list(ctx):
    """The users and their roles."""
    db, users = _users(ctx)
    try:
        for row in users.list():
            click.echo(f"{row['username']:<24} {row['role']}")
    finally:
        db.dispose()


@user.command("remove")
@click.argument("username")
@click.pass_context
def user_remove(ctx, username):
    """Remove a user. Sessions already open in a running engine last until they idle out or the
    engine restarts; POST /api/staff/users/NAME/remove ends them at once."""
    db, users = _users(ctx)
    try:
        if not users.remove(username):
            raise click.ClickException(f"no user {username!r}")
    finally:
        db.dispose()
    click.echo(f"{username} removed")
