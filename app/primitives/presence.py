"""Who LiveKit says is in a room: the service's one way to ask, for decisions a webhook alone cannot make."""

from __future__ import annotations

from app.events import record_event
from app.gateways.livekit import LiveKitError
from app.logs import get_logger
from app.models import Call, Leg
from app.primitives.context import Telephony
from app.primitives.legs import caller_leg, lock_call

log = get_logger("switchboard.rooms")


def identities_in_room(t: Telephony, call: Call, room: str) -> set[str]:
    """The identities LiveKit has in ROOM (empty when the room is gone); LiveKitError when it cannot say.

    The service's one named commit-before-network place: the step so far is
    committed first, because a transaction (on SQLite, the database's write
    lock) must not be held while LiveKit answers (tests/test_commit_points.py).
    The step then takes CALL's lock again and reads it afresh (legs.lock_call),
    so what another step did meanwhile (the caller hanging up) is what it
    goes on with.
    """
    t.session.commit()
    try:
        return {p.identity for p in t.livekit.list_participants(room)}
    except LiveKitError as error:
        if error.code == "not_found":
            return set()
        raise
    finally:
        lock_call(t, call.id)


def star_pressed(t: Telephony, leg: Leg) -> bool:
    """An agent's <Dial> into the call's room ended as `*` does: was it `*`, or did the far side drop?

    Twilio reports both as DialCallStatus=completed (hangupOnStar). After a
    `*` the caller is still in the room; when LiveKit closed the room or
    dropped the call's SIP legs, the caller is not. If LiveKit cannot be
    asked, `*` is assumed (named in the timeline).
    """
    call = leg.call
    caller = caller_leg(call)
    if caller is None or caller.is_final or caller.livekit_identity is None or t.livekit_gateway is None:
        return True
    try:
        present = identities_in_room(t, call, call.room_name)
    except LiveKitError as error:
        record_event(t.session, call, "star_assumed_livekit_unreachable", leg_id=leg.id, error=str(error)[:200])
        return True
    if caller.livekit_identity in present:
        return True
    record_event(t.session, call, "agent_bridge_dropped", leg_id=leg.id, room=call.room_name,
                 caller_in_room=False)
    return False


def still_in_room(t: Telephony, call: Call, room: str, identity: str) -> bool:
    """Whether IDENTITY is in ROOM of CALL now; False (logged) when LiveKit cannot say."""
    try:
        return identity in identities_in_room(t, call, room)
    except LiveKitError as error:
        log.warning("livekit_participants_unknown", room=room, error=str(error)[:200])
        return False
