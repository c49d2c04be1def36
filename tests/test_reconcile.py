"""The reconciler: status callbacks lost to a database outage are caught up from Twilio's REST API.

The outage is real (tests/test_database_outage.py `database_down`): the
status callbacks Twilio sends meanwhile are answered 503 and, as Twilio
does not retry them, lost. The reconciler then asks the sandbox's Twilio
REST API (GET Calls/{sid}.json) and fixes what it contradicts.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from sqlalchemy import select

from app.jobs.setup import reconciler_of
from app.models import Agent, Call, Leg
from tests.conftest import TEST_DATABASE
from tests.test_database_outage import database_down
from tests.transfer_helpers import ALICE, agent_activity, call_row, connected_call


def _reconcile(centre):
    outcome = reconciler_of(centre.app).run_once()
    centre.network.run_pending()
    return outcome


def _asked(centre) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in centre.network.rest_log if r.method == "GET"]


def test_a_caller_who_hung_up_during_an_outage_ends_the_call_once_the_reconciler_asks_twilio(centre):
    caller, alice = connected_call(centre)
    with database_down(centre):
        caller.hangup()  # the status callback meets the outage: answered 503, never retried
    assert call_row(centre, caller.sid).status == "connected" and agent_activity(centre, "101") == "on_call"

    outcome = _reconcile(centre)

    assert f"{caller.sid}.json" in _asked(centre) and f"{alice.sid}.json" in _asked(centre)
    assert outcome.fixed == [1]  # the caller's leg
    call = call_row(centre, caller.sid)
    assert call.status == "completed" and call.ended_at is not None
    timeline = centre.timeline(caller.sid)
    assert timeline.index("leg_reconciled") < timeline.index("call_ended")
    # Alice is told, as the callback would have done, and is free once her leg ends.
    assert "caller has hung up" in alice.heard_text.lower() or not alice.live
    assert agent_activity(centre, "101") == "idle"


def test_an_agent_who_hung_up_during_an_outage_is_caught_up_and_the_caller_thanked(centre):
    caller, alice = connected_call(centre)
    with database_down(centre):
        alice.hangup()
    outcome = _reconcile(centre)
    assert outcome.fixed == [2]
    assert "agent_left" in centre.timeline(caller.sid)
    assert "The agent has ended the call" in caller.heard_text and not caller.live
    assert call_row(centre, caller.sid).status == "completed"
    assert agent_activity(centre, "101") == "idle"


def test_a_pass_over_calls_that_are_as_twilio_says_changes_nothing(centre):
    caller, alice = connected_call(centre)
    before = centre.timeline(caller.sid)
    outcome = _reconcile(centre)
    assert outcome.asked == 2 and outcome.fixed == [] and outcome.unanswered == []
    assert centre.timeline(caller.sid) == before
    assert call_row(centre, caller.sid).status == "connected"


def test_twilio_failing_to_answer_leaves_the_leg_alone(centre):
    caller, alice = connected_call(centre)
    with database_down(centre):
        caller.hangup()
    centre.network.fail_next(f"Calls/{caller.sid}.json", method="GET", status=503, code=20503,
                             message="Service Unavailable")
    outcome = _reconcile(centre)
    assert outcome.unanswered == [1] and outcome.fixed == []
    assert call_row(centre, caller.sid).status == "connected"
    assert _reconcile(centre).fixed == [1]  # the next pass catches up
    assert call_row(centre, caller.sid).status == "completed"


def test_an_agent_left_busy_with_no_live_leg_is_freed_with_an_event(centre):
    caller, alice = connected_call(centre)
    caller.hangup()
    with centre.db() as session:
        session.scalar(select(Agent).where(Agent.extension == "101")).activity = "on_call"
    outcome = _reconcile(centre)
    assert outcome.agents_freed == ["101"]
    assert agent_activity(centre, "101") == "idle"
    assert "agent_freed_by_reconciler" in centre.timeline(caller.sid)


def test_a_failed_hang_up_keeps_the_agent_until_twilio_confirms_the_leg_is_over(centre):
    caller = centre.dial()
    caller.press("1")  # Alice's phone rings
    alice = centre.agent_phone(ALICE)
    for _ in range(2):  # the cancel and its retry both fail
        centre.network.fail_next(f"Calls/{alice.sid}.json", status=500, code=20500)
    caller.hangup()
    assert "leg_hangup_failed" in centre.timeline(caller.sid)
    assert alice.live  # Twilio never heard the cancel
    assert agent_activity(centre, "101") == "leaving"  # not offered the next caller meanwhile
    with centre.db() as session:
        session.scalar(select(Agent).where(Agent.extension == "102")).presence = "offline"  # Bob
    second = centre.dial("+15551230002")
    second.press("1")
    assert [leg.to for leg in centre.ringing()].count(alice.to) == 1  # only the old ring

    # The reconciler finds the leg still ringing at Twilio and ends it again.
    outcome = _reconcile(centre)
    assert 2 in outcome.fixed and "leg_still_live_hung_up_again" in centre.timeline(caller.sid)
    assert alice.status == "canceled"
    # Twilio's status callback for the cancelled leg frees Alice.
    assert "agent_free_after_leg_over" in centre.timeline(caller.sid)
    # Free again, Alice is offered the caller who waited meanwhile.
    with centre.db() as session:
        alice_id = session.scalar(select(Agent.id).where(Agent.extension == "101"))
        legs = session.scalars(select(Leg).join(Call).where(Call.call_sid == second.sid)).all()
    assert [leg.status for leg in legs if leg.agent_id == alice_id] == ["dialing"]
    assert agent_activity(centre, "101") == "ringing"


def test_an_agent_twilio_would_not_move_or_hang_up_is_taken_out_of_the_room_and_freed_when_twilio_confirms(centre):
    caller, alice = connected_call(centre)
    # The caller hangs up: Alice's move to "the caller has hung up" fails,
    # with its retry, and so does the hang-up it falls back on.
    for _ in range(4):
        centre.network.fail_next(f"Calls/{alice.sid}.json", status=500, code=20500)
    caller.hangup()
    timeline = centre.timeline(caller.sid)
    failed = timeline.index("leg_hangup_failed")
    assert timeline[failed:failed + 2] == ["leg_hangup_failed", "leg_taken_out_of_rooms"]
    # LiveKit dropped Alice's SIP participant; her <Dial> ended and its
    # action found her leg over: she is told goodbye, and Twilio's completed
    # callback is what frees her.
    assert not alice.live
    assert timeline.index("leg_taken_out_of_rooms") < timeline.index("agent_free_after_leg_over")
    assert agent_activity(centre, "101") == "idle"


def test_the_reconcile_command_reports_what_it_did(centre, tmp_path):
    caller, _alice = connected_call(centre)
    outcome = reconciler_of(centre.app).run_once()
    assert outcome.asked == 2
    runner = centre.app.test_cli_runner()
    result = runner.invoke(args=["calls", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "asked Twilio about 2 legs; fixed 0" in result.output


def test_the_reconciler_needs_twilio_configured(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "APP_ENV": "development"}
    script = ("from app import create_app, close_app; from app.jobs.setup import reconciler_of; "
              "app = create_app(); print(reconciler_of(app).run_once().asked); close_app(app)")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "0"
    assert "reconcile_skipped" in done.stdout + done.stderr


@pytest.mark.postgres
@pytest.mark.skipif(TEST_DATABASE != "postgres",
                    reason="the advisory lock is PostgreSQL's; SQLite's write lock makes each step take its turn")
def test_on_postgresql_one_pass_runs_at_a_time(centre):
    from sqlalchemy import text

    from app.jobs.reconciler import ADVISORY_KEY

    engine = centre.app.extensions["db_engine"]
    caller, _alice = connected_call(centre)
    with engine.connect() as other_worker:
        other_worker.scalar(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        assert reconciler_of(centre.app).run_once().asked == 0  # another worker's pass is running
        other_worker.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    assert reconciler_of(centre.app).run_once().asked == 2


def test_the_reconciler_runs_as_a_job_on_its_timer_and_soon_after_an_outage(centre):
    """The `reconcile` job: its timer fires it (every second here), and a webhook that met a database outage
    queues one a few seconds on (reconcile_soon)."""
    import time

    from app.jobs.setup import jobs_of, reconcile_soon, start_jobs

    caller, _alice = connected_call(centre)

    def passes() -> int:  # each pass asks Twilio about the caller's leg once
        return _asked(centre).count(f"{caller.sid}.json")

    def until(count: int) -> None:
        give_up = time.monotonic() + 10
        while passes() < count and time.monotonic() < give_up:
            time.sleep(0.01)

    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], reconcile_interval_seconds=1)
    start_jobs(centre.app)
    until(2)
    assert passes() >= 2  # once a second, on the timer
    jobs_of(centre.app).stop(10)
    before = passes()
    reconcile_soon(centre.app)  # a webhook met the database failing: a pass is queued for a few seconds on
    runtime = jobs_of(centre.app)
    give_up, jobs = time.monotonic() + 10, []
    while not jobs and time.monotonic() < give_up:  # queued without waiting: look until it is there
        jobs = runtime.call(runtime.app.job_manager.list_jobs_async(task="reconcile", status="todo"))
    assert len(jobs) == 1 and jobs[0].scheduled_at is not None
    assert passes() == before
