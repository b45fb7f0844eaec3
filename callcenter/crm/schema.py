"""The CRM tables, and the Alembic migrations that create and evolve them.

The tables live in their own ``MetaData`` and their own Alembic version table
(``alembic_version_crm``), so other capabilities can keep migrations of their own in the same
database. Nothing here creates tables on import or on first use: ``migrate(engine)`` (or
``callcenter crm migrate``) brings a database to the newest revision.

A new revision, after editing the tables below::

    from alembic import command
    from callcenter.crm.schema import alembic_config
    from callcenter.storage import make_engine

    with make_engine("sqlite:///scratch.db").begin() as connection:  # a database migrated to head
        command.revision(alembic_config(connection), "what changed", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_crm"

# Named constraints: SQLite can only change a table by rebuilding it (Alembic's batch mode), which
# needs to know every constraint by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

crm_metadata = MetaData(naming_convention=NAMING_CONVENTION)

customers_table = Table(
    "crm_customers", crm_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("tier", String(16), nullable=False, server_default="regular"),
    Column("language", String(8), nullable=True),        # 'en', 'zh'; None: the line's default
    Column("notes", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),         # epoch seconds, as events.ts
)

phones_table = Table(
    "crm_phones", crm_metadata,
    Column("e164", String(16), primary_key=True),        # E.164 is at most 15 digits and the '+'
    Column("customer_id", Integer, ForeignKey("crm_customers.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(32), nullable=True),          # 'mobile', 'office', ...
    Index(None, "customer_id"),
)

accounts_table = Table(
    "crm_accounts", crm_metadata,
    Column("account_number", String(20), primary_key=True),
    Column("customer_id", Integer, ForeignKey("crm_customers.id", ondelete="CASCADE"), nullable=False),
    Index(None, "customer_id"),
)

interactions_table = Table(
    "crm_interactions", crm_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # None: a caller the CRM did not know; kept, so unknown callers' history is not lost
    Column("customer_id", Integer, ForeignKey("crm_customers.id", ondelete="SET NULL"), nullable=True),
    Column("call_id", String(64), nullable=True),
    Column("ts", Float, nullable=False),                 # epoch seconds
    Column("caller_number", String(64), nullable=True),
    Column("queue", String(32), nullable=True),
    Column("agent_id", String(16), nullable=True),
    Column("disposition", String(32), nullable=True),    # e.g. 'resolved', 'callback', 'escalated'
    Column("resolved", Boolean, nullable=True),          # None: nobody said
    Column("notes", Text, nullable=False, server_default=""),
    Index(None, "customer_id", "ts"),
    Index(None, "call_id"),
)

CRM_TABLES = tuple(crm_metadata.tables)


class CrmSchemaError(RuntimeError):
    """The database has no (or not all) CRM tables: it has not been migrated."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the CRM migrations, built in code (there is no alembic.ini);
    ``connection`` is the one ``migrations/env.py`` runs them on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%%' because Config values are interpolated: revision files are named 0001_crm_tables.py
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> str:
    """Bring the CRM tables in ``engine``'s database to the newest revision (a no-op when they
    are); returns that revision."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
        revision = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    log.info("CRM schema at revision %s in %s", revision, engine.url.render_as_string(hide_password=True))
    return revision or ""


def check_schema(engine: Engine) -> None:
    """Raise :class:`CrmSchemaError` naming what is missing unless every CRM table exists."""
    missing = sorted(set(CRM_TABLES) - set(inspect(engine).get_table_names()))
    if missing:
        where = engine.url.render_as_string(hide_password=True)
        raise CrmSchemaError(f"CRM tables missing in {where}: {', '.join(missing)} "
                             f"(run `callcenter crm migrate`, or callcenter.crm.schema.migrate(engine))")
