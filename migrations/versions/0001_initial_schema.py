"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('extension', sa.String(length=16), nullable=False),
    sa.Column('sip_uri', sa.String(length=255), nullable=True),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('presence', sa.String(length=16), nullable=False),
    sa.Column('activity', sa.String(length=16), nullable=False),
    sa.Column('missed_in_row', sa.Integer(), nullable=False),
    sa.Column('last_call_ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('extension', name=op.f('uq_agents_extension'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('queues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('dtmf_code', sa.String(length=4), nullable=False),
    sa.Column('skill', sa.String(length=64), nullable=False),
    sa.Column('speech_hints', sa.JSON(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queues')),
    sa.UniqueConstraint('dtmf_code', name=op.f('uq_queues_dtmf_code')),
    sa.UniqueConstraint('name', name=op.f('uq_queues_name'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('delivery_key', sa.String(length=128), nullable=False),
    sa.Column('endpoint', sa.String(length=128), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('source', 'delivery_key', name=op.f('uq_webhook_deliveries_source'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_created_at'), ['created_at'], unique=False)

    op.create_table('calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('from_number', sa.String(length=32), nullable=False),
    sa.Column('to_number', sa.String(length=32), nullable=False),
    sa.Column('room_name', sa.String(length=128), nullable=True),
    sa.Column('queue_id', sa.Integer(), nullable=True),
    sa.Column('ivr_reason', sa.Text(), nullable=True),
    sa.Column('ivr_attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('voicemail_url', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_calls_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_calls_queue_id_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_calls_call_sid'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calls_status'), ['status'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_users_agent_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('legs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('twilio_call_sid', sa.String(length=64), nullable=True),
    sa.Column('livekit_identity', sa.String(length=128), nullable=True),
    sa.Column('room_name', sa.String(length=128), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.Column('placement', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_legs_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_legs_call_id_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legs')),
    sa.UniqueConstraint('twilio_call_sid', name=op.f('uq_legs_twilio_call_sid'))
    )
    with op.batch_alter_table('legs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legs_call_id'), ['call_id'], unique=False)

    op.create_table('utterances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('speaker', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_utterances_call_id_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_utterances'))
    )
    with op.batch_alter_table('utterances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_utterances_call_id'), ['call_id'], unique=False)

    op.create_table('transfers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('trigger', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('from_agent_id', sa.Integer(), nullable=True),
    sa.Column('target_agent_id', sa.Integer(), nullable=True),
    sa.Column('target_queue_id', sa.Integer(), nullable=True),
    sa.Column('target_leg_id', sa.Integer(), nullable=True),
    sa.Column('consult_room', sa.String(length=128), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('tried_agent_ids', sa.JSON(), nullable=False),
    sa.Column('summary_spoken', sa.Text(), nullable=True),
    sa.Column('summary_structured', sa.JSON(), nullable=True),
    sa.Column('summary_source', sa.String(length=16), nullable=True),
    sa.Column('summary_provider', sa.String(length=32), nullable=True),
    sa.Column('summary_model', sa.String(length=128), nullable=True),
    sa.Column('summary_latency_ms', sa.Integer(), nullable=True),
    sa.Column('summary_error', sa.String(length=255), nullable=True),
    sa.Column('end_reason', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_transfers_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_agent_id'], ['agents.id'], name=op.f('fk_transfers_from_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['target_agent_id'], ['agents.id'], name=op.f('fk_transfers_target_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['target_leg_id'], ['legs.id'], name=op.f('fk_transfers_target_leg_id_legs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['target_queue_id'], ['queues.id'], name=op.f('fk_transfers_target_queue_id_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_state'), ['state'], unique=False)
        batch_op.create_index('uq_transfers_one_active_per_call', ['call_id'], unique=True, sqlite_where=sa.text("state IN ('requested', 'dialing', 'whispering', 'consulting')"), postgresql_where=sa.text("state IN ('requested', 'dialing', 'whispering', 'consulting')"))

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('transfer_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_events_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_events_transfer_id_transfers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_created_at'), ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_created_at'))
        batch_op.drop_index(batch_op.f('ix_events_call_id'))

    op.drop_table('events')
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index('uq_transfers_one_active_per_call', sqlite_where=sa.text("state IN ('requested', 'dialing', 'whispering', 'consulting')"), postgresql_where=sa.text("state IN ('requested', 'dialing', 'whispering', 'consulting')"))
        batch_op.drop_index(batch_op.f('ix_transfers_state'))
        batch_op.drop_index(batch_op.f('ix_transfers_call_id'))

    op.drop_table('transfers')
    with op.batch_alter_table('utterances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_utterances_call_id'))

    op.drop_table('utterances')
    with op.batch_alter_table('legs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legs_call_id'))

    op.drop_table('legs')
    op.drop_table('users')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_status'))

    op.drop_table('calls')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_created_at'))

    op.drop_table('webhook_deliveries')
    op.drop_table('queues')
    op.drop_table('api_tokens')
    op.drop_table('agents')
