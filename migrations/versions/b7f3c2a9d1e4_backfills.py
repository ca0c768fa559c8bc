"""backfills

Revision ID: b7f3c2a9d1e4
Revises: 4ee42664b794
Create Date: 2026-11-22 04:45:00.000000

"""

from alembic import op
import sqlalchemy as sa

import portal.database


# revision identifiers, used by Alembic.
revision = "b7f3c2a9d1e4"
down_revision = "4ee42664b794"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "backfill",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("sync_run_id", sa.Integer(), nullable=True),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "paused",
                "waiting",
                "interrupted",
                "succeeded",
                "cancelled",
                name="backfill_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("cursor_kind", sa.String(length=16), nullable=True),
        sa.Column("cursor_id", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("preview", sa.JSON(), nullable=True),
        sa.Column("requested", sa.String(length=16), nullable=True),
        sa.Column("resume_at", portal.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("started_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", portal.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", portal.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", portal.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("busy_seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connection.id"], name=op.f("fk_backfill_connection_id_connection"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"], ["staff_user.id"], name=op.f("fk_backfill_started_by_id_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["sync_run_id"], ["sync_run.id"], name=op.f("fk_backfill_sync_run_id_sync_run"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill")),
    )
    with op.batch_alter_table("backfill", schema=None) as batch_op:
        batch_op.create_index("ix_backfill_connection_created", ["connection_id", "created_at"], unique=False)

    op.create_table(
        "backfill_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backfill_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("document_date", sa.Date(), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "created",
                "existing",
                "skipped",
                "blocked",
                "failed",
                name="backfill_outcome",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("fix_url", sa.String(length=300), nullable=True),
        sa.Column("created_at", portal.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["backfill_id"], ["backfill.id"], name=op.f("fk_backfill_item_backfill_id_backfill"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_item")),
        sa.UniqueConstraint("backfill_id", "kind", "local_id", name=op.f("uq_backfill_item_backfill_id_kind_local_id")),
    )
    with op.batch_alter_table("backfill_item", schema=None) as batch_op:
        batch_op.create_index("ix_backfill_item_backfill_outcome", ["backfill_id", "outcome"], unique=False)


def downgrade():
    with op.batch_alter_table("backfill_item", schema=None) as batch_op:
        batch_op.drop_index("ix_backfill_item_backfill_outcome")

    op.drop_table("backfill_item")
    with op.batch_alter_table("backfill", schema=None) as batch_op:
        batch_op.drop_index("ix_backfill_connection_created")

    op.drop_table("backfill")
