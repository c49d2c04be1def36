"""Outbound calls: an agent dials a customer from the console or the API; the agent rings first, then the customer,
and both meet in the call's room. Whole calls on the stand-ins (demo roster: Alice 101 and Bob 102, SIP phones).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from app.models import Agent, Call, Event, Leg, LegRole
from tests.test_console import act, make_browser_agent, sign_in, state
from tests.transfer_helpers import ALICE, accepts, agent_activity, calls_placed, in_room

CUSTOMER = "+15557770123"
ABROAD = "+442079460123"


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, outbound_call_allow=("+1555",))


@pytest.fixture
def api(centre, api_headers) -> dict:
    """The Authorization header of one API token."""
    return api_headers(centre.app)


def place(centre, api, **body):
    response = centre.client.post("/api/calls", json=body, headers=api)
    centre.network.run_pending()
    return response


def outbound_call(centre) -> Call:
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.direction == "outbound").order_by(Call.id.desc()))
        session.expunge(call)
        return call


def timeline(centre, call_sid: str) -> list[str]:
    return centre.timeline(call_sid)


def test_the_api_rings_the_agent_first_then_the_customer_and_bridges_both(centre, api):
    response = place(centre, api, to="+1 555 777 0123", agent="101", reason="Your refund is ready")
    assert response.status_code == 201, response.get_json()
    placed = response.get_json()
    assert placed["direction"] == "outbound" and placed["status"] == "dialing"
    assert placed["to_number"] == CUSTOMER and placed["call_sid"].startswith("OB")
    # The agent's phone rings first; nothing rings the customer yet.
    assert [r.form["To"] for r in calls_placed(centre)] == [ALICE]
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    assert "Outbound call to 1 5 5 5 7 7 7 0 1 2 3" in alice.heard_text
    assert "Your refund is ready" in alice.heard_text and "Press 1 to call them now" in alice.heard_text
    assert agent_activity(centre, "101") == "ringing"
    alice.press("1")
    call = outbound_call(centre)
    suffix = str(call.id)
    # In the room's <Dial>, which rings (LiveKit answers once another party is there): the agent hears ringing.
    assert alice.waiting_on.tag == "Dial" and not alice.bridged
    dialled = calls_placed(centre)[-1].form
    # From our number, to the customer, only once the agent took the call.
    assert dialled["To"] == CUSTOMER and dialled["From"] == centre.number
    customer = centre.network.last_call(to=CUSTOMER)
    centre.network.answer(customer.sid)
    assert in_room(customer, suffix) and in_room(alice, suffix)
    call = outbound_call(centre)
    assert call.status == "connected" and call.answered_at is not None
    assert agent_activity(centre, "101") == "on_call"

    customer.hangup()
    call = outbound_call(centre)
    assert call.status == "completed"
    events = timeline(centre, call.call_sid)
    for step in ("outbound_call_placed", "agent_ringing", "agent_answered", "customer_dialling",
                 "customer_answered", "call_ended"):
        assert step in events, events
    read = centre.client.get(f"/api/calls/{call.call_sid}", headers=api)
    assert read.status_code == 200 and read.get_json()["status"] == "completed"
    assert read.get_json()["agent"] == "101" and read.get_json()["reason"] == "Your refund is ready"


def test_a_number_off_the_allow_list_is_refused_in_words_and_rings_nothing(centre, api):
    refused = place(centre, api, to=ABROAD, agent="101")
    assert refused.status_code == 409
    assert refused.get_json()["error"] == f"{ABROAD} is not in a country or prefix outbound calls may call"
    malformed = place(centre, api, to="call me maybe", agent="101")
    assert malformed.status_code == 400 and "is not an E.164 number" in malformed.get_json()["error"]
    assert calls_placed(centre) == []
    assert agent_activity(centre, "101") == "idle"
    with centre.db() as session:
        assert session.scalar(select(Call.id)) is None


def test_with_no_allow_list_outbound_calls_are_off(centre, api):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], outbound_call_allow=())
    refused = place(centre, api, to=CUSTOMER, agent="101")
    assert refused.status_code == 409 and "outbound calls are not enabled" in refused.get_json()["error"]
    assert calls_placed(centre) == []


def test_a_busy_or_away_agent_is_refused_and_an_unknown_one_is_not_found(centre, api):
    assert place(centre, api, to=CUSTOMER, agent="202").get_json()["error"].endswith(
        "is away: only an available agent places calls")
    assert place(centre, api, to=CUSTOMER, agent="999").status_code == 404
    assert place(centre, api, to=CUSTOMER, agent="101").status_code == 201
    again = place(centre, api, to=CUSTOMER, agent="101")
    assert again.status_code == 409 and "is busy (ringing)" in again.get_json()["error"]
    assert len(calls_placed(centre)) == 1


def test_a_customer_who_does_not_answer_ends_the_call_unanswered_and_frees_the_agent(centre, api):
    place(centre, api, to=CUSTOMER, agent="101")
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    customer = centre.network.last_call(to=CUSTOMER)
    centre.network.ring_out(customer.sid, "busy")
    call = outbound_call(centre)
    assert call.status == "unanswered"
    assert "The customer did not answer" in alice.heard_text and not alice.live
    assert agent_activity(centre, "101") == "idle"
    assert "customer_unanswered" in timeline(centre, call.call_sid)
    with centre.db() as session:
        legs = session.scalars(select(Leg).where(Leg.call_id == call.id).order_by(Leg.id)).all()
        assert [(leg.role, leg.status) for leg in legs] == [("agent", "ended"), ("caller", "busy")]


def test_the_agent_who_cancels_or_lets_it_ring_dials_nobody(centre, api):
    place(centre, api, to=CUSTOMER, agent="101")
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    alice.press("2")
    assert outbound_call(centre).status == "failed"
    assert agent_activity(centre, "101") == "idle"
    place(centre, api, to=CUSTOMER, agent="101")
    centre.network.ring_out(centre.network.last_call(to=ALICE).sid, "no-answer")
    call = outbound_call(centre)
    assert call.status == "failed"
    with centre.db() as session:
        failed = session.scalar(select(Event).where(Event.call_id == call.id, Event.name == "outbound_call_failed"))
        assert failed.detail == {"why": "agent_left_before_customer", "agent": "101", "ended": "no_answer"}
    assert [r.form["To"] for r in calls_placed(centre)] == [ALICE, ALICE]


def test_an_outbound_call_can_be_transferred_like_any_other(centre, api):
    place(centre, api, to=CUSTOMER, agent="101")
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    customer = centre.network.last_call(to=CUSTOMER)
    centre.network.answer(customer.sid)
    call = outbound_call(centre)
    started = centre.client.post(f"/api/calls/{call.call_sid}/transfers", json={"extension": "102", "mode": "blind"},
                                 headers=api)
    assert started.status_code == 201, started.get_json()
    centre.network.run_pending()
    bob = centre.network.last_call(to="sip:bob@switchboard-demo.sip.twilio.com")
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    assert in_room(customer, str(call.id)) and in_room(bob, str(call.id))
    assert outbound_call(centre).agent_id is not None
    with centre.db() as session:
        assert session.get(Call, call.id).agent.extension == "102"


def test_a_browser_agent_calls_from_the_console_and_is_in_the_room_at_once(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    page = alice.get("/console").get_data(as_text=True)
    assert "Call a customer" in page and "+1555" in page
    done = act(centre, alice, "/console/call", number=CUSTOMER, reason="Follow-up on ticket 42")
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["message"] == f"Calling {CUSTOMER}."
    # No phone of the agent's is dialled: only the customer.
    assert [r.form["To"] for r in calls_placed(centre)] == [CUSTOMER]
    live = state(alice)["call"]
    assert live["direction"] == "outbound" and live["status"] == "dialing" and live["room"]
    customer = centre.network.last_call(to=CUSTOMER)
    centre.network.answer(customer.sid)
    assert state(alice)["call"]["status"] == "connected"
    refused = act(centre, alice, "/console/call", number=ABROAD)
    assert refused.status_code == 409 and "outbound calls may call" in refused.get_json()["error"]


def test_a_sip_agent_placing_a_call_in_the_console_answers_their_phone_first(centre):
    with centre.db() as session:
        from app.auth.service import create_user

        create_user(session, "alice", "console-password-1", "agent", agent_extension="101")
    alice = sign_in(centre, "alice")
    done = act(centre, alice, "/console/call", number=CUSTOMER)
    assert "Your phone is ringing" in done.get_json()["message"]
    assert [r.form["To"] for r in calls_placed(centre)] == [ALICE]
    with centre.db() as session:
        leg = session.scalar(select(Leg).where(Leg.role == LegRole.AGENT))
        assert leg.agent_id == session.scalar(select(Agent.id).where(Agent.extension == "101"))


def _dial_out(centre, phone: str, dialled: str):
    """PHONE dials DIALLED through the SIP domain (whose Voice URL and status callback are the service's)."""
    base = centre.app.config["SETTINGS"].public_base_url
    centre_calls = centre.network.incoming_call(
        phone, f"sip:{dialled}@switchboard-demo.sip.twilio.com",
        voice_url=base + "/twilio/agent/dial-out", status_callback=base + "/twilio/agent/dial-out/status")
    centre.network.run_pending()
    return centre_calls


def test_an_agent_dials_a_customer_from_their_own_phone(centre):
    alice = _dial_out(centre, ALICE, "+15557770123")
    assert "Calling 1 5 5 5 7 7 7 0 1 2 3" in alice.heard_text
    call = outbound_call(centre)
    assert call.status == "dialing" and call.agent_id is not None
    # Only the customer is dialled: the agent's own call is already up.
    assert [r.form["To"] for r in calls_placed(centre)] == [CUSTOMER]
    customer = centre.network.last_call(to=CUSTOMER)
    centre.network.answer(customer.sid)
    assert in_room(alice, str(call.id)) and in_room(customer, str(call.id))
    assert outbound_call(centre).status == "connected" and agent_activity(centre, "101") == "on_call"
    alice.hangup()  # the agent ends it from their phone: the customer is told, the agent is free
    assert outbound_call(centre).status == "completed"
    assert agent_activity(centre, "101") == "idle"
    assert "outbound_call_placed" in timeline(centre, call.call_sid)


def test_digits_alone_are_read_as_e164_and_a_number_off_the_list_is_refused_to_the_agent(centre):
    alice = _dial_out(centre, ALICE, "442079460123")
    assert "Not dialled: +442079460123 is not in a country or prefix outbound calls may call" in alice.heard_text
    assert not alice.live and calls_placed(centre) == []
    assert agent_activity(centre, "101") == "idle"


def test_a_phone_that_is_no_agents_may_not_dial_out(centre):
    stranger = _dial_out(centre, "sip:mallory@switchboard-demo.sip.twilio.com", "+15557770123")
    assert "not an agent's phone" in stranger.heard_text and not stranger.live
    assert calls_placed(centre) == []


def test_a_dial_twilio_turns_away_with_429_is_retried_once_after_a_back_off(centre, api):
    centre.network.fail_next("Calls.json", status=429, code=20429, message="Too Many Requests")
    placed = place(centre, api, to=CUSTOMER, agent="101")
    assert placed.status_code == 201
    # Tried twice: the 429 (never processed, always safe to retry), then after a back-off with jitter.
    assert [r.form["To"] for r in calls_placed(centre)] == [ALICE, ALICE]
    assert len(centre.slept) == 1 and 0.5 <= centre.slept[0] <= 1.5
    assert centre.network.last_call(to=ALICE).live
