"""Where the parties of a transfer are: the caller held or back in the room, agents placed, held or released.

A party is moved by writing where it should be and recording a redirect of
its leg to a URL that reads the database, which Twilio is asked for once the
step is committed (app/primitives/effects.py); the party whose own request
caused the move gets its TwiML in the answer instead.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select

from app.events import record_event
from app.models import Call, CallStatus, Event, Leg, LegStatus, utcnow
from app.primitives.context import Telephony
from app.primitives.effects import remove_from_room
from app.primitives.legs import caller_leg, close_leg
from app.primitives.moves import moved_by_its_own_answer, redirect_leg
from app.states.calls import move_call
from app.states.legs import move_leg


class Prompt(StrEnum):
    """What an agent hears on arriving where a transfer step put them (carried in their rejoin URL)."""

    NONE = ""
    CALLING = "calling"
    QUEUED = "queued"  # everyone at the target queue is busy: the transfer waits there
    TRANSFERRED_QUEUED = "transferred_queued"  # a blind transfer left waiting at the target queue
    ACCEPTED = "accepted"
    TRANSFERRED = "transferred"
    COMPLETED = "completed"
    CONNECTED = "connected"
    THREE_WAY = "three_way"
    RETURNED = "returned"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    VOICEMAIL = "voicemail"  # the target's phone was answered by a machine
    FAILED = "failed"
    HOLD = "hold"
    SWAPPED = "swapped"
    TARGET_GONE = "target_gone"
    CALLER_GONE = "caller_gone"
    CUSTOMER_UNANSWERED = "customer_unanswered"  # an outbound call's customer did not answer

    @classmethod
    def parse(cls, value: str | None) -> "Prompt":
        """The prompt a rejoin URL names; NONE for anything else."""
        try:
            return cls(value or "")
        except ValueError:
            return cls.NONE


def caller_hears_hold(t: Telephony, call: Call) -> None:
    """The caller's first hold turn since a transfer put them on hold: how long they heard nothing, on the timeline.

    From the step that moved them (caller_on_hold) to this webhook, which
    answers with the hold TwiML: the caller's dead air of that step
    (`caller_heard_hold`, silent_ms).
    """
    last = t.session.scalars(
        select(Event)
        .where(Event.call_id == call.id, Event.name.in_(("caller_on_hold", "caller_heard_hold")))
        .order_by(Event.id.desc())
        .limit(1)
    ).first()
    if last is not None and last.name == "caller_on_hold":
        silent = (utcnow() - last.created_at).total_seconds()
        record_event(t.session, call, "caller_heard_hold", silent_ms=int(silent * 1000))


def hold_caller(t: Telephony, call: Call) -> None:
    """Put the caller on hold music (Twilio redirects the leg once the step is committed)."""
    caller = caller_leg(call)
    if caller is not None:
        move_leg(caller, LegStatus.ON_HOLD)
    move_call(t.session, call, CallStatus.ON_HOLD, "caller_on_hold")
    redirect_leg(t, caller, t.urls.caller_wait(call.id))


def unhold_caller(t: Telephony, call: Call) -> None:
    """Take the caller off hold, back into the call's room."""
    caller = caller_leg(call)
    if caller is None or caller.is_final or call.is_final:
        return
    if caller.status != LegStatus.ON_HOLD and call.status != CallStatus.ON_HOLD:
        return  # never held (a transfer given up before its target was chosen): left where they are
    move_leg(caller, LegStatus.CONNECTED)
    caller.room_name = call.room_name
    move_call(t.session, call, CallStatus.CONNECTED, "caller_off_hold", room=call.room_name)
    redirect_leg(t, caller, t.urls.caller_connect(call.id))


def place_agent(t: Telephony, leg: Leg, room: str, *, requester: Leg | None, say: Prompt = Prompt.NONE) -> None:
    """Put an agent's leg in ROOM; REST-redirect it unless it is the requester."""
    if not room:
        raise ValueError("place_agent needs a room")
    _set_agent_place(t, leg, LegStatus.CONNECTED, room, requester, say)


def hold_agent(t: Telephony, leg: Leg, *, requester: Leg | None, say: Prompt = Prompt.HOLD) -> None:
    """Put an agent's leg on hold music (during a swap)."""
    _set_agent_place(t, leg, LegStatus.ON_HOLD, leg.room_name, requester, say)


def _set_agent_place(t: Telephony, leg: Leg, status: str, room: str | None, requester: Leg | None,
                     say: Prompt) -> None:
    if leg.is_final:
        return
    if room != leg.room_name:
        _leave_room(t, leg)
    move_leg(leg, status)
    leg.room_name = room
    _send(t, leg, requester, say)


def release_agent_leg(t: Telephony, leg: Leg, reason: str, *, requester: Leg | None,
                      say: Prompt = Prompt.NONE) -> None:
    """End an agent's part in the call: the leg hears SAY and hangs up."""
    if leg.is_final:
        return
    _leave_room(t, leg)
    close_leg(t, leg, LegStatus.ENDED, reason)
    _send(t, leg, requester, say)


def _send(t: Telephony, leg: Leg, requester: Leg | None, say: Prompt) -> None:
    # By REST, or by the answer to its own request: either way a new placement.
    if leg is requester:
        moved_by_its_own_answer(leg)
    else:
        redirect_leg(t, leg, t.urls.agent_rejoin(leg.id, say))


def _leave_room(t: Telephony, leg: Leg) -> None:
    # A browser agent's part in a room ends with their place there: LiveKit
    # disconnects them, so a console kept open cannot go on listening. (A
    # phone leg leaves with its <Dial>, which the redirect ends.)
    if leg.livekit_identity and not leg.twilio_call_sid and leg.room_name:
        remove_from_room(t, leg.call, leg.room_name, leg.livekit_identity)


def requeue_caller(t: Telephony, call: Call) -> None:
    """No agent is left on the call: the caller waits in the queue again (already hearing music).

    Ringing the next agent is routing's: the request's edge offers the call
    once this step is committed (routing.offer_waiting_calls); the caller's
    hold loop does it otherwise, on its next turn.
    """
    call.agent_id = None
    call.queued_at = utcnow()
    move_call(t.session, call, CallStatus.QUEUED, "call_requeued", queue=call.queue.name if call.queue else None)
    t.requeued_call_ids.add(call.id)
