"""first queued at: when a call first joined a queue, kept on the call

The queue figures count the day's calls by when each first joined a queue
(its average answer and service level run from then). That moment was
looked up in each call's timeline at every board read, one index lookup a
call of the day (docs/performance.md, "The queue figures' day"); it is now
written once, with the call's first `call_queued` event. Calls queued before
this revision take it from that event.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('first_queued_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE calls SET first_queued_at = (SELECT min(events.created_at) FROM events "
               "WHERE events.call_id = calls.id AND events.name = 'call_queued') "
               "WHERE EXISTS (SELECT 1 FROM events WHERE events.call_id = calls.id AND events.name = 'call_queued')")


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('first_queued_at')
