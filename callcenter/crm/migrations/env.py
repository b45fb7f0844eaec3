"""Alembic environment of the CRM schema: runs the revision scripts on the connection that
:func:`callcenter.crm.schema.migrate` hands over in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from callcenter.crm.schema import VERSION_TABLE, crm_metadata

if context.is_offline_mode():
    raise RuntimeError("the CRM migrations run online only, through callcenter.crm.schema.migrate(engine)")

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("no connection: run the CRM migrations through callcenter.crm.schema.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=crm_metadata,
    version_table=VERSION_TABLE,     # other capabilities keep their own revision history
    render_as_batch=True,            # SQLite changes tables by copying them; PostgreSQL alters in place
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
