"""event webhooks: subscribers, their deliveries (the outbox of outgoing events) and each delivery's attempts

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_subscribers',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(64), nullable=False, unique=True),
        sa.Column('url', sa.String(512), nullable=False),
        sa.Column('event_types', sa.JSON(), nullable=False),
        sa.Column('sealed_secret', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'event_deliveries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('subscriber_id', sa.Integer(), sa.ForeignKey('event_subscribers.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('message_id', sa.String(64), nullable=False, unique=True),
        sa.Column('event_type', sa.String(32), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('delivery_state', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    )
    for column in ('subscriber_id', 'call_id', 'delivery_state', 'next_attempt_at'):
        op.create_index(f'ix_event_deliveries_{column}', 'event_deliveries', [column])
    op.create_table(
        'event_delivery_attempts',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('delivery_id', sa.Integer(), sa.ForeignKey('event_deliveries.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(255), nullable=True),
        sa.Column('replay', sa.Boolean(), nullable=False),
    )
    op.create_index('ix_event_delivery_attempts_delivery_id', 'event_delivery_attempts', ['delivery_id'])


def downgrade() -> None:
    op.drop_table('event_delivery_attempts')
    op.drop_table('event_deliveries')
    op.drop_table('event_subscribers')
