"""The change signal on PostgreSQL: a committed step tells the live process what it changed, through the ORM or
not; a rolled-back one tells nobody."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.events import record_event
from app.live.changes import libpq_url
from app.live.signal import ANYTHING_ELSE, CHANNEL
from app.models import Agent, Call, Presence
from app.states.agents import set_presence
from tests.conftest import TEST_DATABASE
from tests.transfer_helpers import connected_call

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(TEST_DATABASE != "postgres", reason="SQLite has no NOTIFY: the live process looks instead"),
]


@pytest.fixture
def listening(centre):
    """A connection LISTENing on the channel; yields a function answering the notifications heard so far."""
    import psycopg

    connection = psycopg.connect(libpq_url(centre.app.config["SETTINGS"].database_url), autocommit=True)
    connection.execute(f"LISTEN {CHANNEL}")

    def heard() -> list[str]:
        return [notification.payload for notification in connection.notifies(timeout=0.3)]

    yield heard
    connection.close()


def test_a_webhook_step_names_the_call_and_the_agent_it_changed(centre, listening):
    caller, _alice = connected_call(centre)
    heard = listening()
    with centre.db() as session:
        alice_id = session.scalar(select(Agent.id).where(Agent.extension == "101"))
        call_id = session.scalar(select(Call.id).where(Call.call_sid == caller.sid))
    topics = set(" ".join(heard).split())
    assert {f"agent:{alice_id}", f"call:{call_id}"} <= topics


def test_a_rolled_back_step_tells_nobody(centre, listening):
    make_session = centre.app.extensions["db_sessionmaker"]
    listening()  # what loading the roster said
    with make_session() as session:
        agent = session.scalar(select(Agent).where(Agent.extension == "101"))
        set_presence(session, agent, Presence.AWAY)
        session.flush()
        session.rollback()
    assert listening() == []
    with make_session() as session:
        agent = session.scalar(select(Agent).where(Agent.extension == "101"))
        set_presence(session, agent, Presence.AWAY)
        session.commit()
        assert listening() == [f"agent:{agent.id}"]


def test_a_statement_outside_the_orm_is_announced_too(centre, listening):
    caller, _alice = connected_call(centre)
    make_session = centre.app.extensions["db_sessionmaker"]
    listening()
    with make_session() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == caller.sid))
        session.execute(update(Call).where(Call.id == call_id).values(ivr_reason="billing"))
        session.commit()
    assert listening() == [f"call:{call_id}"]


def test_an_event_of_no_call_touches_the_board(centre, listening):
    make_session = centre.app.extensions["db_sessionmaker"]
    listening()
    with make_session() as session:
        record_event(session, None, "roster_loaded")
        session.commit()
    assert listening() == [ANYTHING_ELSE]
