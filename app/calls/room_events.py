"""Keeping legs in step with what LiveKit reports about its rooms."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.calls.reactions import agent_left, agent_never_reached_the_room
from app.events import record_event, record_event_on
from app.gateways.livekit import WebhookEvent
from app.logs import get_logger
from app.models import Call, Event, Leg, LegRole, LegStatus, utcnow
from app.primitives.context import Telephony
from app.primitives.effects import remove_from_room
from app.primitives.legs import find_in_room, lock_call, lock_call_in_room
from app.primitives.presence import still_in_room

log = get_logger("switchboard.rooms")

BROWSER_PREFIX = "agent-"  # app/primitives/legs.browser_identity
HANDLED_EVENTS = ("participant_joined", "participant_left", "participant_connection_aborted", "room_started",
                  "room_finished")


def acted_on(event: WebhookEvent) -> bool:
    """Whether room_event does anything with EVENT: a room's or a participant's coming and going. Tracks
    published and the like change nothing the service keeps."""
    return event.event in HANDLED_EVENTS and event.room is not None


def room_event(t: Telephony, event: WebhookEvent) -> None:
    """Record a LiveKit room event on the call it belongs to; a browser agent's coming and going also admits,
    removes or gives up on them."""
    if not acted_on(event):
        return
    room = event.room.name
    identity = event.participant.identity if event.participant else None
    if not _may_change_the_call(event, identity):
        _record_only(t, event, room, identity)
        return
    call = lock_call_in_room(t, room)
    if call is None:
        return
    # Every leg knows its identity before it joins: `sip_leg-<id>` for a
    # phone leg (its <Dial> caller ID), `agent-<ext>` in the browser.
    # (sip.twilio.callSid names the dialled child call, which the service
    # never sees, so it cannot match a leg.)
    leg = next((leg for leg in call.legs if identity and leg.livekit_identity == identity), None)
    browser_left = leg is not None and event.event == "participant_left" and _browser_leg_in(leg, room)
    left = {}
    if event.event == "participant_left" and event.participant is not None:
        # Why LiveKit says it left, and where the leg was placed then: a drop
        # by LiveKit itself (presence.LIVEKIT_DROPS) is not taken for a `*`.
        left = {"reason": event.participant.disconnect_reason or None,
                "placement": leg.placement if leg is not None else None}
    record_event(
        t.session,
        call,
        f"livekit_{event.event}",
        room=room,
        identity=identity,
        leg_id=leg.id if leg else None,
        role=leg.role if leg else None,
        **left,
    )
    if event.event == "participant_joined" and identity and identity.startswith(BROWSER_PREFIX):
        _admit_or_remove(t, call, room, identity)
    if (event.event == "participant_connection_aborted" and leg is not None and not leg.twilio_call_sid
            and leg.status == LegStatus.CONNECTED and leg.room_name == room and not leg.is_final):
        # A browser agent whose media never connected (LiveKit never had them active in the room).
        agent_never_reached_the_room(t, leg, "browser_media_never_connected")
    # still_in_room commits and reads the call again: the leg is asked about again as it is now, since a step
    # meanwhile (a three-way call, a swap, a hold) may have placed it in another room, where it is live.
    if browser_left and not still_in_room(t, call, room, identity) and _browser_leg_in(leg, room):
        # A browser agent's tab closed or its network died for good (LiveKit
        # reports a departure only after its own reconnection attempts): the
        # caller must not sit in a silent room.
        agent_left(t, leg)


def _may_change_the_call(event: WebhookEvent, identity: str | None) -> bool:
    """Whether the event may lead to a step on its call: a browser agent's (admitted or removed as they join,
    the caller put back when they are gone for good) or media that never connected. A phone leg's SIP
    participant, or a room, coming and going is only told on the call's timeline."""
    return bool(identity and identity.startswith(BROWSER_PREFIX)) or event.event == "participant_connection_aborted"


def _record_only(t: Telephony, event: WebhookEvent, room: str, identity: str | None) -> None:
    """Add the event to its call's timeline, with the leg it names, without locking the call: a step of the call
    under way goes on meanwhile (an event row only references its call), and its legs are read as last
    committed. A participant that left is told with where its leg was placed then, as LiveKit saw it."""
    found = find_in_room(t, room, identity)
    if found is None:
        return
    left = {}
    if event.event == "participant_left" and event.participant is not None:
        left = {"reason": event.participant.disconnect_reason or None, "placement": found.placement}
    record_event_on(t.session, found.call_id, f"livekit_{event.event}", room=room, identity=identity,
                    leg_id=found.leg_id, role=found.role, **left)


def _browser_leg_in(leg: Leg, room: str) -> bool:
    """Whether LEG is a browser agent's leg, connected and placed in ROOM."""
    return not leg.twilio_call_sid and leg.status == LegStatus.CONNECTED and leg.room_name == room


def _admit_or_remove(t: Telephony, call: Call, room: str, identity: str) -> None:
    # The check on every (re)connection: a browser agent is admitted only to
    # the room their live leg is placed in. A token still valid, or one
    # LiveKit refreshed, no longer admits them once their part is over.
    placed = any(leg.livekit_identity == identity and not leg.is_final and leg.room_name == room
                 for leg in call.legs)
    if not placed:
        record_event(t.session, call, "livekit_participant_refused", room=room, identity=identity)
        remove_from_room(t, call, room, identity)


# Browser legs taken longer ago than this are not looked at again: one that never joined was dealt with
# long before (the timer runs every few seconds).
JOIN_CHECK_HORIZON = timedelta(minutes=10)


def expire_browser_joins(t: Telephony) -> int:
    """Browser agents who took a call but never joined its room within BROWSER_JOIN_SECONDS: their leg fails
    and the caller goes back to be offered elsewhere (reactions.agent_never_reached_the_room); returns how many.

    LiveKit releases that report `participant_connection_aborted` say so at
    once; older ones say nothing, and the caller would ring in an empty room
    until their <Dial> gave up. The `check_browser_joins` timer runs this.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=t.settings.browser_join_seconds)
    candidates = t.session.execute(
        select(Leg.id, Leg.call_id).where(
            Leg.role == LegRole.AGENT, Leg.twilio_call_sid.is_(None), Leg.livekit_identity.like(f"{BROWSER_PREFIX}%"),
            Leg.status == LegStatus.CONNECTED, Leg.answered_at < cutoff, Leg.answered_at > now - JOIN_CHECK_HORIZON,
        ).order_by(Leg.id)
    ).all()
    expired = 0
    for leg_id, call_id in candidates:
        if _joined_since_answer(t, call_id, leg_id):
            continue
        lock_call(t, call_id)
        leg = t.session.get(Leg, leg_id, populate_existing=True)
        if leg is None or leg.is_final or leg.status != LegStatus.CONNECTED or _joined_since_answer(t, call_id, leg_id):
            continue
        record_event(t.session, leg.call, "browser_never_joined", leg_id=leg.id,
                     waited_seconds=int((now - leg.answered_at).total_seconds()))
        agent_never_reached_the_room(t, leg, "browser_never_joined")
        expired += 1
    return expired


def _joined_since_answer(t: Telephony, call_id: int, leg_id: int) -> bool:
    answered_at = t.session.scalar(select(Leg.answered_at).where(Leg.id == leg_id))
    joined = t.session.scalars(
        select(Event.detail).where(Event.call_id == call_id, Event.name == "livekit_participant_joined",
                                   Event.created_at >= answered_at)
    ).all()
    return any((detail or {}).get("leg_id") == leg_id for detail in joined)
