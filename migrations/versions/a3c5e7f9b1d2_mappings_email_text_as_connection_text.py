"""The invoice e-mail text set on the mappings page becomes the connection's e-mail text.

The mappings page kept it under ``invoice_email_text`` in the connection's settings, a key the push
never read; the push sends ``email_message`` (the text the connection's settings form edits). A text
saved on the mappings page moves there, unless the connection already has its own text, which wins.

Revision ID: a3c5e7f9b1d2
Revises: f2b8d4c6a1e3
Create Date: 2026-11-22 09:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "a3c5e7f9b1d2"
down_revision = "f2b8d4c6a1e3"
branch_labels = None
depends_on = None

OLD, NEW = "invoice_email_text", "email_message"
connection = sa.table("connection", sa.column("id", sa.Integer), sa.column("settings", sa.JSON))


def move_email_texts(bind) -> int:
    """Move every connection's mappings-page text to its e-mail text; return how many connections changed."""
    moved = 0
    for row in bind.execute(sa.select(connection.c.id, connection.c.settings)).all():
        settings = dict(row.settings or {})
        if OLD not in settings:
            continue
        text = (settings.pop(OLD) or "").strip()
        if text and not settings.get(NEW):
            settings[NEW] = text
        bind.execute(sa.update(connection).where(connection.c.id == row.id).values(settings=settings))
        moved += 1
    return moved


def upgrade():
    move_email_texts(op.get_bind())


def downgrade():
    pass  # the text stays the connection's e-mail text, which both forms now edit
