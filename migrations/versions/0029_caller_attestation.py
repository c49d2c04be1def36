"""caller attestation: what an inbound caller's carrier vouched for their number (STIR/SHAKEN)

Twilio sends StirVerstat with an inbound call that came with a SHAKEN
PASSporT; the service keeps its attestation (A, B, C, or "failed") on the
call, so a caller cut off who calls back is resumed only when their number
was vouched for (RESUME_REQUIRES_ATTESTATION), and their agent is told
either way. Calls recorded before keep NULL (nothing verified).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('caller_attestation', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('caller_attestation')
