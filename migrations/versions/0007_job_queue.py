"""job queue: procrastinate's tables, functions and triggers (PostgreSQL only)

On PostgreSQL the service's jobs are rows of procrastinate's tables
(app/jobs/engine.py); its schema is procrastinate's own `schema.sql`, of the
release pinned in pyproject.toml. On SQLite there is no job table: the jobs
live in the process's memory, so this migration does nothing there.

Upgrading procrastinate later: a new migration applies the SQL files of
procrastinate's `sql/migrations` folder between the two releases, in order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from alembic import op
from procrastinate.schema import SchemaManager

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,
            procrastinate_workers CASCADE;
        DO $$
        DECLARE routine record;
        BEGIN
            FOR routine IN SELECT oid::regprocedure AS signature FROM pg_proc WHERE proname LIKE 'procrastinate\\_%'
            LOOP
                EXECUTE 'DROP ROUTINE ' || routine.signature || ' CASCADE';
            END LOOP;
        END $$;
        DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type, procrastinate_job_status
            CASCADE;
    """)
