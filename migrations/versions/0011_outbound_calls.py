"""outbound calls: a call's direction (inbound: a caller dialled us; outbound: we dialled a customer)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('direction', sa.String(length=8), nullable=False, server_default='inbound'))


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('direction')
