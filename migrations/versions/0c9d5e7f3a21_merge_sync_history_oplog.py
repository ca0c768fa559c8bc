"""Merge the after-push steps, back-fills and operation log branches.

Revision ID: 0c9d5e7f3a21
Revises: 611f02b7448a, 7c2d9e4b1a05, b7f3c2a9d1e4
Create Date: 2026-11-22 05:20:00
"""

revision = "0c9d5e7f3a21"
down_revision = ("611f02b7448a", "7c2d9e4b1a05", "b7f3c2a9d1e4")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
