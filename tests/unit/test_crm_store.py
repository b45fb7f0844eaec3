"""The CRM store on a real SQLite file: Alembic migrations, customers looked up by phone (in any
written form) and by account, duplicates refused with nothing stored, interactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from callcenter.crm.phone import PhoneNumberError
from callcenter.crm.schema import (
    CRM_TABLES,
    VERSION_TABLE,
    CrmSchemaError,
    crm_metadata,
    migrate,
)
from callcenter.crm.store import (
    CrmStore,
    CustomerCard,
    CustomerDataError,
    DuplicateNumberError,
)
from callcenter.storage import make_engine


def migrated_store(directory: Path) -> CrmStore:
    """A CRM store on a fresh SQLite file in ``directory``, migrated to the newest revision."""
    engine = make_engine(f"sqlite:///{directory / 'crm.db'}")
    migrate(engine)
    return CrmStore(engine)


@pytest.fixture
def store(tmp_path: Path) -> CrmStore:
    return migrated_store(tmp_path)


def row_counts(store: CrmStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in crm_metadata.tables.items()}


# ------------------------------------------------------------------------------ schema
def test_migrate_creates_the_tables_and_records_the_revision(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    engine = make_engine(f"sqlite:///{db}")
    assert migrate(engine) == "0001"
    assert set(inspect(engine).get_table_names()) == {*CRM_TABLES, VERSION_TABLE}
    with sqlite3.connect(db) as conn:
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [("0001",)]


def test_migrating_again_changes_nothing(store: CrmStore) -> None:
    customer_id = store.add_customer("Li Wei", phones=["13800138000"])
    assert migrate(store.engine) == "0001"
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {VERSION_TABLE}").scalar_one() == 1
    assert store.lookup_by_number("13800138000").id == customer_id


def test_the_migrations_build_exactly_the_tables_the_code_declares(store: CrmStore) -> None:
    # A table edited in schema.py without a new revision would show up here.
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, crm_metadata) == []


def test_the_store_refuses_a_database_that_was_not_migrated(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(CrmSchemaError, match="CRM tables missing .*crm_customers.*callcenter crm migrate"):
        CrmStore(engine)
    assert inspect(engine).get_table_names() == []   # and created none itself


# ------------------------------------------------------------------------------ lookups
def test_a_customer_is_found_by_phone_in_any_written_form(store: CrmStore) -> None:
    li_wei = store.add_customer("Li Wei", phones=["13800138000", ("010-62345678", "office")],
                                accounts=["12345678"], tier="vip", language="zh", notes="callback pm")
    expected = CustomerCard(id=li_wei, name="Li Wei", tier="vip", language="zh", notes="callback pm",
                            phones=("+861062345678", "+8613800138000"), accounts=("12345678",),
                            matched_by="phone")
    for caller_id in ("13800138000", "+8613800138000", "+86 138 0013 8000", "008613800138000",
                      "86-13800138000", "(010) 6234 5678", "01062345678"):
        assert store.lookup_by_number(caller_id) == expected, caller_id


def test_a_customer_is_found_by_account(store: CrmStore) -> None:
    alice = store.add_customer("Alice Smith", phones=["+44 20 7946 0958"], accounts=["87654321"], language="en")
    card = store.lookup_by_account("87654321")
    assert card is not None
    assert (card.id, card.name, card.tier, card.language, card.phones, card.matched_by) == (
        alice, "Alice Smith", "regular", "en", ("+442079460958",), "account")


@pytest.mark.parametrize("caller_id", ["13900139000", "", "anonymous", "12ab", "1" * 500])
def test_unknown_and_unreadable_caller_ids_find_nobody(store: CrmStore, caller_id: str) -> None:
    store.add_customer("Li Wei", phones=["13800138000"])
    assert store.lookup_by_number(caller_id) is None


@pytest.mark.parametrize("digits", ["99999999", "", "1234abcd", "123"])
def test_unknown_and_malformed_accounts_find_nobody(store: CrmStore, digits: str) -> None:
    store.add_customer("Li Wei", accounts=["12345678"])
    assert store.lookup_by_account(digits) is None


# ------------------------------------------------------------------------------ adding
def test_a_number_someone_already_has_is_refused_and_nothing_is_stored(store: CrmStore) -> None:
    li_wei = store.add_customer("Li Wei", phones=["13800138000"], accounts=["12345678"])
    before = row_counts(store)
    with pytest.raises(DuplicateNumberError,
                       match=rf"phone \+8613800138000 already belongs to customer {li_wei} \(Li Wei\)"):
        store.add_customer("Wang Fang", phones=["13700001234", "+86 138 0013 8000"], accounts=["20240002"])
    with pytest.raises(DuplicateNumberError, match=rf"account 12345678 already belongs to customer {li_wei}"):
        store.add_customer("Wang Fang", phones=["13700001234"], accounts=["12345678"])
    assert row_counts(store) == before
    assert store.lookup_by_number("13700001234") is None


def test_a_number_given_twice_is_refused(store: CrmStore) -> None:
    with pytest.raises(DuplicateNumberError, match=r"phone \+8613800138000 is given twice"):
        store.add_customer("Li Wei", phones=["13800138000", "+86 13800138000"])
    assert row_counts(store)["crm_customers"] == 0


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"name": " "}, CustomerDataError, "a customer needs a name"),
    ({"tier": "platinum"}, CustomerDataError, "'platinum' is not a tier"),
    ({"language": "EN"}, CustomerDataError, "'EN' is not a two-letter"),
    ({"accounts": ["12-34"]}, CustomerDataError, r"'12-34' is not an account number \(4 to 20 digits\)"),
    ({"phones": ["12ab"]}, PhoneNumberError, "'12ab' is not a phone number"),
])
def test_invalid_fields_are_refused(store: CrmStore, fields: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        store.add_customer(**{"name": "Li Wei", **fields})
    assert row_counts(store)["crm_customers"] == 0


# ------------------------------------------------------------------------------ interactions
def test_interactions_are_kept_newest_first(store: CrmStore) -> None:
    li_wei = store.add_customer("Li Wei", phones=["13800138000"])
    for n in range(3):
        store.record_interaction(customer_id=li_wei, call_id=f"call-{n}", ts=1000.0 + n,
                                 caller_number="+8613800138000", queue="support", agent_id="1001",
                                 disposition="resolved", resolved=n != 1, notes=f"call {n}")
    unknown = store.record_interaction(customer_id=None, call_id="call-x", caller_number="anonymous", ts=999.0)
    recent = store.recent_interactions(li_wei, limit=2)
    assert [(i.call_id, i.ts, i.resolved, i.notes) for i in recent] == [
        ("call-2", 1002.0, True, "call 2"), ("call-1", 1001.0, False, "call 1")]
    assert (recent[0].customer_id, recent[0].queue, recent[0].agent_id, recent[0].disposition) == (
        li_wei, "support", "1001", "resolved")
    assert len(store.recent_interactions(li_wei)) == 3
    assert unknown not in [i.id for i in store.recent_interactions(li_wei)]
