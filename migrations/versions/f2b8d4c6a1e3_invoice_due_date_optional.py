"""An invoice's due date is optional: without one the push applies the connection's due days or the ledger's terms.

SQLite cannot alter a column in place, so there the table is rebuilt (batch mode).

Revision ID: f2b8d4c6a1e3
Revises: e6f1a3b5c7d9
Create Date: 2026-11-22 08:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "f2b8d4c6a1e3"
down_revision = "e6f1a3b5c7d9"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("invoice") as batch:
        batch.alter_column("due_date", existing_type=sa.Date(), nullable=True)


def downgrade():
    # Invoices without a due date fall due on their issue date.
    op.execute("UPDATE invoice SET due_date = issue_date WHERE due_date IS NULL")
    with op.batch_alter_table("invoice") as batch:
        batch.alter_column("due_date", existing_type=sa.Date(), nullable=False)
