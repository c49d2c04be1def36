"""transfer requested by: who asked for a transfer (a user's username, an API token's name, a phone's extension)

The timeline's `transfer_requested` says who asked; the transfer keeps it too,
so the notes typed with it are credited to whoever typed them (a supervisor
on the call page, not the transferring agent). Transfers asked for before
this revision keep none: who asked was not recorded.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('transfers', sa.Column('requested_by', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('transfers') as batch:
        batch.drop_column('requested_by')
