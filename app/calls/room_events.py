"""Keeping legs in step with what LiveKit reports about its rooms."""

from __future__ import annotations

from sqlalchemy import select

from app.calls.reactions import agent_left
from app.events import record_event
from app.gateways.livekit import WebhookEvent
from app.logs import get_logger
from app.models import Call, CallStatus, Leg, LegRole, LegStatus, Transfer
from app.primitives.context import Telephony
from app.primitives.effects import remove_from_room
from app.primitives.legs import caller_leg, close_leg, lock_call
from app.primitives.moves import redirect_leg
from app.primitives.presence import still_in_room
from app.states.calls import move_call

log = get_logger("switchboard.rooms")

BROWSER_PREFIX = "agent-"  # app/primitives/legs.browser_identity
HANDLED_EVENTS = ("participant_joined", "participant_left", "participant_connection_aborted", "room_started",
                  "room_finished")


def room_event(t: Telephony, event: WebhookEvent) -> None:
    """Record a LiveKit room event on the call it belongs to; keep the leg's room and identity current."""
    if event.event not in HANDLED_EVENTS or event.room is None:
        return
    room = event.room.name
    call = _call_for_room(t, room)
    if call is None:
        return
    call = lock_call(t, call.id)
    identity = event.participant.identity if event.participant else None
    # Every leg knows its identity before it joins: `sip_leg-<id>` for a
    # phone leg (its <Dial> caller ID), `agent-<ext>` in the browser.
    # (sip.twilio.callSid names the dialled child call, which the service
    # never sees, so it cannot match a leg.)
    leg = None
    if identity:
        leg = t.session.scalar(select(Leg).where(Leg.call_id == call.id, Leg.livekit_identity == identity))
    browser_left = (
        leg is not None and event.event == "participant_left" and not leg.twilio_call_sid
        and leg.status == LegStatus.CONNECTED and leg.room_name == room
    )
    record_event(
        t.session,
        call,
        f"livekit_{event.event}",
        room=room,
        identity=identity,
        leg_id=leg.id if leg else None,
        role=leg.role if leg else None,
    )
    if event.event == "participant_joined" and identity and identity.startswith(BROWSER_PREFIX):
        _admit_or_remove(t, call, room, identity)
    if (event.event == "participant_connection_aborted" and leg is not None and not leg.twilio_call_sid
            and leg.status == LegStatus.CONNECTED and leg.room_name == room and not leg.is_final):
        # A browser agent whose media never connected (LiveKit never had them active in the room).
        browser_never_connected(t, leg)
    if browser_left and not still_in_room(t, call, room, identity) and not leg.is_final:
        # A browser agent's tab closed or its network died for good (LiveKit
        # reports a departure only after its own reconnection attempts): the
        # caller must not sit in a silent room.
        agent_left(t, leg)


def _admit_or_remove(t: Telephony, call: Call, room: str, identity: str) -> None:
    # The check on every (re)connection: a browser agent is admitted only to
    # the room their live leg is placed in. A token still valid, or one
    # LiveKit refreshed, no longer admits them once their part is over.
    placed = any(leg.livekit_identity == identity and not leg.is_final and leg.room_name == room
                 for leg in call.legs)
    if not placed:
        record_event(t.session, call, "livekit_participant_refused", room=room, identity=identity)
        remove_from_room(t, call, room, identity)


def _call_for_room(t: Telephony, room: str) -> Call | None:
    call = t.session.scalar(select(Call).where(Call.room_name == room))
    if call is not None:
        return call
    transfer = t.session.scalar(select(Transfer).where(Transfer.consult_room == room))
    return transfer.call if transfer else None


def browser_never_connected(t: Telephony, leg: Leg) -> None:
    """A browser agent accepted the call but their media never reached the room: their leg fails (not their
    miss), and a caller they had goes back to the queue, keeping their place, to be offered to the next agent
    (instead of ringing on in an empty room)."""
    call = leg.call
    close_leg(t, leg, LegStatus.FAILED, "browser_media_never_connected")
    record_event(t.session, call, "agent_media_failed", agent=leg.agent.extension if leg.agent else None,
                 leg_id=leg.id)
    others = [other for other in call.legs
              if other.role != LegRole.CALLER and other.status == LegStatus.CONNECTED and other.id != leg.id]
    if call.status != CallStatus.CONNECTED or call.agent_id != leg.agent_id or others:
        return
    call.agent_id = None
    move_call(t.session, call, CallStatus.QUEUED, "call_requeued", why="the agent's browser never connected")
    redirect_leg(t, caller_leg(call), t.urls.caller_wait(call.id))
    t.requeued_call_ids.add(call.id)
