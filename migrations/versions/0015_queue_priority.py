"""queue priority and callback attempts: which queue's caller an agent serving several gets first; a queue's own
number of callback attempts (none: CALLBACK_ATTEMPTS)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('queues') as batch:
        batch.add_column(sa.Column('callback_attempts', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('queues') as batch:
        batch.drop_column('priority')
        batch.drop_column('callback_attempts')
