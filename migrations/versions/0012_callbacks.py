"""callbacks: a caller's request to be called back, its place in line and attempts; the call an attempt made

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'callbacks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('queue_id', sa.Integer(), nullable=True),
        sa.Column('number', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('end_reason', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_callbacks_call_id', 'callbacks', ['call_id'])
    op.create_index('ix_callbacks_due', 'callbacks', ['state', 'next_attempt_at'])
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('callback_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_calls_callback_id_callbacks', 'callbacks', ['callback_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_index('ix_calls_callback_id', ['callback_id'])


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_index('ix_calls_callback_id')
        batch.drop_constraint('fk_calls_callback_id_callbacks', type_='foreignkey')
        batch.drop_column('callback_id')
    op.drop_index('ix_callbacks_due', table_name='callbacks')
    op.drop_index('ix_callbacks_call_id', table_name='callbacks')
    op.drop_table('callbacks')
