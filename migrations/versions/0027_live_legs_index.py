"""live legs index: the board, the reconciler and the consoles ask for legs not yet over by their status
(`status IN` the live ones, models.LIVE_LEG_STATUSES), which this index answers from the few live legs instead
of reading every leg ever made (docs/performance.md, "Lookups that grew with the history")

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # As 0026: built while the legs keep being written, outside the migration's transaction.
        with op.get_context().autocommit_block():
            op.create_index('ix_legs_status', 'legs', ['status'], unique=False, postgresql_concurrently=True)
        return
    op.create_index('ix_legs_status', 'legs', ['status'], unique=False)


def downgrade():
    op.drop_index('ix_legs_status', table_name='legs')
