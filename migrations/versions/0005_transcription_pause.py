"""transcription pause: when the caller's transcription was stopped for a card number, and when it resumes

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('transcription_paused_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('transcription_resume_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f('ix_calls_transcription_resume_at'), ['transcription_resume_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_index(batch.f('ix_calls_transcription_resume_at'))
        batch.drop_column('transcription_resume_at')
        batch.drop_column('transcription_paused_at')
