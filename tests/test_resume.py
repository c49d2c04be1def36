"""Dropped-caller resume: a caller cut off who calls again from the same number within RESUME_WINDOW_SECONDS skips
the IVR and goes back to the agent they had, who hears that the caller was cut off and when; if that agent is not
free, the caller gets their old place in line. Whole calls on the demo roster (billing: Alice 101, Bob 102).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from app.models import Event
from tests.transfer_helpers import (
    ALICE,
    BOB,
    agent_activity,
    call_row,
    connected_call,
    in_room,
)

NUMBER = "+15557770808"


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, resume_window_seconds=120, wrap_up_seconds=30)


def test_a_caller_cut_off_who_calls_back_reaches_the_same_agent_who_is_told(centre):
    first, alice = connected_call(centre, number=NUMBER)
    assert alice.to == ALICE
    first.hangup()  # cut off
    alice.hangup()
    assert agent_activity(centre, "101") == "wrap_up"
    centre.network.advance(70)
    again = centre.network.incoming_call(NUMBER, centre.number)
    assert "Welcome back" in again.heard_text and "tell us why you are calling" not in again.heard_text
    call = call_row(centre, again.sid)
    earlier = call_row(centre, first.sid)
    assert call.queue_id == earlier.queue_id and call.ivr_reason == earlier.ivr_reason
    phone = centre.network.last_call(to=ALICE)
    assert phone.sid != alice.sid and phone.live  # Alice, out of her wrap-up for this caller
    centre.network.answer(phone.sid)
    assert ("This caller was cut off 1 minute ago and called back. Their number is not verified: confirm who they "
            "are.") in phone.heard_text
    phone.press("1")
    assert in_room(again, str(call.id)) and in_room(phone, str(call.id))
    assert "caller_resumed" in centre.timeline(again.sid)
    assert "caller_called_back" in centre.timeline(first.sid)


def test_when_their_agent_is_busy_the_caller_gets_their_old_place_back(centre):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], wrap_up_seconds=0)
    first, alice = connected_call(centre, number=NUMBER)
    first.hangup()
    _bob_call, bob = connected_call(centre, number="+15557770809")  # Bob, idle longest
    other, alice_again = connected_call(centre, number="+15557770810")  # then Alice: both busy
    assert bob.to == BOB and alice_again.to == ALICE
    waiting = centre.network.incoming_call("+15557770811", centre.number)
    waiting.speak("my bill is wrong")
    centre.network.advance(30)
    again = centre.network.incoming_call(NUMBER, centre.number)
    call = call_row(centre, again.sid)
    # Their old place: in line from when they first queued, ahead of the caller who came since.
    assert call.status == "queued" and call.queued_at == call_row(centre, first.sid).queued_at
    assert call.queued_at < call_row(centre, waiting.sid).queued_at
    other.hangup()  # Alice is free: the resumed caller first, and to her
    assert call_row(centre, again.sid).status == "ringing_agent" and centre.network.last_call(to=ALICE).live
    assert call_row(centre, waiting.sid).status == "queued"


def test_after_the_window_or_for_a_finished_voicemail_the_caller_starts_afresh(centre):
    first, _alice = connected_call(centre, number=NUMBER)
    first.hangup()
    centre.network.advance(121)
    again = centre.network.incoming_call(NUMBER, centre.number)
    assert "tell us why you are calling" in again.heard_text
    assert call_row(centre, again.sid).status == "ivr"


def test_with_the_window_at_zero_nobody_resumes(centre):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], resume_window_seconds=0)
    first, _alice = connected_call(centre, number=NUMBER)
    first.hangup()
    again = centre.network.incoming_call(NUMBER, centre.number)
    assert "tell us why you are calling" in again.heard_text


def test_the_agent_is_told_when_the_carrier_vouched_for_the_number(centre, api_headers):
    first, alice = connected_call(centre, number=NUMBER)
    first.hangup()
    alice.hangup()
    again = centre.network.incoming_call(NUMBER, centre.number, stir_verstat="TN-Validation-Passed-A")
    assert call_row(centre, again.sid).caller_attestation == "A"
    phone = centre.network.last_call(to=ALICE)
    centre.network.answer(phone.sid)
    assert "called back. Their carrier verified their number." in phone.heard_text
    with centre.db() as session:
        detail = session.scalar(select(Event.detail).where(Event.call_id == call_row(centre, again.sid).id,
                                                           Event.name == "call_received"))
    assert detail["caller_attestation"] == "A"
    api = centre.client.get(f"/api/calls/{again.sid}", headers=api_headers(centre.app)).get_json()
    assert api["caller_attestation"] == "A"


@pytest.mark.parametrize("verstat", [None, "No-TN-Validation", "TN-Validation-Passed-B", "TN-Validation-Failed-A"])
def test_with_attestation_required_only_a_number_its_carrier_vouched_for_resumes(centre, verstat):
    """A caller ID is easy to fake: someone calling as a cut-off caller would reach their agent with their context.
    With RESUME_REQUIRES_ATTESTATION only STIR/SHAKEN attestation A (the carrier knows the caller and their right
    to the number) resumes; anyone else starts afresh in the IVR."""
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], resume_requires_attestation=True)
    first, _alice = connected_call(centre, number=NUMBER)
    first.hangup()
    spoofed = centre.network.incoming_call(NUMBER, centre.number, stir_verstat=verstat)
    assert "tell us why you are calling" in spoofed.heard_text
    assert call_row(centre, spoofed.sid).resumed_from_call_id is None
    spoofed.hangup()
    vouched = centre.network.incoming_call(NUMBER, centre.number, stir_verstat="TN-Validation-Passed-A-Diverted")
    assert "Welcome back" in vouched.heard_text
    assert call_row(centre, vouched.sid).resumed_from_call_id == call_row(centre, first.sid).id
