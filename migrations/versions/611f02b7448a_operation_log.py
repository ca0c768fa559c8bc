"""operation log

Revision ID: 611f02b7448a
Revises: 4ee42664b794
Create Date: 2026-11-22 04:40:00.000000

"""

from alembic import op
import sqlalchemy as sa

import portal.database


# revision identifiers, used by Alembic.
revision = "611f02b7448a"
down_revision = "4ee42664b794"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "operation_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("created_at", portal.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=False),
        sa.Column("request_truncated", sa.Boolean(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("response_truncated", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connection.id"],
            name=op.f("fk_operation_log_connection_id_connection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operation_log")),
    )
    with op.batch_alter_table("operation_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operation_log_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_operation_log_connection_created", ["connection_id", "created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("operation_log", schema=None) as batch_op:
        batch_op.drop_index("ix_operation_log_connection_created")
        batch_op.drop_index(batch_op.f("ix_operation_log_created_at"))

    op.drop_table("operation_log")
