"""Reserving an agent (idle -> ringing) is one statement: held if no other transaction holds them, taken by a
compare-and-set, and read back as the session's Agent (states.agents.take_if_idle)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text

from app.models import Activity, Agent, Presence
from app.primitives.availability import reserve_agent
from app.sandbox.scenarios import ALICE, BOB
from app.states.agents import take_if_idle
from tests.conftest import TEST_DATABASE


def _agent_id(centre, sip_uri: str) -> int:
    with centre.db() as session:
        return session.scalar(select(Agent.id).where(Agent.sip_uri == sip_uri))


def test_a_reservation_refreshes_the_loaded_agent_and_is_won_once(centre):
    alice_id = _agent_id(centre, ALICE)
    with centre.db() as session:
        alice = session.get(Agent, alice_id)
        assert (alice.presence, alice.activity) == (Presence.AVAILABLE, Activity.IDLE)
        taken = take_if_idle(session, alice_id)
        # The session's own Agent, refreshed by the statement's RETURNING: nothing read again.
        assert taken is alice and alice.activity == Activity.RINGING and alice.activity_changed_at is not None
        assert take_if_idle(session, alice_id) is None  # ringing already: the compare-and-set is not won again
    with centre.db() as session:
        assert session.get(Agent, alice_id).activity == Activity.RINGING


def test_an_agent_who_is_away_is_never_reserved(centre):
    alice_id = _agent_id(centre, ALICE)
    with centre.db() as session:
        session.get(Agent, alice_id).presence = Presence.AWAY
    with centre.db() as session:
        assert take_if_idle(session, alice_id) is None
        assert session.get(Agent, alice_id).activity == Activity.IDLE


@pytest.mark.postgres
@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="row locks are PostgreSQL's; SQLite serialises writers")
def test_an_agent_another_transaction_holds_is_passed_over_without_waiting(centre):
    alice_id, bob_id = _agent_id(centre, ALICE), _agent_id(centre, BOB)
    engine = create_engine(centre.app.config["SETTINGS"].database_url)
    try:
        with engine.connect() as other_instance:
            other_instance.execute(text("SELECT id FROM agents WHERE id = :id FOR UPDATE"), {"id": alice_id})
            with centre.db() as session:
                # A statement that waited for the row would fail here instead of hanging the test.
                session.execute(text("SET LOCAL lock_timeout = '5s'"))
                assert take_if_idle(session, alice_id) is None
                skill = session.get(Agent, bob_id).skills[0]
                assert skill in session.get(Agent, alice_id).skills
                # The longest-idle candidate is held: the next one is reserved instead.
                assert reserve_agent(session, agent_id=alice_id) is None
                taken = reserve_agent(session, skill=skill)
                assert taken is not None and taken.id != alice_id
                session.rollback()
            other_instance.rollback()
        with centre.db() as session:
            assert take_if_idle(session, alice_id).activity == Activity.RINGING  # free again: taken
    finally:
        engine.dispose()


def test_an_agent_reserved_after_the_roster_was_read_is_not_removed(centre):
    """`flask agents remove` refuses an agent on a call. It reads the agent again under their row's lock, so a
    reservation that came after the agent was first read (here, the session's copy is older than the database)
    is seen, and no ringing leg is left without its agent."""
    from sqlalchemy import update

    from app.agents.service import RosterError, find_agent, remove_agent

    session = centre.app.extensions["db_sessionmaker"]()  # keeps what it read past a commit, as the CLI's does
    try:
        alice = find_agent(session, "101")  # held: the session's copy stays as read
        assert alice.activity == Activity.IDLE
        session.commit()
        with centre.db() as other:  # a step reserves Alice meanwhile
            other.execute(update(Agent).where(Agent.extension == "101").values(activity=Activity.RINGING))
        with pytest.raises(RosterError, match="ringing"):
            remove_agent(session, "101")
        session.rollback()
    finally:
        session.close()
    assert _agent_id(centre, ALICE) is not None
