"""record after-push steps and dismissal

Revision ID: 7c2d9e4b1a05
Revises: 4ee42664b794
Create Date: 2026-11-22 04:35:00.000000

"""
from alembic import op
import sqlalchemy as sa

import portal.database


# revision identifiers, used by Alembic.
revision = '7c2d9e4b1a05'
down_revision = '4ee42664b794'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('external_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pdf_attachment_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pdf_state', sa.Enum('attached', 'not_supported', 'no_pdf', 'failed', name='pdf_state', native_enum=False, length=16), nullable=True))
        batch_op.add_column(sa.Column('pdf_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('finalize_state', sa.Enum('finalized', 'sent', 'not_supported', 'failed', name='finalize_state', native_enum=False, length=16), nullable=True))
        batch_op.add_column(sa.Column('finalize_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('finalized_at', portal.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_at', portal.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolution', sa.Enum('resolved_manually', 'ignored', name='record_resolution', native_enum=False, length=24), nullable=True))
        batch_op.add_column(sa.Column('resolution_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('resolved_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', portal.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_external_record_resolved_by_id_staff_user'), 'staff_user', ['resolved_by_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('external_record', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_external_record_resolved_by_id_staff_user'), type_='foreignkey')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('resolved_by_id')
        batch_op.drop_column('resolution_note')
        batch_op.drop_column('resolution')
        batch_op.drop_column('sent_at')
        batch_op.drop_column('finalized_at')
        batch_op.drop_column('finalize_error')
        batch_op.drop_column('finalize_state')
        batch_op.drop_column('pdf_error')
        batch_op.drop_column('pdf_state')
        batch_op.drop_column('pdf_attachment_id')
