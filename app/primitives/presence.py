"""Who LiveKit says is in a room: the service's one way to ask, for decisions a webhook alone cannot make."""

from __future__ import annotations

from sqlalchemy import select

from app.events import record_event
from app.gateways.livekit import LiveKitError
from app.logs import get_logger
from app.models import Call, Event, Leg
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
        if t.out_of_time:
            raise LiveKitError("ListParticipants", "deadline_exceeded", "the webhook's time budget is spent")
        with t.within_budget():
            return {p.identity for p in t.livekit.list_participants(room)}
    except LiveKitError as error:
        if error.code == "not_found":
            return set()
        raise
    finally:
        lock_call(t, call.id)


# livekit.DisconnectReason values that say LiveKit itself ended a participant, as livekit-server maps its
# close reasons (`pkg/rtc/types/interfaces.go`, ParticipantCloseReason.ToDisconnectReason): a removal by
# the API, the node stopping, a lost connection, a migration, a join that never completed, the room ending.
# A `*` is Twilio hanging up the SIP call: the SIP bridge leaves the room itself (livekit/sip
# `pkg/sip/room.go`, CloseWithReason), which LiveKit reports as client-initiated (or with no reason).
LIVEKIT_DROPS = frozenset({
    "participant_removed", "server_shutdown", "connection_timeout", "state_mismatch", "migration",
    "join_failure", "signal_close", "room_deleted", "room_closed", "media_failure", "sip_trunk_failure",
})


def star_pressed(t: Telephony, leg: Leg) -> bool:
    """An agent's <Dial> into the call's room ended as `*` does: was it `*`, or did the far side drop?

    Twilio reports both as DialCallStatus=completed (hangupOnStar). LiveKit's
    `participant_left` for the leg, when it came first, says why it left
    (LIVEKIT_DROPS). Otherwise: after a `*` the caller is still in the room;
    when LiveKit closed the room or dropped the call's SIP legs, the caller
    is not. If LiveKit cannot be asked, `*` is assumed (named in the
    timeline). A drop still read as `*` costs the caller nothing: they are
    held only once the agent keys a target (transfers.choose_target).
    """
    call = leg.call
    dropped = livekit_dropped(t, leg)
    if dropped is not None:
        record_event(t.session, call, "agent_bridge_dropped", leg_id=leg.id, room=call.room_name, reason=dropped)
        return False
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


def livekit_dropped(t: Telephony, leg: Leg) -> str | None:
    """The reason, if LiveKit reported ending LEG's participant on its own where the leg is placed now
    (its room and placement: a room the service closed behind a leg it moved on is not a drop)."""
    left = t.session.scalars(
        select(Event).where(Event.call_id == leg.call_id, Event.name == "livekit_participant_left")
        .order_by(Event.id.desc()).limit(20)
    ).all()
    for event in left:
        detail = event.detail or {}
        if (detail.get("leg_id") == leg.id and detail.get("placement") == leg.placement
                and detail.get("room") == (leg.room_name or leg.call.room_name)):
            reason = detail.get("reason")
            return reason if reason in LIVEKIT_DROPS else None
    return None


def still_in_room(t: Telephony, call: Call, room: str, identity: str) -> bool:
    """Whether IDENTITY is in ROOM of CALL now; False (logged) when LiveKit cannot say."""
    try:
        return identity in identities_in_room(t, call, room)
    except LiveKitError as error:
        log.warning("livekit_participants_unknown", room=room, error=str(error)[:200])
        return False
