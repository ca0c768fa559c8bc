"""Customer links remember what the ledger customer last got (changes are pushed as updates); a held customer can be created anyway.

- ``customer_link.synced`` / ``synced_at`` / ``update_error``: the SaaS customer's values as the
  ledger customer last got them. Existing links start from the customer's current values (what a
  push created them with, or what they were when linked), so only later changes are pushed.
- ``external_record.create_confirmed``: a person confirmed that no ledger customer the push
  found is this customer ("Create anyway").

Revision ID: a9c4e2f7b316
Revises: b8e2d4f6a0c1
Create Date: 2026-12-02 09:10:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "a9c4e2f7b316"
down_revision = "b8e2d4f6a0c1"
branch_labels = None
depends_on = None

#: The customer columns a link's snapshot holds (portal.customers.updates.SYNCED_FIELDS).
FIELDS = ("name", "email", "vat_number", "coc_number", "street", "postcode", "city", "country")


def upgrade():
    with op.batch_alter_table("customer_link") as batch:
        batch.add_column(sa.Column("synced", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("update_error", sa.Text(), nullable=True))
    with op.batch_alter_table("external_record") as batch:
        batch.add_column(sa.Column("create_confirmed", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT customer_link.id, " + ", ".join(f"customer.{f}" for f in FIELDS) + " FROM customer_link "
            "JOIN customer ON customer.id = customer_link.customer_id"
        )
    ).all()
    now = datetime.now(UTC)
    link = sa.table(
        "customer_link",
        sa.column("id", sa.Integer()),
        sa.column("synced", sa.JSON()),
        sa.column("synced_at", sa.DateTime(timezone=True)),
    )
    for row in rows:
        snapshot = {f: getattr(row, f) for f in FIELDS}
        connection.execute(link.update().where(link.c.id == row.id).values(synced=snapshot, synced_at=now))


def downgrade():
    with op.batch_alter_table("external_record") as batch:
        batch.drop_column("create_confirmed")
    with op.batch_alter_table("customer_link") as batch:
        batch.drop_column("update_error")
        batch.drop_column("synced_at")
        batch.drop_column("synced")
