"""After-call work: an agent whose call ended is offered nothing for WRAP_UP_SECONDS, or until they (or a
supervisor) say they are ready, with a disposition code and notes on the call's timeline.

Whole calls on the demo roster: billing is Alice (101) and Bob (102).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from app.models import Event
from tests.test_supervisor_pages import csrf_token_from, signed_in, users  # noqa: F401 - the users fixture
from tests.transfer_helpers import ALICE, HOLD_TURN_SECONDS, agent_activity, call_row, connected_call

BILL = "I was charged twice for my internet bill"
WRAP_UP = 30


@pytest.fixture
def wrapping(centre):
    """The centre with 30 s of after-call work; Alice's call just ended, Bob is on a call."""
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], wrap_up_seconds=WRAP_UP)
    first, alice = connected_call(centre, number="+15557770301")
    assert alice.to == ALICE
    connected_call(centre, number="+15557770302")  # Bob
    first.hangup()
    assert agent_activity(centre, "101") == "leaving"  # on the phone, offered the disposition keys
    alice.hangup()
    assert agent_activity(centre, "101") == "wrap_up"
    assert "wrap_up_started" in centre.timeline(first.sid)
    return first


def _queued_caller(centre):
    caller = centre.network.incoming_call("+15557770309", centre.number)
    caller.speak(BILL)
    return caller


def test_wrap_up_delays_the_next_offer_until_its_time_is_over(centre, wrapping):
    caller = _queued_caller(centre)
    assert call_row(centre, caller.sid).status == "queued"  # Alice wraps up, Bob talks
    centre.network.advance(WRAP_UP - 1)  # the caller's hold turns meanwhile offer Alice nothing
    assert call_row(centre, caller.sid).status == "queued" and not centre.network.calls_to(ALICE)[1:]
    centre.network.advance(HOLD_TURN_SECONDS)  # past the wrap-up: the caller's next hold turn frees Alice, rings her
    assert agent_activity(centre, "101") == "ringing"
    assert call_row(centre, caller.sid).status == "ringing_agent"
    assert "wrap_up_ended" in centre.timeline(wrapping.sid)


def test_the_agent_says_ready_in_the_console_with_a_disposition_and_notes(centre, wrapping, users):  # noqa: F811
    caller = _queued_caller(centre)
    alice = signed_in(centre, "alice")
    token = csrf_token_from(alice.get("/console"))
    state = alice.get("/console/state").get_json()["agent"]
    assert state["activity"] == "wrap_up" and 0 < state["wrap_up_seconds_left"] <= WRAP_UP
    bad = alice.post("/console/ready", data={"csrf_token": token, "disposition": "lunch"},
                     headers={"Accept": "application/json"})
    assert bad.status_code == 400 and "disposition must be one of" in bad.get_json()["error"]
    done = alice.post("/console/ready", data={"csrf_token": token, "disposition": "resolved",
                                              "notes": "Refund promised to card 4111 1111 1111 1111"},
                      headers={"Accept": "application/json"})
    assert done.status_code == 200, done.get_data(as_text=True)
    centre.network.run_pending()
    assert call_row(centre, caller.sid).status == "ringing_agent"  # offered at once, not at the next turn
    first_call_id = call_row(centre, wrapping.sid).id
    with centre.db() as session:
        ended = session.scalar(select(Event).where(Event.name == "wrap_up_ended"))
        assert ended.call_id == first_call_id
        assert ended.detail["disposition"] == "resolved" and ended.detail["why"] == "ready"
        assert ended.detail["by"] == "alice"  # who, by username
        assert "4111" not in ended.detail["notes"] and "Refund promised" in ended.detail["notes"]
    again = alice.post("/console/ready", data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert again.status_code == 409


def test_a_supervisor_ends_an_agents_wrap_up_early_from_the_board(centre, wrapping, users):  # noqa: F811
    caller = _queued_caller(centre)
    sam = signed_in(centre, "sam")
    board = sam.get("/board")
    assert "End wrap-up" in board.get_data(as_text=True)
    response = sam.post("/agents/101/end-wrap-up", data={"csrf_token": csrf_token_from(board)})
    assert response.status_code == 302
    centre.network.run_pending()
    assert call_row(centre, caller.sid).status == "ringing_agent" and agent_activity(centre, "101") == "ringing"
    with centre.db() as session:
        ended = session.scalar(select(Event).where(Event.name == "wrap_up_ended"))
        assert ended.detail["why"] == "supervisor" and ended.detail["by"] == "sam"  # who, by name
    assert sam.post("/agents/101/end-wrap-up", data={}).status_code == 400  # no CSRF token
    alice = signed_in(centre, "alice")
    token = csrf_token_from(alice.get("/console"))
    assert alice.post("/agents/101/end-wrap-up", data={"csrf_token": token}).status_code == 403  # agents may not


def test_without_wrap_up_an_agent_is_idle_the_moment_the_call_ends(centre):
    first, alice = connected_call(centre)
    first.hangup()
    assert agent_activity(centre, "101") == "idle"


def test_a_queues_own_wrap_up_time_applies_to_its_calls(centre):
    cli = centre.app.test_cli_runner()
    saved = cli.invoke(args=["queues", "add", "--name", "billing", "--dtmf-code", "1", "--default",
                             "--hints", "bill,billing,invoice,charge", "--wrap-up-seconds", "20"])
    assert saved.exit_code == 0, saved.output
    first, alice = connected_call(centre)  # WRAP_UP_SECONDS is 0: billing's own 20 s apply
    first.hangup()
    alice.hangup()  # without a disposition key
    assert agent_activity(centre, "101") == "wrap_up"
    with centre.db() as session:
        started = session.scalar(select(Event).where(Event.name == "wrap_up_started"))
        assert started.detail["seconds"] == 20


def test_an_agent_on_a_phone_ends_their_wrap_up_with_a_disposition_key(centre):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], wrap_up_seconds=WRAP_UP)
    first, alice = connected_call(centre)
    first.hangup()
    heard = alice.heard_text
    assert "The caller hung up. To end your after-call work, press 1 for resolved, 2 for follow-up" in heard, heard
    alice.press("2")
    assert "Recorded: follow-up. You are ready for your next call." in alice.heard_text and not alice.live
    assert agent_activity(centre, "101") == "idle"  # once Twilio reported her leg over
    with centre.db() as session:
        ended = session.scalar(select(Event).where(Event.name == "wrap_up_ended"))
        assert ended.detail["disposition"] == "follow-up" and ended.detail["by"] == "phone:101"
    caller = _queued_caller(centre)
    assert call_row(centre, caller.sid).status == "ringing_agent"  # offered at once: no wrap-up left


def test_an_agent_who_hangs_up_without_a_key_stays_in_wrap_up_for_its_time(centre):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], wrap_up_seconds=WRAP_UP)
    first, alice = connected_call(centre)
    first.hangup()
    alice.press("9")  # no disposition has that key
    assert "Your after-call work goes on" in alice.heard_text and not alice.live
    assert agent_activity(centre, "101") == "wrap_up"


def test_ready_said_after_a_step_already_rang_the_agent_leaves_them_ringing(centre, wrapping):
    """The agent's Ready (or the board's button) reads them without their row's lock; a step that meanwhile
    ended the wrap-up and rang them for a caller comes first: Ready finds them no longer in wrap-up and writes
    nothing (idle over ringing would offer them a second caller while the first rings)."""
    from sqlalchemy import update

    from app.jobs.steps import job_step
    from app.models import Activity, Agent
    from app.primitives.availability import end_wrap_up

    tools = centre.app.extensions["jobs"].context["tools"]
    with centre.app.app_context(), job_step(tools) as t:
        alice = t.session.scalar(select(Agent).where(Agent.extension == "101"))
        assert alice.activity == Activity.WRAP_UP  # as Ready read her
        t.session.commit()
        with centre.db() as session:  # a queue's hold turn: her wrap-up ended, and she is rung for a caller
            session.execute(update(Agent).where(Agent.id == alice.id)
                            .values(activity=Activity.RINGING, wrap_up_until=None))
        assert end_wrap_up(t, alice, "ready") is False
        assert alice.id not in t.freed_agent_ids
    assert agent_activity(centre, "101") == "ringing"


def test_the_reconciler_leaves_an_agent_in_wrap_up_alone(centre, wrapping):
    """After-call work has no live leg by design: the reconciler's pass for agents stranded busy passes over it
    (it used to write agent_freed_by_reconciler on every pass and move them down the longest-idle order)."""
    from app.calls.reconcile import free_stranded_agents
    from app.jobs.steps import job_step

    tools = centre.app.extensions["jobs"].context["tools"]
    with centre.app.app_context(), job_step(tools) as t:
        assert free_stranded_agents(t) == []
    assert agent_activity(centre, "101") == "wrap_up"
    assert "agent_freed_by_reconciler" not in centre.timeline(wrapping.sid)
