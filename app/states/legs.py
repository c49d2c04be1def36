"""A leg's status: the one writer of `Leg.status` (and of `Leg.connected_at`), and the moves it allows.

A leg rings (DIALING), may hear a whisper before taking the call, is
connected in a room or held on music, and ends once, with a reason in the
service's own words: ended, not answered, busy, declined, failed or
cancelled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.database import insert_now, link_loaded
from app.models import FINAL_LEG_STATUSES, Agent, Call, Leg, LegRole, LegStatus, utcnow
from app.states.moves import check_move, stamp_ending

_ENDINGS = FINAL_LEG_STATUSES

LEG_MOVES: dict[str, frozenset[str]] = {
    # A browser agent's offer is accepted in one step (no whisper to hear).
    LegStatus.DIALING: frozenset({LegStatus.WHISPER, LegStatus.CONNECTED}) | _ENDINGS,
    LegStatus.WHISPER: frozenset({LegStatus.CONNECTED}) | _ENDINGS,
    LegStatus.CONNECTED: frozenset({LegStatus.ON_HOLD}) | _ENDINGS,
    LegStatus.ON_HOLD: frozenset({LegStatus.CONNECTED}) | _ENDINGS,
}


def new_leg(session: Session, call: Call, role: LegRole, *, agent: Agent | None = None,
            twilio_call_sid: str | None = None) -> Leg:
    """A new leg of CALL: a phone or browser being rung (DIALING). (An arriving caller's own leg, connected, is
    written with its call: states/calls.new_call.)"""
    values = starting_leg(role, agent_id=agent.id if agent is not None else None, twilio_call_sid=twilio_call_sid)
    leg = insert_now(session, Leg(call_id=call.id, **values))
    # A step that has the call's legs loaded sees the new one among them.
    link_loaded(call, "legs", leg, "call")
    if agent is not None:
        # The agent at hand: asking for the leg's agent later in the step reads nothing (the session holds its
        # objects weakly, so an agent nothing else refers to may be gone from it by then).
        set_committed_value(leg, "agent", agent)
    return leg


def starting_leg(role: LegRole, *, agent_id: int | None = None, status: LegStatus = LegStatus.DIALING,
                 twilio_call_sid: str | None = None, answered_at: datetime | None = None) -> dict:
    """The values of a new leg but its call: `new_leg`'s, and those of an arriving caller's own leg, which
    states/calls.new_call writes with the call."""
    if status not in (LegStatus.DIALING, LegStatus.CONNECTED):
        raise ValueError(f"a leg starts dialing or connected, not {status}")
    return {"role": role, "agent_id": agent_id, "status": status, "twilio_call_sid": twilio_call_sid,
            "answered_at": answered_at, "connected_at": utcnow() if status == LegStatus.CONNECTED else None}


def move_leg(leg: Leg, to: LegStatus, *, reason: str | None = None) -> bool:
    """Move LEG to TO; the first connection stamps connected_at, a final status ended_at and the end REASON.
    False if it already is in TO."""
    moved = check_move("leg", leg.id, LEG_MOVES, leg.status, to)
    if moved:
        leg.status = to
        if to == LegStatus.CONNECTED and leg.connected_at is None:
            leg.connected_at = utcnow()
        if to in FINAL_LEG_STATUSES:
            stamp_ending(leg, reason)
    return moved
