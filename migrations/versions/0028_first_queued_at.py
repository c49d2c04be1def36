"""first queued at: when a call first joined a queue, kept on the call

The queue figures count the day's calls by when each first joined a queue
(its average answer and service level run from then). That moment was
looked up in each call's timeline at every board read, one index lookup a
call of the day (docs/performance.md, "The queue figures' day"); it is now
written once, with the call's first `call_queued` event.

Only the figures of the centre's current day read it, so only the calls of
the last two days take it from their timeline here: one short UPDATE
through the calls' start index, whatever the history's length, while the
new column's lock is held (the version still running during a rolling
deploy keeps writing calls; docs/deployment.md says how to fill in the
calls it queues meanwhile). Older calls keep NULL.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

# The calls since :since that were queued, their first call_queued event's time (docs/deployment.md repeats it).
FILL_IN = """UPDATE calls SET first_queued_at = (SELECT min(events.created_at) FROM events
                                                WHERE events.call_id = calls.id AND events.name = 'call_queued')
WHERE calls.created_at >= :since AND calls.first_queued_at IS NULL
  AND EXISTS (SELECT 1 FROM events WHERE events.call_id = calls.id AND events.name = 'call_queued')"""


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('first_queued_at', sa.DateTime(timezone=True), nullable=True))
    since = sa.bindparam("since", type_=sa.DateTime(timezone=True))
    op.get_bind().execute(sa.text(FILL_IN).bindparams(since), {"since": datetime.now(timezone.utc) - timedelta(days=2)})


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('first_queued_at')
