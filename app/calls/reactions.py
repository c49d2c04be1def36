"""What happens when an agent answers, ends or goes quiet: the reactions that concern routing, transfers and
outbound calls together.

Routing, transfers and outbound calls each know their own part; a leg
ending during a transfer is the transfer's, an outbound call's agent leg
before its customer answered is the outbound call's, otherwise the call's
routing decides. This module sits above them, so none imports another to react.
"""

from __future__ import annotations

from sqlalchemy import select

from app.calls import outbound
from app.events import record_event
from app.models import (
    LIVE_LEG_STATUSES,
    Activity,
    CallStatus,
    Event,
    Leg,
    LegRole,
    LegStatus,
)
from app.primitives.availability import release_agent
from app.primitives.context import Telephony
from app.primitives.legs import (
    RINGING_LEG_STATUSES,
    caller_leg,
    claim_expired_ring,
    close_leg,
    is_browser_leg,
    lock_leg,
    ring_expired,
)
from app.primitives.moves import redirect_leg
from app.routing import service as routing
from app.routing.service import Whisper, agent_dial_failed, offer_call, ring_given_up
from app.states.calls import move_call
from app.telephony.outcomes import CallProgress, Missed
from app.transfers.service import (
    agent_left_during_transfer,
    target_declined,
    target_dial_failed,
)


def _before_the_customer(leg: Leg) -> bool:
    """Whether LEG is an outbound call's agent leg before the customer answered (the outbound call's to react to)."""
    return leg.role == LegRole.AGENT and leg.call.is_outbound and leg.call.status == CallStatus.DIALING


def agent_answered(t: Telephony, leg: Leg) -> Whisper | None:
    """The agent picked up an offered call: the whisper (a caller's, or where an outbound call goes); None when
    it is over."""
    if leg.call.is_outbound:
        return outbound.agent_answered(t, leg)
    return routing.agent_answered(t, leg)


def agent_accepted(t: Telephony, leg: Leg) -> bool:
    """The agent took the call: connected to the caller, or an outbound call's customer dialled; False when over."""
    if leg.call.is_outbound:
        return outbound.agent_accepted(t, leg)
    return routing.agent_accepted(t, leg)


def agent_declined(t: Telephony, leg: Leg, *, pressed: str) -> None:
    """The agent declined an offered call: the caller's next agent, or the outbound call is not made."""
    if leg.call.is_outbound:
        outbound.agent_declined(t, leg, pressed=pressed)
    else:
        routing.agent_declined(t, leg, pressed=pressed)


def agent_leg_status(t: Telephony, leg: Leg, progress: CallProgress) -> None:
    """A status callback for an agent's phone leg."""
    call = leg.call
    if leg.is_final:
        if progress.is_final:
            leg_confirmed_over(t, leg)
        return
    if progress.is_final and _before_the_customer(leg):
        missed = Missed.of(progress) if progress.unanswered else None
        outbound.agent_gone(t, leg, missed.leg_status if missed else LegStatus.ENDED,
                            missed or "agent_hung_up", missed=bool(missed and missed.agent_missed_it),
                            over_at_twilio=True)
        return
    if progress.unanswered:
        missed = Missed.of(progress)
        close_leg(t, leg, missed.leg_status, missed, missed=missed.agent_missed_it, over_at_twilio=True)
        record_event(t.session, call, "agent_missed", agent=leg.agent.extension, status=missed)
        offer_call(t, call)
    elif progress == CallProgress.COMPLETED:
        if leg.status in RINGING_LEG_STATUSES:
            # Hung up during the whisper: the same as declining.
            close_leg(t, leg, LegStatus.DECLINED, "hung_up_in_whisper", missed=True, over_at_twilio=True)
            record_event(t.session, call, "agent_hung_up_in_whisper", agent=leg.agent.extension)
            offer_call(t, call)
        else:
            agent_left(t, leg, over_at_twilio=True)


def target_leg_status(t: Telephony, leg: Leg, progress: CallProgress) -> None:
    """A status callback for a transfer target's phone leg."""
    if leg.is_final:
        if progress.is_final:
            leg_confirmed_over(t, leg)
        return
    if progress.unanswered:
        target_declined(t, leg, Missed.of(progress), over_at_twilio=True)
    elif progress == CallProgress.COMPLETED:
        if leg.status in RINGING_LEG_STATUSES:
            target_declined(t, leg, Missed.DECLINED, over_at_twilio=True)
        else:
            agent_leg_status(t, leg, CallProgress.COMPLETED)


def leg_confirmed_over(t: Telephony, leg: Leg) -> None:
    """Twilio reports a leg the service had already ended as over: an agent kept for it (LEAVING) is free."""
    agent = leg.agent
    if agent is None or agent.activity != Activity.LEAVING:
        return
    still_live = t.session.scalar(
        select(Leg.id).where(Leg.agent_id == agent.id, Leg.id != leg.id, Leg.status.in_(LIVE_LEG_STATUSES))
    )
    if still_live is None:
        release_agent(t, agent)
        record_event(t.session, leg.call, "agent_free_after_leg_over", agent=agent.extension, leg_id=leg.id)


def agent_left(t: Telephony, leg: Leg, *, over_at_twilio: bool = False) -> None:
    """A connected agent hung up: the caller, alone in the room, is thanked and the call ends."""
    call = leg.call
    close_leg(t, leg, LegStatus.ENDED, "agent_hung_up", over_at_twilio=over_at_twilio)
    record_event(t.session, call, "agent_left", agent=leg.agent.extension if leg.agent else None)
    if agent_left_during_transfer(t, leg):
        return
    if call.status != CallStatus.CONNECTED or call.agent_id != leg.agent_id:
        return
    staying = next(
        (other for other in call.legs
         if other.role != LegRole.CALLER and other.status == LegStatus.CONNECTED and other.room_name == call.room_name),
        None,
    )
    if staying is not None:
        # After a three-way call the other agent keeps the caller.
        call.agent_id = staying.agent_id
        record_event(t.session, call, "call_agent_changed", agent=staying.agent.extension)
        return
    caller = caller_leg(call)
    if caller is not None and not caller.is_final:
        redirect_leg(t, caller, t.urls.caller_goodbye(call.id))


def expire_rings(t: Telephony) -> int:
    """Give up every ring nobody will report on any more: browser legs past their timeout, phone dials Twilio never
    confirmed (legs.claim_expired_ring); returns how many."""
    ringing = t.session.scalars(
        select(Leg)
        .where(Leg.status.in_(RINGING_LEG_STATUSES), Leg.twilio_call_sid.is_(None))
        .order_by(Leg.id)
    ).all()
    return sum(expire_ring(t, leg) for leg in ringing)


def expire_ring(t: Telephony, leg: Leg) -> bool:
    """A ring this request claimed as given up: no answer (a browser), a failed dial (a phone); True if it was.

    LEG may have been read without its call's lock (expire_rings' scan): once it looks expired, the call is
    locked as every step of it is (lock_leg, which reads the leg again), so a step of the same call (the caller
    hanging up) either came first and the ring is over, or comes after and sees what giving it up did (the next
    target rung, the transfer moved).
    """
    if not ring_expired(t, leg):
        return False
    leg = lock_leg(t, leg.id)
    if leg is None or not claim_expired_ring(t, leg):
        return False
    if _before_the_customer(leg):
        if is_browser_leg(leg):
            outbound.agent_gone(t, leg, LegStatus.NO_ANSWER, Missed.NO_ANSWER, missed=True)
        else:
            outbound.agent_gone(t, leg, LegStatus.FAILED, "dial_failed")
    elif leg.role == LegRole.CALLER:
        # An outbound call's customer whose dial Twilio never confirmed.
        outbound.customer_unanswered(t, leg, Missed.FAILED)
    elif leg.role == LegRole.TARGET:
        if is_browser_leg(leg):
            target_declined(t, leg, Missed.NO_ANSWER)
        else:
            target_dial_failed(t, leg, "no word from Twilio about the call")
    else:
        ring_given_up(t, leg)
    return True


def dial_refused(t: Telephony, leg: Leg, error: str) -> None:
    """Twilio refused to place the call for LEG (effects.Dial), after the step committed: as a failed call."""
    if leg.is_final or leg.status != LegStatus.DIALING or leg.twilio_call_sid:
        return
    if _before_the_customer(leg):
        outbound.agent_gone(t, leg, LegStatus.FAILED, "dial_failed")
    elif leg.role == LegRole.CALLER:
        outbound.customer_unanswered(t, leg, Missed.FAILED)
    elif leg.role == LegRole.TARGET:
        target_dial_failed(t, leg, error)
    else:
        agent_dial_failed(t, leg, error)


# How often an agent's <Dial> into their call's room may go unanswered (LiveKit refusing or never answering it)
# before their leg is given up and the caller goes to another agent.
MAX_ROOM_ATTEMPTS = 3


def room_attempts_exhausted(t: Telephony, leg: Leg) -> bool:
    """Whether LEG, an agent's leg meant to be in its call's room with the caller, has failed to get in
    MAX_ROOM_ATTEMPTS times (each an `agent_room_unanswered`); a leg in a consult room keeps trying."""
    call = leg.call
    if leg.role != LegRole.AGENT or leg.room_name != call.room_name or call.agent_id != leg.agent_id:
        return False
    tries = t.session.scalars(select(Event.detail).where(Event.call_id == call.id,
                                                         Event.name == "agent_room_unanswered")).all()
    return sum(1 for detail in tries if (detail or {}).get("leg_id") == leg.id) >= MAX_ROOM_ATTEMPTS


def agent_never_reached_the_room(t: Telephony, leg: Leg, why: str) -> None:
    """An agent who took the call never got into its room (their browser's media never connected; LiveKit kept
    refusing their phone): their leg fails (not their miss), and a caller they had goes back to the queue,
    keeping their place, to be offered to the next agent, rather than waiting on in an empty room."""
    call = leg.call
    if _before_the_customer(leg):
        outbound.agent_gone(t, leg, LegStatus.FAILED, why)
        return
    close_leg(t, leg, LegStatus.FAILED, why)
    record_event(t.session, call, "agent_media_failed", agent=leg.agent.extension if leg.agent else None,
                 leg_id=leg.id, why=why)
    others = [other for other in call.legs
              if other.role != LegRole.CALLER and other.status == LegStatus.CONNECTED and other.id != leg.id]
    if call.status != CallStatus.CONNECTED or call.agent_id != leg.agent_id or others:
        return
    caller = caller_leg(call)
    call.agent_id = None
    if call.queue is None:
        # An outbound call's customer has no queue to wait in: they are told the agent is gone.
        redirect_leg(t, caller, t.urls.caller_goodbye(call.id))
        return
    move_call(t.session, call, CallStatus.QUEUED, "call_requeued", why=why)
    redirect_leg(t, caller, t.urls.caller_wait(call.id))
    t.requeued_call_ids.add(call.id)
