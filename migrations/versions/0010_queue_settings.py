"""queue settings: a queue's own wrap-up, announcement interval and longest wait (none: the service-wide ones)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

COLUMNS = ("wrap_up_seconds", "announce_seconds", "max_wait_seconds")


def upgrade() -> None:
    with op.batch_alter_table('queues') as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('queues') as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
