"""An agent leg LiveKit keeps refusing (a trunk, address or credential fault) is given up after three tries, and
the caller is not stuck: they go back to the queue in their place and the next agent is rung."""

from __future__ import annotations

from sqlalchemy import select

from app.calls.reactions import MAX_ROOM_ATTEMPTS
from app.models import Event, Leg, LegRole
from app.telephony.sip import leg_caller_id
from tests.transfer_helpers import ALICE, BOB, HOLD_TURN_SECONDS, agent_activity, call_row


def test_an_agent_leg_livekit_refuses_three_times_ends_and_the_caller_goes_to_the_next_agent(centre):
    caller = centre.network.incoming_call("+15557771201", centre.number)
    caller.speak("I was charged twice for my bill")
    call = call_row(centre, caller.sid)
    queued_at = call.queued_at
    with centre.db() as session:
        caller_leg_id = session.scalar(select(Leg.id).where(Leg.call_id == call.id, Leg.role == LegRole.CALLER))
    # LiveKit's trunk takes the caller's leg only (its allowed numbers: a trunk fault), refusing Alice's INVITEs.
    for trunk in centre.livekit.trunks.values():
        trunk.allowed_numbers[:] = [leg_caller_id(caller_leg_id)]
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    # LiveKit drops an INVITE no trunk takes without answering (livekit/sip: "Rejecting inbound flood"), so each
    # try lasts the room <Dial>'s 60 s (and Twilio's 5 s), then "one moment", one play of the music, and the room
    # again.
    try_seconds = 60 + 5 + HOLD_TURN_SECONDS
    for _ in range(int(MAX_ROOM_ATTEMPTS * try_seconds) // 5 + 1):
        centre.network.advance(5)
        if not alice.live:
            break
    assert "We could not connect you to the call" in alice.heard_text and not alice.live
    with centre.db() as session:
        tries = session.scalars(select(Event).where(Event.call_id == call.id,
                                                    Event.name == "agent_room_unanswered")).all()
        failed = session.scalar(select(Event).where(Event.call_id == call.id, Event.name == "agent_media_failed"))
    assert len(tries) == MAX_ROOM_ATTEMPTS and failed.detail["why"] == "room_unreachable"
    assert "call_requeued" in centre.timeline(caller.sid)
    requeued = call_row(centre, caller.sid)
    assert requeued.queued_at == queued_at  # their place kept
    assert requeued.status == "ringing_agent" and centre.network.last_call(to=BOB).live
    assert agent_activity(centre, "101") == "idle"
