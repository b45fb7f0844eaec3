"""``callcenter crm``: create or update the CRM tables, import customers from CSV, look one up.

Registered on the main command line by ``main.add_command(crm)``; settings come from the main
group's context, so ``--config`` applies here as everywhere else. The CRM modules (SQLAlchemy,
Alembic, phonenumbers) are imported inside the commands: every other ``callcenter`` command would
otherwise pay for loading them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from callcenter.web.cli_client import command_settings

if TYPE_CHECKING:
    from callcenter.crm.store import CrmStore, CustomerCard


@click.group("crm")
def crm() -> None:
    """Customer records: the CRM tables, CSV import, and the lookups calls make."""


@crm.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Create the CRM tables, or bring them to the newest revision (a no-op when they are)."""
    from callcenter.crm.schema import migrate
    from callcenter.storage import make_engine

    settings = command_settings(ctx)
    engine = make_engine(settings.db_url)
    try:
        revision = migrate(engine)
    finally:
        engine.dispose()
    click.echo(f"CRM schema at revision {revision} in {settings.db_url}")


@crm.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_command(ctx: click.Context, file: Path) -> None:
    """Import customers from a CSV FILE (columns name,phones,accounts,tier,language,notes; several
    phones or accounts separated by ';'). All rows or none: any problem imports nothing, and every
    problem is listed as file:line: column: message."""
    from callcenter.crm.importer import import_customers_csv

    with _store(ctx) as store:
        report = import_customers_csv(store, file)
    for problem in report.problems:
        click.echo(str(problem), err=True)
    if not report.ok:
        click.echo(report.summary(), err=True)
        ctx.exit(1)
    click.echo(report.summary())


@crm.command("lookup")
@click.argument("number", required=False)
@click.option("--account", metavar="DIGITS", help="Look up by account number instead of phone number.")
@click.pass_context
def lookup_command(ctx: click.Context, number: str | None, account: str | None) -> None:
    """The customer with phone NUMBER (in any form a caller ID has: 13800138000, +86 138...,
    010-12345678), or with account --account DIGITS. Exits 1 when no customer matches."""
    from callcenter.crm.phone import PhoneNumberError

    if (number is None) == (account is None):
        raise click.UsageError("give a phone NUMBER or --account DIGITS (one of them)")
    with _store(ctx) as store:
        if account is not None:
            card, wanted = store.lookup_by_account(account), f"account {account}"
        elif number is not None:
            try:
                e164 = store.normalize(number)
            except PhoneNumberError as exc:
                raise click.BadParameter(str(exc), param_hint="NUMBER") from None
            card, wanted = store.lookup_by_number(e164), e164
    if card is None:
        click.echo(f"no customer matches {wanted}")
        ctx.exit(1)
    click.echo(_render(card))


@contextmanager
def _store(ctx: click.Context) -> Iterator[CrmStore]:
    """The CRM store of the configured database; a ClickException if it has not been migrated."""
    from callcenter.crm.phone import check_region
    from callcenter.crm.schema import CrmSchemaError
    from callcenter.crm.store import CrmStore
    from callcenter.storage import make_engine

    settings = command_settings(ctx)
    try:
        check_region(settings.crm_region)
    except ValueError as exc:
        raise click.ClickException(f"setting crm_region: {exc}") from None
    engine = make_engine(settings.db_url)
    try:
        try:
            store = CrmStore(engine, region=settings.crm_region)
        except CrmSchemaError as exc:
            raise click.ClickException(str(exc)) from None
        yield store
    finally:
        engine.dispose()


def _render(card: CustomerCard) -> str:
    fields = [
        ("customer", f"{card.id}  {card.name}"),
        ("tier", card.tier),
        ("language", card.language or "-"),
        ("phones", ", ".join(card.phones) or "-"),
        ("accounts", ", ".join(card.accounts) or "-"),
        ("notes", card.notes or "-"),
        ("matched by", card.matched_by),
    ]
    return "\n".join(f"{label:<11} {value}" for label, value in fields)
