"""The legs of a call, below routing and transfers: find and lock them, close them, tell who is who.

Every webhook step that changes a call takes its call's row lock here
(lock_call), so two webhooks of one call take turns on any number of
workers, and reads the call's legs and transfers afresh after it. One that
only tells the call's timeline (a phone leg's LiveKit event) finds the call
without a lock (find_in_room).

The lock order, everywhere (PostgreSQL; SQLite's write lock serialises all):
the call's row first, then the rows of the agents on its live legs, by id
(lock_call takes both). A transaction that holds more than one call takes
them in id order, or skips a call another transaction holds
(routing.offer_waiting_calls). Reserving an agent never waits for another
transaction's agent row (primitives.availability.reserve_agent skips it), so
it cannot close a cycle either. A step that still loses a deadlock is run
once more by the webhook guard (app/voice/guard.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.logs import get_logger
from app.models import Activity, Agent, Call, CallStatus, Leg, LegRole, LegStatus, Transfer, utcnow
from app.primitives.availability import owe_wrap_up, release_agent
from app.primitives.context import Telephony
from app.states.calls import move_call
from app.states.legs import move_leg

log = get_logger("switchboard.legs")


# FOR NO KEY UPDATE: webhooks of one call take turns, while inserts that only
# reference the call (events, utterances: KEY SHARE) are not blocked by it.
# Every step of a call starts here, so the statements are built once: the call's row locked, then the call read
# afresh with its legs and its transfers, each collection whole, then its live legs' agents locked.
#
# Two statements, not one: a `SELECT … FOR UPDATE` that waits for the row reads what it joins as it was when it
# began (PostgreSQL re-reads only the locked row once it is free), so legs and transfers another step changed
# meanwhile would come back stale. The read after the lock is a statement of its own, which sees them.


def _locking(which, *, skip_locked: bool = False) -> object:
    """The id of the call WHICH names, its row locked (FOR NO KEY UPDATE); no row for none (SKIP_LOCKED: nor for
    one another transaction holds)."""
    return select(Call.id).where(Call.id == which).with_for_update(key_share=True, skip_locked=skip_locked)


_LOCK_CALL = _locking(bindparam("call"))
_LOCK_CALL_UNLESS_HELD = _locking(bindparam("call"), skip_locked=True)
# The call of the leg named by `leg`, found and locked in one statement.
_LOCK_CALL_OF_LEG = _locking(select(Leg.call_id).where(Leg.id == bindparam("leg")).scalar_subquery())
# The call whose room, or one of whose transfers' consult rooms, is named by `room` (a LiveKit event's).
_CALL_IN_ROOM = func.coalesce(
    select(Call.id).where(Call.room_name == bindparam("room")).limit(1).scalar_subquery(),
    select(Transfer.call_id).where(Transfer.consult_room == bindparam("room")).limit(1).scalar_subquery())
_LOCK_CALL_IN_ROOM = _locking(_CALL_IN_ROOM)
# That call's id, with its leg whose LiveKit identity is `identity` (its id, role and placement; None for none).
_FIND_IN_ROOM = (select(Call.id, Leg.id, Leg.role, Leg.placement).select_from(Call)
                 .outerjoin(Leg, (Leg.call_id == Call.id) & (Leg.livekit_identity == bindparam("identity")))
                 .where(Call.id == _CALL_IN_ROOM).order_by(Leg.id).limit(1))
# The locked call read afresh with its legs and transfers in one statement (the joins give a row per pair of a
# leg and a transfer: a handful for a call).
_READ_CALL = (select(Call).where(Call.id == bindparam("call"))
              .options(joinedload(Call.legs), joinedload(Call.transfers))
              .execution_options(populate_existing=True))
_LOCK_AGENTS = (select(Agent).where(Agent.id.in_(bindparam("agents", expanding=True))).order_by(Agent.id)
                .with_for_update(key_share=True).execution_options(populate_existing=True))
# session.info key: the calls a step has locked, by id (lock_call).
LOCKED_CALLS = "locked_calls"


def adopt_call_sid(leg: Leg, call_sid: str) -> None:
    """A phone leg Twilio was asked to dial (an agent's, a target's, an outbound call's customer), whose CallSid is
    not known yet (the answer to calls.create was lost, or Twilio's request came first), takes CALL_SID, the
    CallSid of Twilio's request about it. An inbound caller's leg always has its own."""
    if (call_sid and leg.twilio_call_sid is None and not is_browser_leg(leg)
            and leg.status == LegStatus.DIALING):
        leg.twilio_call_sid = call_sid
        log.info("leg_call_sid_adopted", leg_id=leg.id)


def lock_leg(t: Telephony, leg_id: int) -> Leg | None:
    """The leg, read after its call's lock is taken (lock_call), so it is what any other step left; None if unknown.

    Two steps of one call (the target accepting as the caller hangs up)
    take turns on PostgreSQL; SQLite's write lock already serialises them.
    """
    call = _locked(t, t.session.scalar(_LOCK_CALL_OF_LEG, {"leg": leg_id}))
    # The call's every leg has just been read afresh: this one is among them.
    return next((leg for leg in call.legs if leg.id == leg_id), None) if call is not None else None


def lock_call(t: Telephony, call_id: int, *, agents: bool = True) -> Call | None:
    """Take the call's row lock, then its live legs' agents' (by id), and read the call, legs and transfers afresh.

    AGENTS=False, for a step that writes no agent (a transcript chunk): their rows are neither locked nor read
    with the call, a statement fewer; a leg's agent is then read if the step asks for it."""
    return _locked(t, t.session.scalar(_LOCK_CALL, {"call": call_id}), agents=agents)


def lock_call_unless_held(t: Telephony, call_id: int) -> Call | None:
    """As lock_call, but None at once when another step holds the call (it goes on with the call itself): for
    work after a step's commit (offering freed agents) that must not wait on a call, and reads the call, its legs
    and transfers afresh (the session keeps what the step loaded, which other steps may have changed since)."""
    return _locked(t, t.session.scalar(_LOCK_CALL_UNLESS_HELD, {"call": call_id}))


def lock_call_in_room(t: Telephony, room: str) -> Call | None:
    """As lock_call, for the call whose LiveKit room, or whose transfer's consult room, is ROOM; None if none is."""
    return _locked(t, t.session.scalar(_LOCK_CALL_IN_ROOM, {"room": room}))


@dataclass(frozen=True)
class InRoom:
    """Who a LiveKit event names, found without a lock: the call's id and, when its identity is one of the
    call's legs', that leg's id, role and placement (else None)."""

    call_id: int
    leg_id: int | None
    role: str | None
    placement: int | None


def find_in_room(t: Telephony, room: str, identity: str | None) -> InRoom | None:
    """The call whose room (or a transfer's consult room) is ROOM, and its leg known to LiveKit as IDENTITY, in
    one statement that locks nothing: for a step that writes nothing of the call's (it only adds to its
    timeline), so it waits for no step of it. None when no call has that room."""
    found = t.session.execute(_FIND_IN_ROOM, {"room": room, "identity": identity}).first()
    return InRoom(*found) if found is not None else None


def _locked(t: Telephony, call_id: int | None, *, agents: bool = True) -> Call | None:
    """The call CALL_ID, whose row this step has just locked, read afresh; its live legs' agents locked next
    (not when AGENTS is False), and the call kept for the step."""
    if call_id is None:
        return None
    call = t.session.scalars(_READ_CALL, {"call": call_id}).unique().first()
    if call is not None:
        if agents:
            live = [leg for leg in call.legs if leg.agent_id is not None and not leg.is_final]
            locked = _lock_agents(t, {leg.agent_id for leg in live})
            for leg in live:
                # Each live leg holds its agent, as locked: the step's `leg.agent` costs no statement.
                if leg.agent_id in locked:
                    set_committed_value(leg, "agent", locked[leg.agent_id])
        # The session keeps only weak references: held here, the call, its legs and transfers (and the live legs'
        # agents) stay loaded for the whole step, and a step that reaches them again (leg.call, call.legs,
        # leg.agent) costs no statement.
        t.session.info.setdefault(LOCKED_CALLS, {})[call.id] = call
    return call


def _lock_agents(t: Telephony, agent_ids: set[int]) -> dict[int, Agent]:
    # In id order, after the call: whatever this step then writes of these
    # agents (freed, connected, set away) waits for nobody.
    if not agent_ids:
        return {}
    return {agent.id: agent for agent in t.session.scalars(_LOCK_AGENTS, {"agents": sorted(agent_ids)})}


RINGING_LEG_STATUSES = (LegStatus.DIALING, LegStatus.WHISPER)
# A caller still waiting for an agent (in the queue, or one is being rung).
WAITING_STATUSES = (CallStatus.QUEUED, CallStatus.RINGING_AGENT)


def browser_identity(agent: Agent) -> str:
    """The LiveKit identity of an agent in the browser (the console's token uses the same)."""
    return f"agent-{agent.extension}"


def is_browser_leg(leg: Leg) -> bool:
    """Whether this leg is a browser agent's (rung by their console, not by Twilio)."""
    return leg.role != LegRole.CALLER and leg.twilio_call_sid is None and leg.livekit_identity is not None


def ringing_leg(call: Call) -> Leg | None:
    """The agent leg currently ringing or whispering for this call, if any."""
    return next(
        (leg for leg in call.legs if leg.role == LegRole.AGENT and leg.status in RINGING_LEG_STATUSES), None
    )


def caller_leg(call: Call) -> Leg | None:
    """The caller's own leg."""
    return next((leg for leg in call.legs if leg.role == LegRole.CALLER), None)


def close_leg(t: Telephony, leg: Leg, status: str, reason: str, *, missed: bool = False,
              over_at_twilio: bool = False) -> None:
    """End a leg (once) and free its agent; a missed ring counts towards being set away.

    OVER_AT_TWILIO: Twilio itself reported the leg over (its final status
    callback). Otherwise a Twilio leg's agent is kept LEAVING until it does,
    so nobody rings a phone that still plays "Goodbye".
    """
    if leg.is_final:
        return
    was_ringing = leg.status in RINGING_LEG_STATUSES
    talked = leg.status in (LegStatus.CONNECTED, LegStatus.ON_HOLD)
    move_leg(leg, status, reason=reason)
    if talked and leg.agent is not None:
        owe_wrap_up(t, leg.agent, leg.call)
    if leg.agent is not None and (was_ringing or leg.agent.activity != Activity.IDLE):
        release_agent(t, leg.agent, missed=missed and was_ringing, call=leg.call,
                      until_twilio_confirms=bool(leg.twilio_call_sid) and not over_at_twilio)
    if leg.call.status == CallStatus.RINGING_AGENT and ringing_leg(leg.call) is None:
        move_call(t.session, leg.call, CallStatus.QUEUED)


# Twilio's `initiated` status callback for a call it placed arrives within a
# second or two: a dial whose answer was lost (effects.Dial) and that no
# webhook confirmed within this long was not placed.
UNCONFIRMED_DIAL_AFTER = timedelta(seconds=20)


def claim_expired_ring(t: Telephony, leg: Leg) -> bool:
    """A ringing leg nobody will report on any more, and this request is the one that claims it (True).

    A browser agent's ring past its timeout (nothing calls back for a
    browser), or a phone dial Twilio never confirmed within
    UNCONFIRMED_DIAL_AFTER (its answer was lost and no webhook came).
    """
    if not ring_expired(t, leg):
        return False
    # Claim the leg first: two workers may notice the same timeout at once. A CallSid recorded meanwhile (the
    # dial's answer came after all) means the ring is not given up here: its phone's callbacks will say.
    won = t.session.execute(
        update(Leg)
        .where(Leg.id == leg.id, Leg.status.in_(RINGING_LEG_STATUSES), Leg.twilio_call_sid.is_(None))
        .values(placement=Leg.placement + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    t.session.refresh(leg)
    return won == 1


def ring_expired(t: Telephony, leg: Leg) -> bool:
    """Whether LEG, as read, is a ring nobody will report on any more (see claim_expired_ring)."""
    return _browser_ring_expired(t, leg) or dial_unconfirmed(leg)


def dial_unconfirmed(leg: Leg) -> bool:
    """Whether LEG is a phone Twilio was asked to dial, long enough ago, with no word from Twilio since."""
    return (leg.status == LegStatus.DIALING and leg.twilio_call_sid is None and not is_browser_leg(leg)
            and utcnow() - leg.created_at >= UNCONFIRMED_DIAL_AFTER)


def ring_timeout_seconds(t: Telephony, leg: Leg) -> int:
    """How long LEG rings before it is given up: a transfer's target, or an agent offered a call."""
    return (t.settings.transfer_ring_timeout_seconds if leg.role == LegRole.TARGET
            else t.settings.agent_ring_timeout_seconds)


def _browser_ring_expired(t: Telephony, leg: Leg) -> bool:
    if not is_browser_leg(leg) or leg.status not in RINGING_LEG_STATUSES:
        return False
    return utcnow() - leg.created_at >= timedelta(seconds=ring_timeout_seconds(t, leg))


def agent_leg_of(call: Call, agent_id: int | None) -> Leg | None:
    """The live phone leg of this agent on this call."""
    return next(
        (
            leg
            for leg in call.legs
            if leg.agent_id == agent_id and leg.role in (LegRole.AGENT, LegRole.TARGET) and not leg.is_final
        ),
        None,
    )


def misfit(leg: Leg, call_sid: str, *, roles: tuple[str, ...], statuses: tuple[str, ...] | None) -> str | None:
    """Why a webhook for LEG does not fit where the leg is (None if it does).

    A webhook fits when it comes from the leg's own Twilio call, for a leg of
    one of ROLES, while the leg is in one of STATUSES (None: any). A replayed
    or late webhook (a whisper key after the agent was connected, an answer
    after the call moved on) does not, and must change nothing.
    """
    if leg.twilio_call_sid and call_sid and call_sid != leg.twilio_call_sid:
        return "callsid"
    if leg.role not in roles:
        return "role"
    if statuses is not None and leg.status not in statuses:
        return "state"
    return None
