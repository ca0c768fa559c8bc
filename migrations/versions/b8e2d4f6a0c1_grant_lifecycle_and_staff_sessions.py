"""Consent grants end (their tokens purged) and are reached by a secret handle; staff sessions carry a version.

``oauth_grant.token_ciphertext`` becomes nullable (a grant that ended holds no tokens), gains the
SHA-256 of the handle its pick page is reached by, and when and how it ended. Grants waiting today
keep working until they expire; their tokens are purged by the next schedule tick.
``staff_user.session_version`` is raised to end every session of a person at once.

Revision ID: b8e2d4f6a0c1
Revises: a3c5e7f9b1d2
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b8e2d4f6a0c1"
down_revision = "a3c5e7f9b1d2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("oauth_grant") as batch:
        batch.alter_column("token_ciphertext", existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column("handle_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "outcome",
                sa.Enum(
                    "pinned", "refused", "expired", "discarded", "superseded",
                    name="grant_outcome", native_enum=False, length=32,
                ),
                nullable=True,
            )
        )
        batch.create_index("ix_oauth_grant_handle_hash", ["handle_hash"], unique=True)
    # Grants that were used or are past their time hold no tokens from now on.
    grant = sa.table(
        "oauth_grant",
        sa.column("token_ciphertext", sa.Text),
        sa.column("consumed_at", sa.DateTime(timezone=True)),
        sa.column("ended_at", sa.DateTime(timezone=True)),
        sa.column("outcome", sa.String),
    )
    op.execute(
        grant.update()
        .where(grant.c.consumed_at.is_not(None))
        .values(token_ciphertext=None, ended_at=grant.c.consumed_at, outcome="pinned")
    )
    with op.batch_alter_table("staff_user") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="1"))


def downgrade():
    with op.batch_alter_table("staff_user") as batch:
        batch.drop_column("session_version")
    with op.batch_alter_table("oauth_grant") as batch:
        batch.drop_index("ix_oauth_grant_handle_hash")
        batch.drop_column("outcome")
        batch.drop_column("ended_at")
        batch.drop_column("handle_hash")
