"""Overflow: what a queue does with a caller still waiting past its longest wait.

Whole calls on the demo roster: billing is Alice (101) and Bob (102); technical is Bob and Carmen (201); Dev
(202) is away. Two callers about a bill take Alice and Bob, so the next billing caller waits; the hold
music's turns (one each time the clip ends, HOLD_TURN_SECONDS apart on the virtual clock) are where the wait is
measured: a caller past LIMIT is moved at the first turn at or past it (MOVED_AT after they queued).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from app.models import Event, Queue
from tests.transfer_helpers import CARMEN, call_row, connected_call, in_room, turn_at_or_past

BILL = "I was charged twice for my internet bill"
TECHNICAL = "My internet router is broken"
LIMIT = 30
MOVED_AT = turn_at_or_past(LIMIT)


@pytest.fixture
def centre_settings(centre_settings):
    # A callback is offered only to a number outbound calls may dial.
    return replace(centre_settings, outbound_call_allow=("+1555",))


def _queue_settings(centre, name: str, code: str, *options: str) -> None:
    hints = {"billing": "bill,billing,invoice,charge", "technical": "internet,router,technical"}[name]
    saved = centre.app.test_cli_runner().invoke(
        args=["queues", "add", "--name", name, "--dtmf-code", code, "--hints", hints, *options,
              *(["--default"] if name == "billing" else [])])
    assert saved.exit_code == 0, saved.output


def _billing_busy(centre):
    return [connected_call(centre, number=number) for number in ("+15557770101", "+15557770102")]


def _queued(centre, number: str, reason: str = BILL):
    caller = centre.network.incoming_call(number, centre.number)
    caller.speak(reason)
    assert call_row(centre, caller.sid).status == "queued"
    return caller


def _queue_id(centre, name: str) -> int:
    with centre.db() as session:
        return session.scalar(select(Queue.id).where(Queue.name == name))


def _details(centre, sid: str, name: str) -> list[dict]:
    call_id = call_row(centre, sid).id
    with centre.db() as session:
        return [event.detail for event in session.scalars(
            select(Event).where(Event.call_id == call_id, Event.name == name).order_by(Event.id))]


def test_a_caller_past_the_wait_moves_to_the_overflow_queue_and_reaches_its_agent(centre):
    _queue_settings(centre, "billing", "1", "--max-wait-seconds", str(LIMIT), "--overflow", "technical")
    _billing_busy(centre)
    caller = _queued(centre, "+15557770501")
    queued_at = call_row(centre, caller.sid).queued_at
    centre.network.advance(MOVED_AT - 1)
    assert call_row(centre, caller.sid).queue_id == _queue_id(centre, "billing")  # not yet: no turn since the limit
    centre.network.advance(2)
    assert ("Everyone at billing is still busy, so we are passing your call to technical, keeping your place. "
            "Please hold.") in caller.heard_text
    call = call_row(centre, caller.sid)
    assert call.queue_id == _queue_id(centre, "technical") and call.queued_at == queued_at
    assert call.status == "ringing_agent"
    assert _details(centre, caller.sid, "queue_overflowed") == [
        {"from": "billing", "to": "technical", "waited_seconds": int(MOVED_AT)}]
    carmen = centre.agent_phone(CARMEN)  # Bob is on a billing call: Carmen is technical's free agent
    centre.network.answer(carmen.sid)
    carmen.press("1")
    call_id = str(call.id)
    assert in_room(caller, call_id) and in_room(carmen, call_id)
    assert "queue_options_offered" not in centre.timeline(caller.sid)


def test_an_overflowed_caller_keeps_their_place_ahead_of_the_overflow_queues_later_callers(centre):
    _queue_settings(centre, "billing", "1", "--max-wait-seconds", str(LIMIT), "--overflow", "technical")
    _billing_busy(centre)
    technical_caller, carmen = connected_call(centre, number="+15557770201", reason=TECHNICAL)
    assert carmen.to == CARMEN
    early = _queued(centre, "+15557770502")  # billing, first
    centre.network.advance(5)
    later = _queued(centre, "+15557770503", TECHNICAL)  # technical, five seconds later
    centre.network.advance(MOVED_AT)  # the billing caller moves to technical, where nobody is free
    assert call_row(centre, early.sid).queue_id == _queue_id(centre, "technical")
    assert call_row(centre, early.sid).status == "queued"
    early.music_ends()
    assert "You are first in line." in early.heard_text  # told their place in the new queue, ahead of the later one
    technical_caller.hangup()  # Carmen is free: she is offered the caller who has waited longest
    assert call_row(centre, early.sid).status == "ringing_agent"
    assert call_row(centre, later.sid).status == "queued"
    assert centre.network.calls_to(CARMEN)[-1].sid != carmen.sid


def test_two_queues_overflowing_into_each_other_move_a_caller_once_then_offer_the_options(centre):
    _queue_settings(centre, "billing", "1", "--max-wait-seconds", str(LIMIT), "--overflow", "technical")
    _queue_settings(centre, "technical", "2", "--max-wait-seconds", str(LIMIT), "--overflow", "billing")
    _billing_busy(centre)
    connected_call(centre, number="+15557770201", reason=TECHNICAL)  # Carmen
    caller = _queued(centre, "+15557770504")
    centre.network.advance(MOVED_AT + 1)
    assert call_row(centre, caller.sid).queue_id == _queue_id(centre, "technical")
    assert "To leave a message" not in caller.heard_text
    centre.network.advance(MOVED_AT)  # technical's own limit counts from the move
    assert "All of our agents are still busy. To leave a message, press 1." in caller.heard_text
    assert call_row(centre, caller.sid).queue_id == _queue_id(centre, "technical")  # never back to billing
    assert len(_details(centre, caller.sid, "queue_overflowed")) == 1
    skipped = _details(centre, caller.sid, "queue_overflow_skipped")[0]
    assert skipped["to"] == "billing" and "overflowed once already, from billing" in skipped["reason"]
    caller.press("1")
    assert caller.waiting_on.tag == "Record"


def test_an_overflow_to_voicemail_records_a_message_without_asking(centre):
    _queue_settings(centre, "billing", "1", "--max-wait-seconds", str(LIMIT), "--overflow", "voicemail")
    _billing_busy(centre)
    caller = _queued(centre, "+15557770505")
    centre.network.advance(MOVED_AT + 1)
    assert caller.waiting_on.tag == "Record"
    assert ("All of our agents are still busy. Please leave your message after the tone" in caller.heard_text)
    assert "To leave a message, press 1" not in caller.heard_text
    caller.recording_done("https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE505")
    assert "we have your message" in caller.heard_text and not caller.live
    call = call_row(centre, caller.sid)
    assert call.status == "voicemail" and call.voicemail_url.endswith("/Recordings/RE505")
    assert _details(centre, caller.sid, "queue_overflowed") == [
        {"from": "billing", "to": "voicemail", "waited_seconds": int(MOVED_AT)}]
    timeline = centre.timeline(caller.sid)
    assert timeline[-4:] == ["queue_overflowed", "voicemail_started", "voicemail_recorded", "call_ended"]


def test_an_overflow_to_a_callback_asks_for_one_on_the_callers_behalf(centre):
    _queue_settings(centre, "billing", "1", "--max-wait-seconds", str(LIMIT), "--overflow", "callback")
    _billing_busy(centre)
    caller = _queued(centre, "+15557770506")
    centre.network.advance(MOVED_AT + 1)
    assert "All of our agents are still busy. We will call you back" in caller.heard_text and not caller.live
    call = call_row(centre, caller.sid)
    assert call.status == "callback_requested" and call.from_number == "+15557770506"
    assert centre.timeline(caller.sid)[-3:] == ["queue_overflowed", "callback_requested", "call_ended"]


def test_without_an_overflow_the_options_come_as_before(centre):
    _queue_settings(centre, "billing", "1", "--max-wait-seconds", str(LIMIT))
    _billing_busy(centre)
    caller = _queued(centre, "+15557770507")
    centre.network.advance(MOVED_AT + 1)
    assert "All of our agents are still busy. To leave a message, press 1." in caller.heard_text
    assert "queue_overflowed" not in centre.timeline(caller.sid)


def test_an_overflow_to_a_callback_for_a_number_that_may_not_be_dialled_offers_the_options(centre):
    _queue_settings(centre, "billing", "1", "--max-wait-seconds", str(LIMIT), "--overflow", "callback")
    _billing_busy(centre)
    caller = _queued(centre, "+442079460506")
    centre.network.advance(MOVED_AT + 1)
    assert "To leave a message, press 1. To keep holding" in caller.heard_text and caller.live
    assert "call you back" not in caller.heard_text
    fallback = [e for e in _events(centre, caller.sid) if e.name == "queue_overflow_fallback"]
    assert fallback and fallback[0].detail["fallback"] == "options"


def _events(centre, sid: str) -> list[Event]:
    call_id = call_row(centre, sid).id
    with centre.db() as session:
        events = session.scalars(select(Event).where(Event.call_id == call_id).order_by(Event.id)).all()
        session.expunge_all()
        return list(events)
