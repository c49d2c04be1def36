"""Callbacks for real: a caller who asks to be called back keeps their place; a free agent is offered the callback
(who, why, how long ago), accepts, the customer is dialled and both are bridged; unanswered attempts are retried
and then the callback fails. Whole calls on the demo roster (billing: Alice 101 and Bob 102).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from app.calls.callbacks import offer_due_callbacks
from app.jobs.setup import jobs_of
from app.jobs.steps import job_step
from app.models import Call, Callback, Event
from tests.conftest import TEST_DATABASE
from tests.test_console import act, make_browser_agent, sign_in, state
from tests.test_supervisor_pages import signed_in, users  # noqa: F401 - the users fixture
from tests.transfer_helpers import (
    ALICE,
    BOB,
    agent_activity,
    call_row,
    calls_placed,
    connected_call,
    in_room,
    longest_wait_turn,
)

CUSTOMER = "+15557770404"
RETRY = 120


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, outbound_call_allow=("+1555",), callback_attempts=2, callback_retry_seconds=RETRY)


def callback_row(centre) -> Callback:
    with centre.db() as session:
        callback = session.scalar(select(Callback).order_by(Callback.id.desc()))
        session.expunge(callback)
        return callback


def offer_callbacks_now(centre) -> None:
    """The `offer_callbacks` timer's job, once, then Twilio does what it caused."""
    with centre.app.app_context(), job_step(jobs_of(centre.app).context["tools"]) as t:
        offer_due_callbacks(t)
    centre.network.run_pending()


def both_billing_agents_busy(centre):
    """Alice and Bob each on a call; returns their callers."""
    first, alice = connected_call(centre, number="+15557770301")
    second, bob = connected_call(centre, number="+15557770302")
    assert alice.to == ALICE and bob.to == BOB
    return first, second


def asks_for_a_callback(centre, number=CUSTOMER):
    """A billing caller who waits past the queue's limit, asks for a callback and hangs up."""
    caller = centre.network.incoming_call(number, centre.number)
    caller.speak("I need a refund for a double charge")
    centre.network.advance(longest_wait_turn(centre) + 1)
    assert "To have us call you back, press 2" in caller.heard_text
    caller.press("2")
    assert "We will call you back" in caller.heard_text and not caller.live
    return caller


def test_a_callback_is_offered_to_the_first_agent_free_who_accepts_and_the_customer_is_bridged(centre):
    first, _ = both_billing_agents_busy(centre)
    caller = asks_for_a_callback(centre)
    assert call_row(centre, caller.sid).status == "callback_requested"
    assert callback_row(centre).state == "pending"
    centre.network.advance(240)
    first.hangup()  # Alice is free: the callback is hers, at once
    alice = centre.network.last_call(to=ALICE)
    assert alice.live and agent_activity(centre, "101") == "ringing"
    centre.network.answer(alice.sid)
    whisper = alice.heard_text
    assert "Callback to 1 5 5 5 7 7 7 0 4 0 4, for billing, asked 5 minutes ago" in whisper, whisper
    assert "They said: I need a refund for a double charge" in whisper and "Press 1 to call them now" in whisper
    assert callback_row(centre).state == "calling"
    alice.press("1")
    customer = centre.network.last_call(to=CUSTOMER)
    centre.network.answer(customer.sid)
    attempt = call_row(centre, _attempt_sid(centre))
    assert attempt.status == "connected" and in_room(customer, str(attempt.id)) and in_room(alice, str(attempt.id))
    callback = callback_row(centre)
    assert callback.state == "completed" and callback.attempts == 1
    events = centre.timeline(caller.sid)
    for step in ("callback_requested", "callback_offered", "callback_completed"):
        assert step in events, events


def _attempt_sid(centre) -> str:
    with centre.db() as session:
        return session.scalar(select(Call.call_sid).where(Call.callback_id.is_not(None)).order_by(Call.id.desc()))


def test_an_unanswered_callback_is_retried_then_marked_failed(centre):
    first, second = both_billing_agents_busy(centre)
    asks_for_a_callback(centre)
    first.hangup()
    second.hangup()

    def attempt():
        agent = centre.network.calls_to(ALICE)[-1] if centre.network.calls_to(ALICE)[-1].live else \
            centre.network.calls_to(BOB)[-1]
        centre.network.answer(agent.sid)
        agent.press("1")
        customer = centre.network.last_call(to=CUSTOMER)
        centre.network.ring_out(customer.sid, "no-answer")
        assert "The customer did not answer" in agent.heard_text

    attempt()
    callback = callback_row(centre)
    assert callback.state == "pending" and callback.attempts == 1
    rung = len(calls_placed(centre))
    centre.network.advance(RETRY - 30)
    offer_callbacks_now(centre)
    assert len(calls_placed(centre)) == rung  # not due yet: nobody rings
    centre.network.advance(40)
    offer_callbacks_now(centre)  # due, and an agent idle all along: the timer offers it
    attempt()
    callback = callback_row(centre)
    assert callback.state == "failed" and callback.attempts == 2 and callback.end_reason == "not_answered"
    with centre.db() as session:
        names = [e.name for e in session.scalars(select(Event).where(Event.call_id == callback.call_id)
                                                 .order_by(Event.id))]
    assert names.count("callback_offered") == 2 and "callback_attempt_unanswered" in names
    assert names[-1] == "callback_failed"
    centre.network.advance(RETRY * 2)
    offer_callbacks_now(centre)
    assert len(calls_placed(centre)) == rung + 2  # a failed callback rings nobody again


def test_an_agent_who_declines_a_callback_passes_it_to_the_next_without_using_an_attempt(centre):
    first, second = both_billing_agents_busy(centre)
    asks_for_a_callback(centre)
    first.hangup()
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    alice.press("2")
    callback = callback_row(centre)
    assert callback.state == "pending" and callback.attempts == 0
    assert calls_placed(centre)[-1].form["To"] == ALICE  # Alice is not offered it again at once
    second.hangup()  # Bob frees up: it is his
    assert callback_row(centre).state == "calling" and centre.network.last_call(to=BOB).live


def test_a_caller_who_queued_earlier_goes_before_the_callback_and_one_who_queued_later_after(centre):
    first, second = both_billing_agents_busy(centre)
    early = centre.network.incoming_call("+15557770500", centre.number)
    early.speak("my bill is wrong")
    centre.network.advance(5)
    asks_for_a_callback(centre)  # queued 5 s after the early caller
    late = centre.network.incoming_call("+15557770501", centre.number)
    late.speak("my bill is wrong too")
    first.hangup()  # Alice: the early caller
    assert call_row(centre, early.sid).status == "ringing_agent"
    assert callback_row(centre).state == "pending"
    second.hangup()  # Bob: the callback, before the late caller
    assert callback_row(centre).state == "calling"
    assert call_row(centre, late.sid).status == "queued"


def test_a_caller_whose_number_may_not_be_dialled_is_not_offered_a_callback(centre):
    both_billing_agents_busy(centre)
    caller = centre.network.incoming_call("+442079460999", centre.number)
    caller.speak("I need a refund")
    centre.network.advance(longest_wait_turn(centre) + 1)
    assert "To leave a message, press 1" in caller.heard_text
    assert "call you back" not in caller.heard_text
    caller.press("2")  # not a choice they were given: more waiting
    assert caller.live and "callback_not_possible" in centre.timeline(caller.sid)
    with centre.db() as session:
        assert session.scalar(select(Callback.id)) is None


def test_supervisors_see_the_callbacks_by_state_on_a_page_and_in_the_api(centre, users, api_headers):  # noqa: F811
    first, second = both_billing_agents_busy(centre)
    asks_for_a_callback(centre)
    asks_for_a_callback(centre, number="+15557770405")
    first.hangup()  # Alice is offered the first: calling; the second waits in line
    sam = signed_in(centre, "sam")
    page = sam.get("/callbacks")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Calling now" in html and "Waiting in line" in html
    assert html.index("+15557770404") < html.index("+15557770405")
    assert "I need a refund for a double charge" in html
    assert 'href="/callbacks"' in sam.get("/board").get_data(as_text=True)
    alice = signed_in(centre, "alice")
    assert alice.get("/callbacks").status_code == 403
    listed = centre.client.get("/api/callbacks?state=pending", headers=api_headers(centre.app))
    assert listed.status_code == 200
    assert [c["number"] for c in listed.get_json()["callbacks"]] == ["+15557770405"]
    every = centre.client.get("/api/callbacks", headers=api_headers(centre.app, "crm2")).get_json()["callbacks"]
    assert [(c["number"], c["state"]) for c in every] == [("+15557770404", "calling"), ("+15557770405", "pending")]
    assert centre.client.get("/api/callbacks?state=lost", headers=api_headers(centre.app, "crm3")).status_code == 400
    misspelt = centre.client.get("/api/callbacks?stat=pending", headers=api_headers(centre.app, "crm4"))
    assert misspelt.status_code == 400 and "stat" in misspelt.get_json()["error"]


def test_a_browser_agent_is_offered_the_callback_in_the_console_and_accepts_it_there(centre):
    make_browser_agent(centre, "101", "alice")
    first, second = both_billing_agents_busy_in_the_browser(centre)
    asks_for_a_callback(centre)
    alice = sign_in(centre, "alice")
    act(centre, alice, "/console/hangup", leg_id=state(alice)["call"]["leg_id"])  # Alice leaves her call
    offer = state(alice)["offer"]
    assert offer["kind"] == "callback" and offer["caller"] == CUSTOMER
    assert offer["about"].startswith("Callback to 1 5 5 5 7 7 7 0 4 0 4, for billing, asked")
    accepted = act(centre, alice, "/console/accept", leg_id=offer["leg_id"])
    assert accepted.status_code == 200, accepted.get_json()
    customer = centre.network.last_call(to=CUSTOMER)
    centre.network.answer(customer.sid)
    assert state(alice)["call"]["status"] == "connected"
    assert callback_row(centre).state == "completed"


def both_billing_agents_busy_in_the_browser(centre):
    """Alice (in the browser) and Bob each on a call; returns their callers."""
    first = centre.network.incoming_call("+15557770301", centre.number)
    first.speak("my bill")
    alice = sign_in(centre, "alice")
    act(centre, alice, "/console/accept", leg_id=state(alice)["offer"]["leg_id"])
    second, bob = connected_call(centre, number="+15557770302")
    assert bob.to == BOB
    return first, second


@pytest.mark.postgres
@pytest.mark.skipif(TEST_DATABASE != "postgres",
                    reason="SKIP LOCKED is PostgreSQL's; SQLite's write lock makes each step take its turn")
def test_a_callback_another_instance_is_offering_is_skipped_never_waited_for_and_offered_once(centre):
    from sqlalchemy import text

    first, second = both_billing_agents_busy(centre)
    asks_for_a_callback(centre)
    callback_id = callback_row(centre).id
    engine = centre.app.extensions["db_engine"]
    with engine.connect() as other_instance:
        with other_instance.begin():
            other_instance.execute(text("SELECT id FROM callbacks WHERE id = :id FOR UPDATE"), {"id": callback_id})
            first.hangup()  # Alice frees up while the other instance holds the callback
            assert callback_row(centre).state == "pending"  # skipped at once: this step did not wait
    offer_callbacks_now(centre)
    offer_callbacks_now(centre)
    assert callback_row(centre).state == "calling"
    with centre.db() as session:
        attempts = session.scalars(select(Call.id).where(Call.callback_id == callback_id)).all()
    assert len(attempts) == 1
