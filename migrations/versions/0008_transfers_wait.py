"""transfers wait at a busy queue: the `waiting` state counts as under way, and since when it waits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BEFORE = "state IN ('requested', 'dialing', 'whispering', 'consulting')"
AFTER = "state IN ('requested', 'waiting', 'dialing', 'whispering', 'consulting')"


def _one_active_per_call(batch, where: str) -> None:
    batch.create_index('uq_transfers_one_active_per_call', ['call_id'], unique=True,
                       sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    with op.batch_alter_table('transfers') as batch:
        batch.add_column(sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True))
        batch.drop_index('uq_transfers_one_active_per_call')
        _one_active_per_call(batch, AFTER)


def downgrade() -> None:
    with op.batch_alter_table('transfers') as batch:
        batch.drop_index('uq_transfers_one_active_per_call')
        _one_active_per_call(batch, BEFORE)
        batch.drop_column('waiting_since')
