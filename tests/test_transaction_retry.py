"""A webhook step that PostgreSQL aborts as a deadlock's victim is run once more, and its effects happen once.

The deadlock is real: a second connection takes an agent's row and then the
call's, the other way round from the service's lock order (the call, then
its agents), while the agent's status callback holds the call and waits for
the agent. PostgreSQL aborts the callback's transaction, which began to
wait first (its deadlock check runs first).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import create_engine, select, text

from app.models import Agent, Call, Leg, LegStatus
from app.sandbox.scenarios import ALICE, BOB
from tests.conftest import TEST_DATABASE

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(TEST_DATABASE != "postgres", reason="deadlocks are PostgreSQL's; SQLite serialises writers"),
]


def _events(caplog) -> Counter:
    return Counter(record.msg["event"] for record in caplog.records
                   if isinstance(record.msg, dict) and "event" in record.msg)


def _wait_until_blocked(connection, seconds: float = 10.0) -> None:
    """Until another session of this database waits for a row lock."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        waiting = connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )).scalar()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the webhook never waited for the agent's row")


@pytest.fixture
def other_connection(centre):
    engine = create_engine(centre.app.config["SETTINGS"].database_url)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def test_a_status_callback_that_loses_a_deadlock_is_run_again_and_rings_the_next_agent_once(
        centre, other_connection, caplog):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    with centre.db() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == caller.sid))
        alice_id = session.scalar(select(Agent.id).where(Agent.sip_uri == ALICE))

    # The other transaction holds Alice's row; Alice lets her phone ring out.
    other_connection.execute(text("SELECT id FROM agents WHERE id = :id FOR UPDATE"), {"id": alice_id})
    rang_out = threading.Thread(target=lambda: centre.network.ring_out(alice.sid, "no-answer"))
    rang_out.start()
    _wait_until_blocked(other_connection)
    # Now it wants the call the callback holds: a cycle, which PostgreSQL breaks.
    other_connection.execute(text("SELECT id FROM calls WHERE id = :id FOR UPDATE"), {"id": call_id})
    other_connection.commit()
    rang_out.join(timeout=30)
    assert not rang_out.is_alive()

    no_answer = [d for d in centre.network.sent("status")
                 if "/twilio/agent/status" in d.url and d.params["CallStatus"] == "no-answer"]
    assert [d.status for d in no_answer] == [200]
    logged = _events(caplog)
    assert logged["transaction_retried"] == 1 and logged["webhook_database_failed"] == 0
    retried = next(r for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "transaction_retried")
    assert retried.levelname == "WARNING" and retried.msg["conflict"] == "deadlock"
    # The retried step did its work once: Alice's leg missed, Bob rung once.
    with centre.db() as session:
        legs = session.scalars(select(Leg).where(Leg.call_id == call_id, Leg.agent_id.is_not(None))
                               .order_by(Leg.id)).all()
        assert [(leg.agent.sip_uri, leg.status) for leg in legs] == [(ALICE, LegStatus.NO_ANSWER),
                                                                   (BOB, LegStatus.DIALING)]
        assert session.get(Agent, alice_id).activity == "idle"
        assert session.get(Call, call_id).status == "ringing_agent"
    dialled = [r.form["To"] for r in centre.network.rest_log if r.path.endswith("/Calls.json")]
    assert dialled == [ALICE, BOB]


def _pooled_backend_pids(engine) -> list[int]:
    """The PostgreSQL backends behind the connections waiting in ENGINE's pool."""
    return [entry.dbapi_connection.info.backend_pid for entry in list(engine.pool._pool.queue)
            if entry.dbapi_connection is not None]


def test_a_webhook_that_meets_a_dead_pooled_connection_is_run_again_on_a_new_one(centre, other_connection, caplog):
    # Connections are not pinged at checkout (a round trip on every request): one the server dropped while it
    # waited in the pool (a restart, a proxy's idle limit) fails at its first use, and the step runs again.
    caller = centre.dial()
    pids = _pooled_backend_pids(centre.app.extensions["db_engine"])
    assert pids
    for pid in pids:
        other_connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other_connection.commit()

    caller.press("1")

    assert "Connecting you to" in caller.heard_text
    retried = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "transaction_retried"]
    assert [r["conflict"] for r in retried] == ["connection_lost"]
    assert _events(caplog)["webhook_database_failed"] == 0
    with centre.db() as session:
        assert session.scalar(select(Call.status).where(Call.call_sid == caller.sid)) in ("queued", "ringing_agent")
