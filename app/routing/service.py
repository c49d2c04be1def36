"""Routing: reserve the longest-idle available agent with the skill, ring them, handle the answer.

A SIP agent is rung by Twilio; a browser agent (no SIP URI) is "rung" by
writing their leg, which their console polls. Nothing calls back for a
browser leg, so its ring timeout is enforced by whoever looks at it next
(expire_browser_legs).

An agent is reserved by a compare-and-set UPDATE (idle -> ringing) that only
one transaction can win, on PostgreSQL (row lock, re-checked after the
winner commits) and on SQLite (whose write lock is taken at BEGIN), so no
agent ever gets two calls. The reservation is committed before Twilio is
asked to dial, so the agent's callbacks always find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable

from sqlalchemy import select, update

from app.events import record_event
from app.logs import get_logger
from app.models import Activity, Agent, Call, CallStatus, Leg, LegRole, LegStatus, Presence, utcnow
from app.telephony.context import Telephony
from app.telephony.moves import FAILED, GONE, redirect_leg

log = get_logger("switchboard.routing")

WAITING_STATUSES = (CallStatus.QUEUED, CallStatus.RINGING_AGENT)
RINGING_LEG_STATUSES = (LegStatus.DIALING, LegStatus.WHISPER)
TWILIO_MISSED = {"no-answer": LegStatus.NO_ANSWER, "busy": LegStatus.BUSY, "failed": LegStatus.FAILED,
                 "canceled": LegStatus.CANCELED}


def reserve_agent(session, skill: str, exclude: Iterable[int] = ()) -> Agent | None:
    """Reserve (idle -> ringing) the longest-idle available agent with SKILL; None if nobody is free."""
    excluded = set(exclude)
    candidates = session.execute(
        select(Agent.id, Agent.skills)
        .where(Agent.presence == Presence.AVAILABLE, Agent.activity == Activity.IDLE)
        .order_by(Agent.last_call_ended_at.asc().nulls_first(), Agent.id)
    ).all()
    for agent_id, skills in candidates:
        if agent_id in excluded or skill not in (skills or []):
            continue
        won = session.execute(
            update(Agent)
            .where(Agent.id == agent_id, Agent.activity == Activity.IDLE, Agent.presence == Presence.AVAILABLE)
            .values(activity=Activity.RINGING)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            agent = session.get(Agent, agent_id)
            session.refresh(agent)
            return agent
    return None


def release_agent(t: Telephony, agent: Agent | None, *, missed: bool = False, call: Call | None = None) -> None:
    """Make an agent idle again; a missed call counts towards being set away."""
    if agent is None:
        return
    agent.activity = Activity.IDLE
    agent.last_call_ended_at = utcnow()
    t.freed_agent_ids.add(agent.id)
    if not missed:
        return
    agent.missed_in_row += 1
    limit = t.settings.missed_calls_before_away
    if limit and agent.missed_in_row >= limit and agent.presence == Presence.AVAILABLE:
        agent.presence = Presence.AWAY
        record_event(t.session, call, "agent_set_away", agent=agent.extension, missed_in_row=agent.missed_in_row)


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


def offer_call(t: Telephony, call: Call) -> Leg | None:
    """Ring the next agent for a waiting call; None when nobody with the skill is free."""
    if call.status not in WAITING_STATUSES or call.queue is None:
        return None
    already = ringing_leg(call)
    if already is not None and not expire_browser_leg(t, already, offer_next=False):
        return already
    excluded = tried_agent_ids(call)
    while t.dials_left > 0:  # past the request's budget the hold loop tries again
        agent = reserve_agent(t.session, call.queue.skill, excluded)
        if agent is None:
            call.status = CallStatus.QUEUED
            return None
        excluded.add(agent.id)
        leg = Leg(call_id=call.id, role=LegRole.AGENT, agent_id=agent.id, status=LegStatus.DIALING)
        t.session.add(leg)
        call.status = CallStatus.RINGING_AGENT
        t.session.flush()
        record_event(t.session, call, "agent_ringing", agent=agent.extension, leg_id=leg.id,
                     browser=not agent.sip_uri)
        failure = ring_leg(t, leg, agent, answer_url=t.urls.agent_answer(leg.id),
                           status_url=t.urls.agent_status(leg.id), timeout=t.settings.agent_ring_timeout_seconds)
        if failure is None:
            return leg
        record_event(t.session, call, "agent_dial_failed", agent=agent.extension, error=failure)
        call.status = CallStatus.QUEUED
    return None


def offer_waiting_calls(t: Telephony) -> int:
    """Agents freed during this request take the longest-waiting calls for their skills; returns calls offered."""
    offered = 0
    for agent_id in sorted(t.freed_agent_ids):
        agent = t.session.get(Agent, agent_id)
        if agent is None or agent.presence != Presence.AVAILABLE or agent.activity != Activity.IDLE:
            continue
        waiting = t.session.scalars(
            select(Call.id).where(Call.status == CallStatus.QUEUED).order_by(Call.queued_at, Call.id)
        ).all()
        for call_id in waiting:
            # Skip a call whose own webhook holds it right now (it offers the
            # call itself); waiting for it could deadlock on the agent's row.
            call = t.session.get(Call, call_id, populate_existing=True,
                                 with_for_update={"key_share": True, "skip_locked": True})
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


def ring_leg(t: Telephony, leg: Leg, agent: Agent, *, answer_url: str, status_url: str, timeout: int) -> str | None:
    """Ring AGENT for LEG; None when it rings, else why Twilio could not place the call (leg failed, agent freed).

    A browser agent's console finds the leg by polling, so nothing is dialled;
    a phone is dialled only after the leg is committed, so its callbacks find it.
    """
    from app.gateways.twilio import TwilioError

    if not agent.sip_uri:
        leg.livekit_identity = browser_identity(agent)
        t.session.flush()
        return None
    t.dials_left -= 1
    t.session.commit()
    try:
        leg.twilio_call_sid = t.twilio.create_call(
            to=agent.sip_uri,
            from_=t.settings.twilio_phone_number or leg.call.to_number,
            url=answer_url,
            status_callback=status_url,
            timeout_seconds=timeout,
            # Any of this call's steps that fails or times out resumes it where it is.
            fallback_url=t.urls.agent_fallback(leg.id),
        )
        t.session.flush()
        return None
    except TwilioError as error:
        leg.status = LegStatus.FAILED
        leg.end_reason = "dial_failed"
        leg.ended_at = utcnow()
        release_agent(t, agent)
        t.freed_agent_ids.discard(agent.id)  # not free to be dialled again in this request
        return str(error)[:200]


@dataclass(frozen=True)
class Whisper:
    """What an answering agent hears before accepting."""

    caller: str
    queue: str
    reason: str


def agent_answered(t: Telephony, leg: Leg) -> Whisper | None:
    """The agent picked up: the whisper to play, or None if the caller is no longer waiting."""
    call = leg.call
    if leg.is_final or call.status not in WAITING_STATUSES:
        close_leg(t, leg, LegStatus.CANCELED, "caller_gone")
        return None
    if leg.status == LegStatus.DIALING:
        leg.status = LegStatus.WHISPER
        leg.answered_at = utcnow()
        record_event(t.session, call, "agent_answered", agent=leg.agent.extension, leg_id=leg.id)
    from app.calls.ivr import speakable_number

    return Whisper(
        caller=speakable_number(call.from_number),
        queue=call.queue.name if call.queue else "no queue",
        reason=call.ivr_reason or "no reason given",
    )


def agent_accepted(t: Telephony, leg: Leg) -> bool:
    """The agent pressed 1: connect them and move the caller into the room. False if the caller is gone."""
    call = leg.call
    if leg.status == LegStatus.CONNECTED:
        return True
    if leg.is_final or call.status not in WAITING_STATUSES:
        close_leg(t, leg, LegStatus.CANCELED, "caller_gone")
        return False
    now = utcnow()
    leg.status = LegStatus.CONNECTED
    agent = leg.agent
    agent.activity = Activity.ON_CALL
    agent.missed_in_row = 0
    call.status = CallStatus.CONNECTED
    call.agent_id = agent.id
    call.answered_at = call.answered_at or now
    record_event(t.session, call, "agent_accepted", agent=agent.extension, leg_id=leg.id)
    moved = redirect_leg(t, caller_leg(call), t.urls.caller_connect(call.id))
    if moved == FAILED:
        # Fallback, named: the caller's hold loop sees the call connected and
        # joins the room on its next turn.
        record_event(t.session, call, "caller_connect_left_to_hold_loop")
        return True
    if moved == GONE:
        record_event(t.session, call, "caller_gone_before_connect")
        return False
    return True


def agent_declined(t: Telephony, leg: Leg, *, pressed: str) -> None:
    """The agent declined in the whisper (or pressed nothing): offer the call to the next agent."""
    if leg.is_final:
        return
    missed = pressed == ""
    close_leg(t, leg, LegStatus.DECLINED, "no_key" if missed else "declined", missed=missed)
    record_event(t.session, leg.call, "agent_declined", agent=leg.agent.extension, pressed=pressed or "nothing")
    t.session.commit()
    offer_call(t, leg.call)


def agent_leg_status(t: Telephony, leg: Leg, status: str) -> None:
    """A status callback for an agent's phone leg."""
    call = leg.call
    if leg.is_final:
        return
    if status in TWILIO_MISSED:
        close_leg(t, leg, TWILIO_MISSED[status], status, missed=status != "canceled")
        record_event(t.session, call, "agent_missed", agent=leg.agent.extension, status=status)
        t.session.commit()
        offer_call(t, call)
    elif status == "completed":
        if leg.status in RINGING_LEG_STATUSES:
            # Hung up during the whisper: the same as declining.
            close_leg(t, leg, LegStatus.DECLINED, "hung_up_in_whisper", missed=True)
            record_event(t.session, call, "agent_hung_up_in_whisper", agent=leg.agent.extension)
            t.session.commit()
            offer_call(t, call)
        else:
            agent_left(t, leg)


def _browser_ring_expired(t: Telephony, leg: Leg) -> bool:
    if not is_browser_leg(leg) or leg.status not in RINGING_LEG_STATUSES:
        return False
    timeout = (t.settings.transfer_ring_timeout_seconds if leg.role == LegRole.TARGET
               else t.settings.agent_ring_timeout_seconds)
    return utcnow() - leg.created_at >= timedelta(seconds=timeout)


def expire_browser_leg(t: Telephony, leg: Leg, *, offer_next: bool = True) -> bool:
    """A browser leg rang past its timeout: treat it as no answer (as Twilio's callback would); True if it did."""
    if not _browser_ring_expired(t, leg):
        return False
    # Claim the leg first: two workers may notice the same timeout at once.
    won = t.session.execute(
        update(Leg)
        .where(Leg.id == leg.id, Leg.status.in_(RINGING_LEG_STATUSES))
        .values(placement=Leg.placement + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    t.session.refresh(leg)
    if won != 1:
        return False
    if leg.role == LegRole.TARGET:
        from app.transfers.service import target_declined

        target_declined(t, leg, "no-answer")
        return True
    call = leg.call
    close_leg(t, leg, LegStatus.NO_ANSWER, "no-answer", missed=True)
    record_event(t.session, call, "agent_missed", agent=leg.agent.extension, status="no-answer", browser=True)
    if offer_next:
        t.session.commit()
        offer_call(t, call)
    return True


def expire_browser_legs(t: Telephony) -> int:
    """Treat every browser leg rung past its timeout as no answer; returns how many."""
    ringing = t.session.scalars(
        select(Leg)
        .where(Leg.status.in_(RINGING_LEG_STATUSES), Leg.twilio_call_sid.is_(None), Leg.livekit_identity.is_not(None))
        .order_by(Leg.id)
    ).all()
    return sum(expire_browser_leg(t, leg) for leg in ringing)


def agent_left(t: Telephony, leg: Leg) -> None:
    """A connected agent hung up: the caller, alone in the room, is thanked and the call ends."""
    from app.transfers.service import agent_left_during_transfer

    call = leg.call
    close_leg(t, leg, LegStatus.ENDED, "agent_hung_up")
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


def star_pressed(t: Telephony, leg: Leg) -> bool:
    """An agent's <Dial> into the call's room ended as `*` does: was it `*`, or did the far side drop?

    Twilio reports both as DialCallStatus=completed (hangupOnStar). After a
    `*` the caller is still in the room; when LiveKit closed the room or
    dropped the call's SIP legs, the caller is not. If LiveKit cannot be
    asked, `*` is assumed (named in the timeline).
    """
    from app.gateways.livekit import LiveKitError

    call = leg.call
    caller = caller_leg(call)
    if caller is None or caller.is_final or caller.livekit_identity is None or t.livekit_gateway is None:
        return True
    t.session.commit()  # no transaction (SQLite's write lock) across the API call
    try:
        present = {p.identity for p in t.livekit.list_participants(call.room_name)}
    except LiveKitError as error:
        if error.code == "not_found":
            present = set()
        else:
            record_event(t.session, call, "star_assumed_livekit_unreachable", leg_id=leg.id, error=str(error)[:200])
            return True
    if caller.livekit_identity in present:
        return True
    record_event(t.session, call, "agent_bridge_dropped", leg_id=leg.id, room=call.room_name,
                 caller_in_room=False)
    return False


def caller_leg(call: Call) -> Leg | None:
    """The caller's own leg."""
    return next((leg for leg in call.legs if leg.role == LegRole.CALLER), None)


def close_leg(t: Telephony, leg: Leg, status: str, reason: str, *, missed: bool = False) -> None:
    """End a leg (once) and free its agent; a missed ring counts towards being set away."""
    if leg.is_final:
        return
    was_ringing = leg.status in RINGING_LEG_STATUSES
    leg.status = status
    leg.end_reason = reason
    leg.ended_at = utcnow()
    if leg.agent is not None and (was_ringing or leg.agent.activity != Activity.IDLE):
        release_agent(t, leg.agent, missed=missed and was_ringing, call=leg.call)
    if leg.call.status == CallStatus.RINGING_AGENT and ringing_leg(leg.call) is None:
        leg.call.status = CallStatus.QUEUED
