"""Routing: reserve the longest-idle available agent with the skill, ring them, handle the answer.

A SIP agent is rung by Twilio; a browser agent (no SIP URI) is "rung" by
writing their leg, which their console polls. Nothing calls back for a
browser leg, so its ring timeout is enforced by whoever looks at it next
(reactions.expire_rings).

An agent is reserved by a compare-and-set UPDATE (idle -> ringing) that only
one transaction can win, on PostgreSQL (row lock) and on SQLite (whose write
lock is taken at BEGIN), so no agent ever gets two calls. The reservation is
committed before Twilio is asked to dial, so the agent's callbacks always
find it.

Locks are taken in the order app/primitives/legs.py names: the call, then its
agents by id; the reservation skips an agent row someone else holds. After
a request, offer_waiting_calls locks the calls it put back in id order and
skips a waiting call another transaction holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Select, select

from app.events import record_event
from app.logs import get_logger
from app.models import Activity, Agent, Call, CallStatus, Leg, LegRole, LegStatus, Queue, utcnow
from app.primitives.availability import free_agent_skills, reserve_agent
from app.primitives.context import Telephony
from app.primitives.legs import (
    RINGING_LEG_STATUSES,
    WAITING_STATUSES,
    caller_leg,
    claim_expired_ring,
    close_leg,
    is_browser_leg,
    lock_call,
    lock_call_unless_held,
    ringing_leg,
)
from app.primitives.moves import redirect_leg
from app.primitives.ringing import ring_leg
from app.routing.callbacks import callbacks_ahead_of, minutes_words
from app.routing.ivr import speakable_number
from app.states.agents import move_activity
from app.states.calls import move_call
from app.states.legs import move_leg, new_leg
from app.states.transfers import waiting_at
from app.telephony.outcomes import Missed

log = get_logger("switchboard.routing")



# An agent who let a call go is not offered it again for this long, so the
# next agent gets a turn; after it they may be offered it again.
RETRY_SAME_AGENT_AFTER = timedelta(seconds=30)


def tried_agent_ids(call: Call) -> set[int]:
    """Agents ringing for this call now, or who let it go less than RETRY_SAME_AGENT_AFTER ago."""
    now = utcnow()
    return {
        leg.agent_id
        for leg in call.legs
        if leg.role == LegRole.AGENT
        and leg.agent_id is not None
        and (not leg.is_final or (leg.ended_at is not None and now - leg.ended_at < RETRY_SAME_AGENT_AFTER))
    }


def offer_call(t: Telephony, call: Call) -> Leg | None:
    """Ring the next agent for a waiting call; None when nobody with the skill is free."""
    if call.status not in WAITING_STATUSES or call.queue is None:
        return None
    already = ringing_leg(call)
    if already is not None:
        if not claim_expired_ring(t, already):
            return already
        ring_given_up(t, already, offer_next=False)
    if t.dials_left <= 0:  # past the request's budget the hold loop tries again
        return None
    # Who goes first, asked in one statement: each line is usually empty.
    transfer_waiting, callback_ahead, higher_waiting = t.session.execute(select(
        waiting_at([call.queue.skill]).exists(),
        callbacks_ahead_of(call.queue.skill, call.queued_at or call.created_at, utcnow()).exists(),
        _waiting_at_higher_priority(call).exists(),
    )).one()
    if transfer_waiting:
        # A transfer waiting at this queue goes first (transfers.offer_waiting_transfers, or its caller's
        # next hold turn); this caller waits on.
        move_call(t.session, call, CallStatus.QUEUED)
        return None
    if callback_ahead:
        # A callback asked for before this caller queued keeps its place: offered first (the follow-up).
        move_call(t.session, call, CallStatus.QUEUED)
        t.callbacks_due = True
        return None
    higher = _higher_priority_caller(t, call) if higher_waiting else None
    if higher is not None:
        # A caller of a queue with a higher priority, whom the same free agents serve, goes first: offered in
        # the follow-up, after this step commits; this caller waits on.
        move_call(t.session, call, CallStatus.QUEUED)
        t.requeued_call_ids.add(higher)
        return None
    agent = _resume_agent(t, call)
    if agent is None:
        agent = reserve_agent(t.session, skill=call.queue.skill, exclude=tried_agent_ids(call))
    if agent is None:
        move_call(t.session, call, CallStatus.QUEUED)
        return None
    leg = new_leg(t.session, call, LegRole.AGENT, agent=agent)
    move_call(t.session, call, CallStatus.RINGING_AGENT, "agent_ringing", agent=agent.extension, leg_id=leg.id,
              browser=not agent.sip_uri)
    ring_agent(t, leg, agent)
    return leg


def _higher_priority_caller(t: Telephony, call: Call) -> int | None:
    """A waiting caller of a queue with a higher priority than CALL's that a free agent of CALL's skill would
    serve too (the longest waiting of the highest such queue); None when there is none."""
    # Asked when the (usually empty) higher-priority line has callers: the free agents are read once.
    waiting = t.session.execute(_waiting_at_higher_priority(call).add_columns(Queue.skill)).all()
    if not waiting:
        return None
    skills_of_mine = [set(skills) for skills in free_agent_skills(t.session, call.queue.skill)]
    for call_id, skill in waiting:
        if any(skill in skills for skills in skills_of_mine):
            return call_id
    return None


def _waiting_at_higher_priority(call: Call) -> Select:
    """The ids of the callers waiting in a queue of a higher priority than CALL's, the highest queue's
    longest-waiting first."""
    return (select(Call.id).join(Queue, Call.queue_id == Queue.id)
            .where(Call.status == CallStatus.QUEUED, Queue.priority > call.queue.priority, Call.id != call.id)
            .order_by(Queue.priority.desc(), Call.queued_at, Call.id))


def _resume_agent(t: Telephony, call: Call) -> Agent | None:
    """A caller cut off and back (calls/resume.py) goes first to the agent who had them, if they are free and
    were not rung for this call yet; None otherwise (the queue's next agent)."""
    if call.resume_agent_id is None:
        return None
    if any(leg.agent_id == call.resume_agent_id for leg in call.legs if leg.role == LegRole.AGENT):
        return None
    return reserve_agent(t.session, agent_id=call.resume_agent_id)


def offer_waiting_calls(t: Telephony) -> int:
    """After a request committed: calls it put back in the queue ring their next agent, and agents it freed
    take the longest-waiting calls for their skills; returns calls offered."""
    offered = 0
    for call_id in sorted(t.requeued_call_ids):
        call = lock_call(t, call_id)
        if call is not None and offer_call(t, call) is not None:
            offered += 1
    t.requeued_call_ids.clear()
    for agent_id in sorted(t.freed_agent_ids):
        agent = t.session.get(Agent, agent_id)
        if agent is None or not agent.is_free:
            continue
        # The highest priority queue's caller first, then the longest waiting (Queue.priority).
        waiting = t.session.scalars(
            select(Call.id).join(Queue, Call.queue_id == Queue.id).where(Call.status == CallStatus.QUEUED)
            .order_by(Queue.priority.desc(), Call.queued_at, Call.id)
        ).all()
        for call_id in waiting:
            # Skip a call whose own webhook holds it right now (it offers the
            # call itself); waiting for it could deadlock on the agent's row.
            call = lock_call_unless_held(t, call_id)
            if call is None or call.status != CallStatus.QUEUED or call.queue is None:
                continue
            if call.queue.skill not in (agent.skills or []):
                continue
            still_ringing = t.session.scalar(
                select(Leg.id).where(Leg.call_id == call.id, Leg.role == LegRole.AGENT,
                                     Leg.status.in_(RINGING_LEG_STATUSES))
            )
            if still_ringing is None and offer_call(t, call) is not None:
                offered += 1
            break
    t.freed_agent_ids.clear()
    return offered


@dataclass(frozen=True)
class Whisper:
    """What an answering agent hears before accepting (a key then accepts or declines)."""

    words: str


def ring_agent(t: Telephony, leg: Leg, agent: Agent) -> None:
    """Ring AGENT, reserved for LEG (an inbound call's offer, an outbound call's first ring), for
    AGENT_RING_TIMEOUT_SECONDS; their phone's answer plays the whisper."""
    ring_leg(t, leg, agent, answer_url=t.urls.agent_answer(leg.id), status_url=t.urls.agent_status(leg.id),
             fallback_url=t.urls.agent_fallback(leg.id), timeout=t.settings.agent_ring_timeout_seconds)


def agent_picked_up(t: Telephony, leg: Leg) -> None:
    """The agent's ringing leg was answered (their phone, or their console's Accept): it hears the whisper."""
    if leg.status == LegStatus.DIALING:
        move_leg(leg, LegStatus.WHISPER)
        leg.answered_at = utcnow()
        record_event(t.session, leg.call, "agent_answered", agent=leg.agent.extension, leg_id=leg.id)


def agent_answered(t: Telephony, leg: Leg) -> Whisper | None:
    """The agent picked up: the whisper to play, or None if the caller is no longer waiting."""
    call = leg.call
    if leg.is_final or call.status not in WAITING_STATUSES:
        close_leg(t, leg, LegStatus.CANCELED, "caller_gone")
        return None
    agent_picked_up(t, leg)
    queue = call.queue.name if call.queue else "no queue"
    return Whisper(f"{resumed_words(call, leg)}Call from {speakable_number(call.from_number)}, for {queue}. "
                   f"The caller said: {call.ivr_reason or 'no reason given'}. Press 1 to accept, 2 to decline.")


def resumed_words(call: Call, leg: Leg) -> str:
    """What the agent a cut-off caller comes back to hears first: that they were cut off, and when."""
    if call.resume_agent_id is None or leg.agent_id != call.resume_agent_id or call.resumed_from is None:
        return ""
    ended = call.resumed_from.ended_at
    if not ended:
        return ""
    # Their number is what brought them back: say whether their carrier vouched for it (STIR/SHAKEN A), since
    # a caller ID is easy to fake.
    vouched = ("Their carrier verified their number. " if call.caller_attestation == "A"
               else "Their number is not verified: confirm who they are. ")
    return f"This caller was cut off {minutes_words(ended, utcnow())} and called back. {vouched}"


def agent_accepted(t: Telephony, leg: Leg) -> bool:
    """The agent pressed 1: connect them and move the caller into the room. False if the caller is gone."""
    call = leg.call
    if leg.status == LegStatus.CONNECTED:
        return True
    if leg.is_final or call.status not in WAITING_STATUSES:
        close_leg(t, leg, LegStatus.CANCELED, "caller_gone")
        return False
    now = utcnow()
    move_leg(leg, LegStatus.CONNECTED)
    agent = leg.agent
    move_activity(agent, Activity.ON_CALL)
    agent.missed_in_row = 0
    call.agent_id = agent.id
    call.answered_at = call.answered_at or now
    move_call(t.session, call, CallStatus.CONNECTED, "agent_accepted", agent=agent.extension, leg_id=leg.id)
    # If Twilio refuses the move (named): the caller's hold loop sees the call
    # connected and joins the room on its next turn. If the caller is already
    # gone, their status callback tells the agent.
    redirect_leg(t, caller_leg(call), t.urls.caller_connect(call.id),
                 if_failed="caller_connect_left_to_hold_loop", if_gone="caller_gone_before_connect")
    return True


def decline_leg(t: Telephony, leg: Leg, pressed: str) -> None:
    """Close an offered agent leg its agent declined with PRESSED, or let go with no key (a miss)."""
    missed = pressed == ""
    close_leg(t, leg, LegStatus.DECLINED, "no_key" if missed else "declined", missed=missed)


def agent_declined(t: Telephony, leg: Leg, *, pressed: str) -> None:
    """The agent declined in the whisper (or pressed nothing): offer the call to the next agent."""
    if leg.is_final:
        return
    decline_leg(t, leg, pressed)
    record_event(t.session, leg.call, "agent_declined", agent=leg.agent.extension, pressed=pressed or "nothing")
    offer_call(t, leg.call)


def ring_given_up(t: Telephony, leg: Leg, *, offer_next: bool = True) -> None:
    """A ring claimed by legs.claim_expired_ring: a browser agent let it ring out (a miss), or Twilio never
    confirmed the dial (a failed dial, not the agent's miss); then the next agent."""
    call = leg.call
    if not is_browser_leg(leg):
        agent_dial_failed(t, leg, "no word from Twilio about the call", offer_next=offer_next)
        return
    close_leg(t, leg, LegStatus.NO_ANSWER, Missed.NO_ANSWER, missed=True)
    record_event(t.session, call, "agent_missed", agent=leg.agent.extension, status=Missed.NO_ANSWER, browser=True)
    if offer_next:
        offer_call(t, call)


def agent_dial_failed(t: Telephony, leg: Leg, error: str, *, offer_next: bool = True) -> None:
    """Twilio refused (or never confirmed) the dial of an agent's phone: the next agent, not this one at once."""
    close_leg(t, leg, LegStatus.FAILED, "dial_failed")
    if leg.agent_id is not None:
        t.freed_agent_ids.discard(leg.agent_id)  # not offered the call again in this request
    record_event(t.session, leg.call, "agent_dial_failed", agent=leg.agent.extension if leg.agent else None,
                 error=error)
    if offer_next:
        offer_call(t, leg.call)
