"""A call's status: the one writer of `Call.status`, and the moves it allows.

A caller is in the IVR, then waits in a queue while agents are rung, is
connected, may be held during a transfer (and go back to the queue when no
agent is left), and ends: completed once answered, abandoned before,
or with a voicemail or a callback asked for. A caller whose queue is
outside its business hours is never queued: after the IVR they are
`after_hours`, told when it opens, and may leave a message or ask for a
callback.

An outbound call starts DIALING (its agent rung, then the customer), is
connected when the customer answers, and ends unanswered when they do not,
or failed when its agent never took it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.database import insert_now, insert_now_with, note_configuration_version
from app.events import event_values, event_written, record_event
from app.models import (
    CONFIGURATION_VERSION,
    FINAL_CALL_STATUSES,
    Call,
    CallDirection,
    CallStatus,
    Event,
    Leg,
    LegRole,
    LegStatus,
    utcnow,
)
from app.states.legs import starting_leg
from app.states.moves import check_move

_ENDED = frozenset({CallStatus.COMPLETED, CallStatus.ABANDONED, CallStatus.FAILED})
_LEFT_THE_QUEUE = frozenset({CallStatus.VOICEMAIL, CallStatus.CALLBACK_REQUESTED})

# A message taken after a step kept failing (the last resort) is a voicemail whatever the call was doing.
_MESSAGE = frozenset({CallStatus.VOICEMAIL})

CALL_MOVES: dict[str, frozenset[str]] = {
    CallStatus.IVR: frozenset({CallStatus.QUEUED, CallStatus.AFTER_HOURS}) | _MESSAGE | _ENDED,
    CallStatus.AFTER_HOURS: _LEFT_THE_QUEUE | _ENDED,
    # An agent accepting is connected from either waiting status (a browser
    # agent's offer may outlive the ring that made the call RINGING_AGENT).
    CallStatus.QUEUED: frozenset({CallStatus.RINGING_AGENT, CallStatus.CONNECTED}) | _LEFT_THE_QUEUE | _ENDED,
    CallStatus.RINGING_AGENT: frozenset({CallStatus.QUEUED, CallStatus.CONNECTED}) | _LEFT_THE_QUEUE | _ENDED,
    CallStatus.CONNECTED: frozenset({CallStatus.ON_HOLD, CallStatus.QUEUED}) | _MESSAGE | _ENDED,
    CallStatus.ON_HOLD: frozenset({CallStatus.CONNECTED, CallStatus.QUEUED}) | _MESSAGE | _ENDED,
    CallStatus.DIALING: frozenset({CallStatus.CONNECTED, CallStatus.UNANSWERED}) | _ENDED,
    # Final: a caller who chose voicemail or a callback and then hangs up keeps that status.
}


# The caller's last call: inbound, from the same number, that reached a queue and ended at or after
# :resume_since (calls/resume.py takes a caller cut off who calls straight back where they were). Asked by the
# new call's own INSERT, so no new call spends a statement on it; its index is ix_calls_from_number_ended_at.
_calls = Call.__table__.c
_CALLERS_LAST_CALL = (
    select(_calls.id).where(_calls.direction == CallDirection.INBOUND, _calls.from_number == bindparam("resume_number"),
                            _calls.ended_at >= bindparam("resume_since"), _calls.queue_id.is_not(None))
    .order_by(_calls.ended_at.desc()).limit(1).scalar_subquery().label("callers_last_call"))


def call_by_sid(session: Session, call_sid: str) -> Call | None:
    """The call with this Twilio CallSid (as long as a CallSid can be: longer text names no call), or None."""
    return session.scalar(select(Call).where(Call.call_sid == call_sid[:64]))


def new_call(session: Session, call_sid: str, from_number: str, to_number: str, call_token: str | None = None, *,
             attestation: str | None = None,
             last_call_since: datetime | None = None) -> tuple[Call | None, int | None]:
    """A call that has just arrived on the number: in the IVR (CALL_TOKEN: Twilio's, to forward it with;
    ATTESTATION: what the caller's carrier vouched for their number), its
    caller's leg connected, `call_received` on its timeline; and the id of its caller's last call that reached a
    queue and ended at or after LAST_CALL_SINCE (None: none, or not asked). (None, None), and nothing written,
    when a call of this CALL_SID is stored already (Twilio asked twice).

    On PostgreSQL the call, its leg and its event are one statement (database.insert_now_with). The same
    statement reads the configuration's version for the rest of the transaction (database.read_configuration):
    the new-call webhook claims no delivery, whose statement would have read it (voice/guard.py, ServesArrival)."""
    answered = utcnow()
    event = event_values(None, "call_received", from_number=from_number, to_number=to_number,
                         **({"caller_attestation": attestation} if attestation else {}))
    call, (_, event_id), (last_call_id, version) = insert_now_with(
        session, Call(call_sid=call_sid, from_number=from_number, to_number=to_number, status=CallStatus.IVR,
                      call_token=call_token, caller_attestation=attestation),
        ((Leg, "call_id", starting_leg(LegRole.CALLER, status=LegStatus.CONNECTED, twilio_call_sid=call_sid,
                                       answered_at=answered)),
         (Event, "call_id", event)),
        (_CALLERS_LAST_CALL, CONFIGURATION_VERSION), {"resume_number": from_number, "resume_since": last_call_since},
        unless_present=("call_sid",))
    note_configuration_version(session, version)
    if call is None:
        return None, None
    event["call_id"] = call.id
    event_written(session, event_id, event, call)
    return call, last_call_id


def new_outbound_call(session: Session, call_sid: str, from_number: str, to_number: str) -> Call:
    """An outbound call to TO_NUMBER from our FROM_NUMBER, just placed: DIALING (its agent is rung first)."""
    return insert_now(session, Call(call_sid=call_sid, from_number=from_number, to_number=to_number,
                                    status=CallStatus.DIALING, direction=CallDirection.OUTBOUND))


def move_call(session: Session, call: Call, to: CallStatus, event: str | None = None, **detail: Any) -> bool:
    """Move CALL to TO (a final status stamps ended_at and forgets the CallToken) and write EVENT, the step's
    name, on its timeline.

    False when the call already is in TO (nothing is written but EVENT);
    IllegalMove when CALL_MOVES does not allow it.
    """
    moved = check_move("call", call.id, CALL_MOVES, call.status, to)
    if moved:
        call.status = to
        if to in FINAL_CALL_STATUSES:
            call.ended_at = call.ended_at or utcnow()
            # Twilio's CallToken lets a call placed with it show the caller's number: kept only while the call
            # can still be transferred, never with the call's history.
            call.call_token = None
    if event is not None:
        record_event(session, call, event, **detail)
    return moved
