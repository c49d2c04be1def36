"""call history and voicemail inbox: calls listed newest first by an index; a voicemail's length and who handled it

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The history's order, newest first, and its keyset (created_at, id).
    op.create_index('ix_calls_created_at_id', 'calls', ['created_at', 'id'])
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('voicemail_seconds', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('voicemail_handled_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('voicemail_handled_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_index('ix_calls_created_at_id', table_name='calls')
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('voicemail_handled_by')
        batch.drop_column('voicemail_handled_at')
        batch.drop_column('voicemail_seconds')
