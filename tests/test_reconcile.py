"""The reconciler: status callbacks lost to a database outage are caught up from Twilio's REST API.

The outage is real (tests/test_database_outage.py `database_down`): the
status callbacks Twilio sends meanwhile are answered 503 and, as Twilio
does not retry them, lost. The reconciler then lists the live calls from the
sandbox's Twilio REST API (GET Calls.json?Status=...), asks about each leg
missing from that list on its own (GET Calls/{sid}.json), and fixes what
Twilio contradicts.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from sqlalchemy import select

from app.jobs.setup import reconciler_of
from app.models import FINAL_LEG_STATUSES, Agent, Call, Leg
from tests.conftest import TEST_DATABASE
from tests.test_database_outage import database_down
from tests.transfer_helpers import ALICE, agent_activity, call_row, connected_call


def _reconcile(centre):
    outcome = reconciler_of(centre.app).run_once()
    centre.network.run_pending()
    return outcome


def _asked(centre) -> list[str]:
    """The calls asked about one by one (GET Calls/{sid}.json), as their file names."""
    return [r.path.rsplit("/", 1)[1] for r in centre.network.rest_log
            if r.method == "GET" and r.path.rsplit("/", 2)[1] == "Calls"]


def _listed(centre, status: str | None = None) -> int:
    """How many pages of live calls were asked for (GET Calls.json), of one STATUS or all."""
    return sum(1 for r in centre.network.rest_log if r.method == "GET" and r.path.endswith("/Calls.json")
               and status in (None, r.query.get("Status")))


def test_a_caller_who_hung_up_during_an_outage_ends_the_call_once_the_reconciler_asks_twilio(centre):
    caller, alice = connected_call(centre)
    with database_down(centre):
        caller.hangup()  # the status callback meets the outage: answered 503, never retried
    assert call_row(centre, caller.sid).status == "connected" and agent_activity(centre, "101") == "on_call"

    outcome = _reconcile(centre)

    # Alice's leg is on Twilio's list of live calls; only the caller's, missing from it, is asked about.
    assert _asked(centre) == [f"{caller.sid}.json"]
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

    def passes() -> int:  # each pass lists the calls in progress once
        return _listed(centre, "in-progress")

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


def _callers_in_the_ivr(centre, count: int) -> list:
    """COUNT callers on the line, each listening to the IVR: COUNT live caller legs."""
    callers = [centre.dial(f"+1555123{index:04d}") for index in range(count)]
    assert all(caller.status == "in-progress" for caller in callers)
    return callers


def _live_legs(centre) -> int:
    with centre.db() as session:
        return len(session.scalars(select(Leg).where(Leg.status.not_in(FINAL_LEG_STATUSES))).all())


def test_a_pass_over_many_live_calls_lists_them_page_by_page_and_asks_about_none_on_its_own(centre, monkeypatch):
    callers = _callers_in_the_ivr(centre, 5)
    monkeypatch.setattr(centre.app.extensions["gateways"].twilio, "list_page_size", 2)
    centre.network.rest_log.clear()

    outcome = _reconcile(centre)

    assert outcome.asked == 5 and outcome.asked_one_by_one == 0 and outcome.fixed == []
    # ceil(5 / 2) pages of calls in progress, and one (empty) page of each other live status.
    assert (_listed(centre, "in-progress"), _listed(centre, "queued"), _listed(centre, "ringing")) == (3, 1, 1)
    assert _asked(centre) == []
    assert all(caller.live for caller in callers) and _live_legs(centre) == 5


def test_a_call_that_ended_while_its_callback_was_lost_is_fixed_with_one_request_of_its_own(centre, monkeypatch):
    callers = _callers_in_the_ivr(centre, 4)
    monkeypatch.setattr(centre.app.extensions["gateways"].twilio, "list_page_size", 2)
    with database_down(centre):
        callers[2].hangup()
    centre.network.rest_log.clear()

    outcome = _reconcile(centre)

    assert _asked(centre) == [f"{callers[2].sid}.json"] and outcome.asked_one_by_one == 1
    assert outcome.fixed == [3] and outcome.asked == 4
    assert call_row(centre, callers[2].sid).status == "abandoned"  # hung up in the IVR
    assert "leg_reconciled" in centre.timeline(callers[2].sid)
    assert _live_legs(centre) == 3


def test_a_pass_out_of_time_stops_asking_and_the_next_pass_asks_the_rest(centre, caplog):
    callers = _callers_in_the_ivr(centre, 4)
    with database_down(centre):
        for caller in callers[:3]:
            caller.hangup()
    pass_seconds = centre.app.config["SETTINGS"].reconcile_pass_seconds
    # Twilio takes longer than the whole pass may last to answer about the first leg that ended.
    centre.network.while_answering_next(f"Calls/{callers[0].sid}.json",
                                        lambda: centre.network.clock.advance(pass_seconds + 1))
    centre.network.rest_log.clear()

    first = _reconcile(centre)

    assert _asked(centre) == [f"{callers[0].sid}.json"]
    assert first.fixed == [1] and first.not_reached == [2, 3]
    cut_short = [r for r in caplog.records if "reconcile_pass_cut_short" in r.getMessage()]
    assert len(cut_short) == 1 and "'left': 2" in cut_short[0].getMessage()
    assert call_row(centre, callers[1].sid).status == "ivr"
    centre.network.rest_log.clear()

    second = _reconcile(centre)

    assert _asked(centre) == [f"{callers[1].sid}.json", f"{callers[2].sid}.json"]
    assert second.fixed == [2, 3] and second.not_reached == []
    assert [call_row(centre, caller.sid).status for caller in callers[:3]] == ["abandoned"] * 3
    assert callers[3].live and call_row(centre, callers[3].sid).ended_at is None  # its IVR timed out meanwhile


def test_a_call_arriving_after_the_legs_were_read_is_not_asked_about_nor_ended(centre):
    earlier = _callers_in_the_ivr(centre, 1)[0]
    arrived = []
    # A caller dials in while Twilio answers the first list: on no list, and read by the pass never.
    centre.network.while_answering_next("Calls.json", lambda: arrived.append(centre.dial("+15551239999")))
    centre.network.rest_log.clear()

    outcome = _reconcile(centre)

    assert len(arrived) == 1 and arrived[0].live
    assert outcome.asked == 1 and outcome.fixed == [] and _asked(centre) == []
    assert call_row(centre, arrived[0].sid).status == "ivr" and earlier.live
    assert "leg_reconciled" not in centre.timeline(arrived[0].sid)


def test_twilio_failing_to_list_the_live_calls_leaves_every_leg_for_the_next_pass(centre):
    caller, alice = connected_call(centre)
    with database_down(centre):
        caller.hangup()
    centre.network.fail_next("Calls.json", method="GET", status=503, code=20503, message="Service Unavailable")
    outcome = _reconcile(centre)
    assert outcome.unanswered == [1, 2] and outcome.fixed == [] and outcome.asked == 0
    assert _reconcile(centre).fixed == [1]
    assert call_row(centre, caller.sid).status == "completed"
