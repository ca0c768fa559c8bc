"""Go-live gate: a connection pushes automatically only once support took it live.

``connection.live_since`` is when it went live (None while it is being set up);
``connection.onboarding`` keeps the outcomes of the onboarding checklist's checks. Every
connection that exists already has been pushing: it is marked live since it was connected.

Revision ID: c4e8a2f6d0b1
Revises: 9d3e5f7a1b2c
Create Date: 2026-12-07 20:30:00
"""

import sqlalchemy as sa
from alembic import op

import portal.database

revision = "c4e8a2f6d0b1"
down_revision = "9d3e5f7a1b2c"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("live_since", portal.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("onboarding", sa.JSON(), nullable=True))
    op.execute("UPDATE connection SET live_since = COALESCE(connected_at, created_at)")


def downgrade():
    with op.batch_alter_table("connection", schema=None) as batch_op:
        batch_op.drop_column("onboarding")
        batch_op.drop_column("live_since")
