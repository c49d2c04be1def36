"""lookup indexes: every LiveKit webhook finds its call by room, every new call asks for the caller's last
call, and a transfer's steps read its events, find it by its target's leg and ask for its agents' other legs;
without these each was a sequential scan of a table that grows with every call (docs/performance.md, "Lookups
that grew with the history")

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

# (table, index name, columns): the names SQLAlchemy gives an `index=True` column, or the models' own Index.
INDEXES = (
    ('calls', 'ix_calls_room_name', ['room_name']),
    ('calls', 'ix_calls_from_number_ended_at', ['from_number', 'ended_at']),
    ('calls', 'ix_calls_to_number', ['to_number']),
    ('transfers', 'ix_transfers_consult_room', ['consult_room']),
    ('transfers', 'ix_transfers_target_leg_id', ['target_leg_id']),
    ('legs', 'ix_legs_agent_id', ['agent_id']),
    ('events', 'ix_events_transfer_id', ['transfer_id']),
)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # Built without holding off the calls' writes while it runs (a busy history takes a while): outside the
        # migration's transaction, as PostgreSQL requires of CONCURRENTLY.
        with op.get_context().autocommit_block():
            for table, name, columns in INDEXES:
                op.create_index(name, table, columns, unique=False, postgresql_concurrently=True)
        return
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade():
    for table, name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
