"""token scopes: what each API token may do (read, act), when it expires, when it was last used

Tokens made before this revision keep working as they did: they get both
scopes (read and act) and no expiry, so every client that had one is served
as before until its token is replaced by one with narrower scopes.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        # The server default gives every existing token both scopes.
        batch.add_column(sa.Column('scopes', sa.String(32), nullable=False, server_default='read act'))
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        for name in ('last_used_at', 'expires_at', 'scopes'):
            batch.drop_column(name)
