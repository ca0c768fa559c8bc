"""Partial indexes of external records for the ops console (held, failed and pushed records).

Revision ID: d4a7c1e9b2f6
Revises: 0c9d5e7f3a21
Create Date: 2026-11-22 05:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "d4a7c1e9b2f6"
down_revision = "0c9d5e7f3a21"
branch_labels = None
depends_on = None

HELD_WHERE = "state IN ('failed', 'needs_action', 'skipped')"
FAILED_WHERE = "state IN ('failed', 'needs_action')"
PUSHED_WHERE = "state = 'pushed'"


def _where(predicate: str) -> dict:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def upgrade():
    op.create_index(
        "ix_external_record_held",
        "external_record",
        ["connection_id", "state", "last_error_class", "updated_at"],
        **_where(HELD_WHERE),
    )
    op.create_index(
        "ix_external_record_waiting_since",
        "external_record",
        [sa.text("coalesce(last_attempt_at, created_at)"), "id"],
        **_where(FAILED_WHERE),
    )
    op.create_index("ix_external_record_failed_attempt", "external_record", ["last_attempt_at"], **_where(FAILED_WHERE))
    op.create_index("ix_external_record_pushed_at", "external_record", ["pushed_at"], **_where(PUSHED_WHERE))


def downgrade():
    op.drop_index("ix_external_record_pushed_at", table_name="external_record")
    op.drop_index("ix_external_record_failed_attempt", table_name="external_record")
    op.drop_index("ix_external_record_waiting_since", table_name="external_record")
    op.drop_index("ix_external_record_held", table_name="external_record")
