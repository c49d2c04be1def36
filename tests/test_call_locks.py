"""Locking a call after a step's commit, for the offers that follow it (primitives.legs.lock_call_unless_held),
and a step that writes no agent locking its call without them (lock_call(agents=False)).

A step's session keeps what it loaded past its commit (objects keep their
values: expire_on_commit is off). The offers that follow a step ring freed
agents for waiting transfers and callers of other calls; they must see those
calls as other steps left them, and never wait on a call whose own step holds
it (that step offers it itself).
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.exc import OperationalError

from app.jobs.steps import job_step
from app.models import Leg, LegRole
from app.primitives.legs import lock_call, lock_call_unless_held
from tests.conftest import TEST_DATABASE
from tests.transfer_helpers import call_row, connected_call


def test_a_call_locked_after_the_commit_is_read_as_other_steps_left_it(centre):
    caller, _alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id
    tools = centre.app.extensions["jobs"].context["tools"]
    with centre.app.app_context(), job_step(tools) as t:
        call = lock_call(t, call_id)
        (agent_leg,) = [leg for leg in call.legs if leg.role == LegRole.AGENT]
        t.session.commit()  # as a step commits before its offers; the session keeps the leg as it was
        with centre.db() as session:  # another step ends the leg meanwhile
            session.execute(update(Leg).where(Leg.id == agent_leg.id).values(status="ended", end_reason="test"))
        again = lock_call_unless_held(t, call_id)
        assert again is call and agent_leg.status == "ended" and agent_leg.end_reason == "test"
        t.session.rollback()


@contextmanager
def _another_step_holding(centre, table: str, row_id: int):
    """A connection of its own holding TABLE's row ROW_ID (FOR UPDATE), as another step would, until the end."""
    engine = create_engine(centre.app.config["SETTINGS"].database_url)
    try:
        with engine.connect() as holder:
            holder.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})
            yield
            holder.rollback()
    finally:
        engine.dispose()


@contextmanager
def _step(centre, lock_timeout: str):
    """A job's step on the centre's database, whose waits for a row lock fail after LOCK_TIMEOUT, never hang."""
    with centre.app.app_context(), job_step(centre.app.extensions["jobs"].context["tools"]) as t:
        t.session.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
        yield t


@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="row locks are PostgreSQL's; SQLite serialises writers")
def test_a_call_another_step_holds_is_passed_over_at_once(centre):
    caller, _alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id
    with _another_step_holding(centre, "calls", call_id), _step(centre, "2s") as t:
        assert lock_call_unless_held(t, call_id) is None


@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="row locks are PostgreSQL's; SQLite serialises writers")
def test_a_step_that_writes_no_agent_neither_locks_nor_waits_for_their_rows(centre):
    # A transcript chunk (app/voice/caller.py) locks its call with agents=False: an agent's row another step
    # holds (Alice being set away, say) does not hold up the words being stored.
    caller, _alice = connected_call(centre)
    call = call_row(centre, caller.sid)
    with centre.db() as session:
        agent_id = session.scalar(select(Leg.agent_id).where(Leg.call_id == call.id, Leg.role == LegRole.AGENT))
    with _another_step_holding(centre, "agents", agent_id):
        with _step(centre, "2s") as t:
            locked = lock_call(t, call.id, agents=False)
            assert locked is not None and any(leg.agent_id == agent_id for leg in locked.legs)
            t.session.rollback()
        with pytest.raises(OperationalError, match="lock timeout"), _step(centre, "300ms") as t:
            lock_call(t, call.id)  # every other step locks the call's live agents, and waits for them
