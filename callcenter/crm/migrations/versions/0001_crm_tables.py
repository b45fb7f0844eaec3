"""CRM tables: customers, their phone numbers and account numbers, and their interactions.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 11:19:25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_customers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=16), server_default="regular", nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_customers")),
    )
    op.create_table(
        "crm_phones",
        sa.Column("e164", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["crm_customers.id"], ondelete="CASCADE",
                                name=op.f("fk_crm_phones_customer_id_crm_customers")),
        sa.PrimaryKeyConstraint("e164", name=op.f("pk_crm_phones")),
    )
    op.create_index(op.f("ix_crm_phones_customer_id"), "crm_phones", ["customer_id"])
    op.create_table(
        "crm_accounts",
        sa.Column("account_number", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["crm_customers.id"], ondelete="CASCADE",
                                name=op.f("fk_crm_accounts_customer_id_crm_customers")),
        sa.PrimaryKeyConstraint("account_number", name=op.f("pk_crm_accounts")),
    )
    op.create_index(op.f("ix_crm_accounts_customer_id"), "crm_accounts", ["customer_id"])
    op.create_table(
        "crm_interactions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=32), nullable=True),
        sa.Column("agent_id", sa.String(length=16), nullable=True),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["crm_customers.id"], ondelete="SET NULL",
                                name=op.f("fk_crm_interactions_customer_id_crm_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_interactions")),
    )
    op.create_index(op.f("ix_crm_interactions_customer_id_ts"), "crm_interactions", ["customer_id", "ts"])
    op.create_index(op.f("ix_crm_interactions_call_id"), "crm_interactions", ["call_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes with it.
    for table in ("crm_interactions", "crm_accounts", "crm_phones", "crm_customers"):
        op.drop_table(table)
