"""Locking a call after a step's commit, for the offers that follow it (primitives.legs.lock_call_unless_held).

A step's session keeps what it loaded past its commit (objects keep their
values: expire_on_commit is off). The offers that follow a step ring freed
agents for waiting transfers and callers of other calls; they must see those
calls as other steps left them, and never wait on a call whose own step holds
it (that step offers it itself).
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text, update

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


@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="row locks are PostgreSQL's; SQLite serialises writers")
def test_a_call_another_step_holds_is_passed_over_at_once(centre):
    caller, _alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id
    tools = centre.app.extensions["jobs"].context["tools"]
    engine = create_engine(centre.app.config["SETTINGS"].database_url)
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT id FROM calls WHERE id = :id FOR UPDATE"), {"id": call_id})
            with centre.app.app_context(), job_step(tools) as t:
                t.session.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail, not hang
                assert lock_call_unless_held(t, call_id) is None
            holder.rollback()
    finally:
        engine.dispose()
