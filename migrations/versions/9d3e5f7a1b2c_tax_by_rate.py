"""Tax by rate: a tax table per connection, a tax kind on document lines, rates with three decimals.

``tax_mapping`` maps each SaaS tax rate (at 0 %: each kind) to a ledger tax code. Lines carry the
tax kind the SaaS sent (None: the one their rate implies). Rates widen from 2 to 3 decimals
(US sales tax rates such as 8.875 %). SQLite rebuilds the altered tables (batch mode).

Revision ID: 9d3e5f7a1b2c
Revises: a9c4e2f7b316
Create Date: 2026-12-07 17:00:00
"""

import sqlalchemy as sa
from alembic import op

import portal.database

revision = "9d3e5f7a1b2c"
down_revision = "a9c4e2f7b316"
branch_labels = None
depends_on = None

_RATE_TABLES = ("product", "invoice_line", "credit_note_line")


def upgrade():
    op.create_table(
        "tax_mapping",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Numeric(precision=6, scale=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", portal.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connection.id"],
            name=op.f("fk_tax_mapping_connection_id_connection"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["staff_user.id"], name=op.f("fk_tax_mapping_updated_by_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_mapping")),
        sa.UniqueConstraint("connection_id", "rate", "kind", name=op.f("uq_tax_mapping_connection_id_rate_kind")),
    )
    with op.batch_alter_table("tax_mapping") as batch:
        batch.create_index(batch.f("ix_tax_mapping_connection_id"), ["connection_id"], unique=False)
    for table in _RATE_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "tax_rate",
                existing_type=sa.Numeric(precision=5, scale=2),
                type_=sa.Numeric(precision=6, scale=3),
                existing_nullable=False,
            )
            if table != "product":
                batch.add_column(sa.Column("tax_kind", sa.String(length=16), nullable=True))


def downgrade():
    for table in _RATE_TABLES:
        with op.batch_alter_table(table) as batch:
            if table != "product":
                batch.drop_column("tax_kind")
            batch.alter_column(
                "tax_rate",
                existing_type=sa.Numeric(precision=6, scale=3),
                type_=sa.Numeric(precision=5, scale=2),
                existing_nullable=False,
            )
    with op.batch_alter_table("tax_mapping") as batch:
        batch.drop_index(batch.f("ix_tax_mapping_connection_id"))
    op.drop_table("tax_mapping")
