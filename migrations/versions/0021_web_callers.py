"""web callers: visitors calling from the website, by the identity their browser's token carries

A visitor asks for a token (POST /call/token) with an optional name and
reason; the row keeps them until Twilio asks the voice webhook for
`client:<identity>`, when it is tied to that call.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_callers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('identity', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('identity'),
    )
    op.create_index('ix_web_callers_created_at', 'web_callers', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_web_callers_created_at', table_name='web_callers')
    op.drop_table('web_callers')
