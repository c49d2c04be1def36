"""outside transfer targets: the number or SIP URI a transfer rings when it is no agent

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transfers') as batch:
        batch.add_column(sa.Column('target_number', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('transfers') as batch:
        batch.drop_column('target_number')
