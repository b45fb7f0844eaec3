"""`callcenter crm`: migrate, import (exit 1 with every problem listed) and lookup, against a SQLite
file in the settings' data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from callcenter.config import Settings
from callcenter.crm.cli import crm
from tests.unit.test_crm_import import DEMO_CUSTOMERS


@pytest.fixture
def run(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)

    def run(*args: str) -> Result:
        return CliRunner().invoke(crm, list(args), obj={"settings": settings})

    return run


def test_migrate_import_and_lookup(run, tmp_path: Path) -> None:
    migrated = run("migrate")
    assert migrated.exit_code == 0, migrated.output
    assert migrated.output == f"CRM schema at revision 0001 in sqlite:///{tmp_path / 'callcenter.db'}\n"
    imported = run("import", str(DEMO_CUSTOMERS))
    assert imported.exit_code == 0, imported.output
    assert "imported 6 customer(s)" in imported.output

    by_phone = run("lookup", "+86 138 0013 8000")
    assert by_phone.exit_code == 0, by_phone.output
    assert by_phone.output.splitlines() == [
        "customer    1  Li Wei",
        "tier        vip",
        "language    zh",
        "phones      +8613800138000",
        "accounts    12345678",
        "notes       Prefers a callback in the afternoon; account manager is agent 1001",
        "matched by  phone",
    ]
    by_account = run("lookup", "--account", "87654321")
    assert "Alice Smith" in by_account.output and "matched by  account" in by_account.output

    nobody = run("lookup", "13900139000")
    assert (nobody.exit_code, nobody.output) == (1, "no customer matches +8613900139000\n")


def test_import_with_problems_lists_them_and_exits_1(run, tmp_path: Path) -> None:
    run("migrate")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,phones,tier\nLi Wei,12ab,platinum\n")
    result = run("import", str(bad))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{bad}:2: phones: '12ab' is not a phone number: unexpected character 'a'",
        f"{bad}:2: tier: 'platinum' is not a tier (one of: vip, gold, regular)",
        f"{bad}: 2 problem(s); nothing imported",
    ]


def test_commands_before_migrate_say_what_to_run(run) -> None:
    result = run("lookup", "13800138000")
    assert result.exit_code == 1
    assert "CRM tables missing" in result.output and "callcenter crm migrate" in result.output


@pytest.mark.parametrize(("args", "message"), [
    ((), "give a phone NUMBER or --account DIGITS"),
    (("13800138000", "--account", "12345678"), "give a phone NUMBER or --account DIGITS"),
    (("12ab",), "'12ab' is not a phone number"),
])
def test_lookup_arguments_are_checked(run, args: tuple[str, ...], message: str) -> None:
    run("migrate")
    result = run("lookup", *args)
    assert result.exit_code == 2 and message in result.output
