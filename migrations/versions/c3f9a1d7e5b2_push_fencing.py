"""Push fencing: a lease per connection with a fencing token; records carry the token and their own retry time.

``connection_lease`` holds, per connection, the push run allowed to write to its ledger and a token
that only grows. ``external_record.fence`` is the token of the run that last marked the record (the
row's version); ``external_record.next_attempt_at`` defers a record after a transient error of its own.
``backfill.heartbeat_at`` is the running back-fill job's heartbeat.

Revision ID: c3f9a1d7e5b2
Revises: c4e8a2f6d0b1
Create Date: 2026-12-07 20:30:00
"""

import sqlalchemy as sa
from alembic import op

import portal.database

revision = "c3f9a1d7e5b2"
down_revision = "c4e8a2f6d0b1"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "connection_lease",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", portal.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", portal.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connection.id"],
            name=op.f("fk_connection_lease_connection_id_connection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_connection_lease")),
    )
    with op.batch_alter_table("external_record") as batch:
        batch.add_column(sa.Column("next_attempt_at", portal.database.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("fence", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    with op.batch_alter_table("backfill") as batch:
        batch.add_column(sa.Column("heartbeat_at", portal.database.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("backfill") as batch:
        batch.drop_column("heartbeat_at")
    with op.batch_alter_table("external_record") as batch:
        batch.drop_column("fence")
        batch.drop_column("next_attempt_at")
    op.drop_table("connection_lease")
