"""resume: a caller cut off who calls straight back goes back to their agent or their place

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('resumed_from_call_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('resume_agent_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_calls_resumed_from_call_id_calls', 'calls', ['resumed_from_call_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_foreign_key('fk_calls_resume_agent_id_agents', 'agents', ['resume_agent_id'], ['id'],
                                 ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_constraint('fk_calls_resume_agent_id_agents', type_='foreignkey')
        batch.drop_constraint('fk_calls_resumed_from_call_id_calls', type_='foreignkey')
        batch.drop_column('resume_agent_id')
        batch.drop_column('resumed_from_call_id')
