"""queue hours and overflow: a queue's time zone, weekly hours, holidays, and what follows its longest wait

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every column is empty on the queues there are: no hours (always open), CENTRE_TIMEZONE, no holidays,
    # and the options past the longest wait, as before.
    with op.batch_alter_table('queues') as batch:
        batch.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('hours', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('holidays', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('overflow', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('queues') as batch:
        for column in ('overflow', 'holidays', 'hours', 'timezone'):
            batch.drop_column(column)
