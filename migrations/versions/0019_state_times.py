"""state times: when an agent's presence and activity last changed, and when a leg was first connected

The board shows how long each agent has been in their state; a call's page
is open to an agent while a leg of theirs is live or once one was connected.
Legs connected before this revision are taken from what they show: those
still connected or on hold, and those ended after being answered; a leg
declined, unanswered, busy, failed or cancelled never talked.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


# The new columns, all nullable timestamps, by table.
NEW_COLUMNS = {'agents': ('presence_changed_at', 'activity_changed_at'), 'legs': ('connected_at',)}


def upgrade() -> None:
    for table, columns in NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in columns:
                batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE legs SET connected_at = COALESCE(answered_at, created_at) "
               "WHERE status IN ('connected', 'on_hold') "
               "OR (status = 'ended' AND answered_at IS NOT NULL)")


def downgrade() -> None:
    for table, columns in NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in reversed(columns):
                batch.drop_column(name)
