"""configuration version: one row the database's own triggers bump whenever the queues or the event subscribers
change, so a process may keep what it read of them while the version stays the same (database.read_configuration)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

TABLES = ('queues', 'event_subscribers')

# The row is written again if it is missing (a table emptied whole): its first version is random, so a process
# that cached what it read of an earlier database of the same address never takes that for this one's.
PG_BUMP = r"""
CREATE FUNCTION switchboard_configuration_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO configuration_version (id, version) VALUES (1, floor(random() * 1e15)::bigint)
    ON CONFLICT (id) DO UPDATE SET version = configuration_version.version + 1;
    RETURN NULL;
END
$$
"""
SQLITE_BUMP = ("INSERT INTO configuration_version (id, version) VALUES (1, abs(random()) % 1000000000000000) "
               "ON CONFLICT (id) DO UPDATE SET version = version + 1")


def upgrade() -> None:
    op.create_table(
        'configuration_version',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),  # always 1
        sa.Column('version', sa.BigInteger(), nullable=False),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_BUMP)
        for table in TABLES:
            # Once per statement, TRUNCATE included: what changed does not matter, only that something did.
            op.execute(f'CREATE TRIGGER {table}_configuration_changed '
                       f'AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} '
                       f'FOR EACH STATEMENT EXECUTE FUNCTION switchboard_configuration_changed()')
        op.execute('INSERT INTO configuration_version (id, version) VALUES (1, floor(random() * 1e15)::bigint)')
    else:
        # SQLite's triggers are per row and per kind of change.
        for table in TABLES:
            for change in ('INSERT', 'UPDATE', 'DELETE'):
                op.execute(f'CREATE TRIGGER {table}_configuration_{change.lower()} AFTER {change} ON {table} '
                           f'BEGIN {SQLITE_BUMP}; END')
        op.execute('INSERT INTO configuration_version (id, version) VALUES (1, abs(random()) % 1000000000000000)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_configuration_changed ON {table}')
        op.execute('DROP FUNCTION IF EXISTS switchboard_configuration_changed()')
    else:
        for table in TABLES:
            for change in ('insert', 'update', 'delete'):
                op.execute(f'DROP TRIGGER IF EXISTS {table}_configuration_{change}')
    op.drop_table('configuration_version')
