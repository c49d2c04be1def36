"""live signal by triggers: PostgreSQL itself notifies the live pages' process of each changed call, leg,
transfer, agent, timeline event and transcript line (app/live/signal.py), whoever wrote it

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

TABLES = ('calls', 'legs', 'transfers', 'agents', 'events', 'utterances')

# One notification per topic a row touches. PostgreSQL delivers them only
# when the transaction commits, drops them on rollback, and sends a topic
# named several times in one transaction once.
NOTIFY = r"""
CREATE FUNCTION switchboard_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'calls' THEN
        PERFORM pg_notify('switchboard_live', 'call:' || r.id);
    ELSIF TG_TABLE_NAME = 'agents' THEN
        PERFORM pg_notify('switchboard_live', 'agent:' || r.id);
    ELSIF TG_TABLE_NAME = 'legs' THEN
        PERFORM pg_notify('switchboard_live', 'call:' || r.call_id);
        IF r.agent_id IS NOT NULL THEN
            PERFORM pg_notify('switchboard_live', 'agent:' || r.agent_id);
        END IF;
        IF TG_OP = 'UPDATE' AND OLD.agent_id IS DISTINCT FROM NEW.agent_id AND OLD.agent_id IS NOT NULL THEN
            PERFORM pg_notify('switchboard_live', 'agent:' || OLD.agent_id);
        END IF;
    ELSIF r.call_id IS NULL THEN
        PERFORM pg_notify('switchboard_live', 'board');
    ELSE
        PERFORM pg_notify('switchboard_live', 'call:' || r.call_id);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite has no NOTIFY: the live process looks at the newest rows instead
    op.execute(NOTIFY)
    for table in TABLES:
        op.execute(f'CREATE TRIGGER {table}_live_notify AFTER INSERT OR UPDATE OR DELETE ON {table} '
                   f'FOR EACH ROW EXECUTE FUNCTION switchboard_live_notify()')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'DROP TRIGGER IF EXISTS {table}_live_notify ON {table}')
    op.execute('DROP FUNCTION IF EXISTS switchboard_live_notify()')
