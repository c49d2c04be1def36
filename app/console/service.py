"""What the agent console shows and does: the agent's offer, their live call, their transfer.

Everything is read from the database on every poll, so any worker can answer
it. A browser agent's ringing leg has no Twilio callbacks, so each poll also
enforces the ring timeout of every browser leg (reactions.expire_rings).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor, ActorKind
from app.agents.service import set_presence_and_offer
from app.calls import outbound, reactions
from app.kinds import SummarySource, TransferTrigger
from app.models import (
    LIVE_LEG_STATUSES,
    Activity,
    Agent,
    Callback,
    Leg,
    LegRole,
    LegStatus,
    Presence,
    Queue,
    Transfer,
    User,
    Utterance,
    utcnow,
)
from app.primitives import legs
from app.primitives.availability import end_wrap_up
from app.primitives.context import Telephony
from app.routing import service as routing
from app.routing.callbacks import offer_words
from app.states.transfers import active_transfer
from app.summaries.compose import SUMMARY_FIELDS
from app.summaries.redaction import redact
from app.telephony.numbers import DestinationRefused
from app.telephony.outcomes import Missed
from app.transfers import service as transfers
from app.transfers.actions import TRANSFER_ACTIONS, act_on_transfer, possible_actions
from app.transfers.outside import destination_kind
from app.transfers.summary import settle_summary


class ConsoleRefused(Exception):
    """A console action that cannot be done, with the reason in words."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AgentPlace:
    """The room an agent is in (or meant to be in) right now."""

    extension: str  # the agent's, which names them in the room (agent-<extension>)
    agent_name: str
    room: str
    call_sid: str


def current_room(session: Session, agent_id: int | None) -> AgentPlace | None:
    """The room of the agent's live leg on a live call, if any."""
    if agent_id is None:
        return None
    leg = session.scalar(
        select(Leg)
        .where(Leg.agent_id == agent_id, Leg.role.in_((LegRole.AGENT, LegRole.TARGET)),
               Leg.status.in_(LIVE_LEG_STATUSES), Leg.room_name.is_not(None))
        .order_by(Leg.id.desc())
    )
    if leg is None or leg.call.is_final:
        return None
    agent = session.get(Agent, agent_id)
    return AgentPlace(agent.extension, agent.name, leg.room_name, leg.call.call_sid)


def _live_legs(session: Session, agent_id: int) -> list[Leg]:
    legs = session.scalars(
        select(Leg)
        .where(Leg.agent_id == agent_id, Leg.role.in_((LegRole.AGENT, LegRole.TARGET)),
               Leg.status.in_(LIVE_LEG_STATUSES))
        .order_by(Leg.id.desc())
    ).all()
    return [leg for leg in legs if not leg.call.is_final]


def _offered_leg(session: Session, agent_id: int) -> Leg | None:
    return next((leg for leg in _live_legs(session, agent_id) if leg.status in legs.RINGING_LEG_STATUSES), None)


def _call_leg(session: Session, agent_id: int) -> Leg | None:
    return next((leg for leg in _live_legs(session, agent_id) if leg.status not in legs.RINGING_LEG_STATUSES),
                None)


def _seconds_since(moment) -> int:
    return max(0, int((utcnow() - moment).total_seconds())) if moment else 0


def summary_view(t: Telephony, transfer: Transfer) -> dict:
    """The transfer's summary for the screen; past the whisper's deadline the fallback is stored and shown."""
    settle_summary(t.session, transfer, since=transfer.created_at,
                   deadline_seconds=t.settings.summary_deadline_seconds)
    structured = transfer.summary_structured or {}
    return {
        "ready": transfer.summary_source is not None,
        "fallback": transfer.summary_source == SummarySource.FALLBACK,
        "spoken": transfer.summary_spoken or "",
        "fields": [{"label": label, "value": str(structured[key])} for key, label in SUMMARY_FIELDS
                   if structured.get(key)],
    }


def _kind(call) -> str:
    """What an agent's offer is: a caller's call, an outbound call they (or the API) placed, or a callback."""
    if call.callback_id:
        return "callback"
    return "outbound" if call.is_outbound else "call"


def _offer(t: Telephony, leg: Leg) -> dict:
    call = leg.call
    offer = {
        "leg_id": leg.id,
        "kind": _kind(call) if leg.role == LegRole.AGENT else "transfer",
        "in_browser": legs.is_browser_leg(leg),
        "caller": call.caller_shown,
        "queue": call.queue.name if call.queue else "",
        "reason": call.ivr_reason or "",
        "ringing_seconds": _seconds_since(leg.created_at),
        # What is left of the ring before it is given up (the console counts it down).
        "ring_seconds_left": max(0, legs.ring_timeout_seconds(t, leg) - _seconds_since(leg.created_at)),
        "transcript": _transcript(t.session, call),
    }
    callback = t.session.get(Callback, call.callback_id) if call.callback_id else None
    if callback is not None:
        offer["about"] = offer_words(callback, utcnow())  # who, for what, why, how long ago
    elif leg.role == LegRole.AGENT and (resumed := routing.resumed_words(call, leg)):
        offer["about"] = resumed  # a caller of theirs, cut off and back
    transfer = transfers.transfer_of_target_leg(leg) if leg.role == LegRole.TARGET else None
    if transfer is not None:
        offer.update(
            transfer_id=transfer.id,
            mode=transfer.mode,
            from_agent=transfer.from_agent.name if transfer.from_agent else "",
            notes=transfer.notes or "",
            notes_by=_notes_by(t.session, transfer),
            summary=summary_view(t, transfer),
        )
    return offer


def _notes_by(session: Session, transfer: Transfer) -> str:
    """Whose the transfer's notes are: the transferring agent's name when they asked for it (at their console or
    phone), otherwise who did, as the timeline names them (a supervisor's username, token:<name>)."""
    agent = transfer.from_agent
    who = transfer.requested_by
    if agent is None:
        return who or ""
    if not who or who == Actor(ActorKind.PHONE, agent.extension).label or session.scalar(
            select(User.id).where(User.username == who, User.agent_id == agent.id)) is not None:
        return agent.name
    return who


def _transfer_view(transfer: Transfer, agent_id: int) -> dict:
    target = transfer.target_leg.agent if transfer.target_leg and transfer.target_leg.agent else None
    if target is None:
        target = transfer.target_agent
    mine = transfer.from_agent_id == agent_id
    return {
        "id": transfer.id,
        "state": transfer.state,
        "mode": transfer.mode,
        "role": "from" if mine else "target",
        "from_agent": transfer.from_agent.name if transfer.from_agent else "",
        "target": target.name if target else (f"the {transfer.target_queue.name} queue"
                                              if transfer.target_queue else transfer.target_number or ""),
        **possible_actions(transfer, allowed=mine),
    }


def _handed_over(call, agent_id: int) -> Transfer | None:
    """The latest transfer of CALL that rang this agent: its summary stays on their screen for the whole call."""
    return next((transfer for transfer in reversed(call.transfers)
                 if transfer.target_leg is not None and transfer.target_leg.agent_id == agent_id), None)


# The transcript's lines the console keeps on screen during a call: the latest ones.
CONSOLE_TRANSCRIPT_LINES = 50


def _transcript(session: Session, call) -> list[dict]:
    """What the caller and the agents said on CALL (redacted when stored), the latest lines, oldest first."""
    lines = session.scalars(select(Utterance).where(Utterance.call_id == call.id)
                            .order_by(Utterance.id.desc()).limit(CONSOLE_TRANSCRIPT_LINES)).all()
    return [{"speaker": line.speaker, "text": line.text} for line in reversed(lines)]


def _live_call(t: Telephony, leg: Leg, agent_id: int) -> dict:
    call = leg.call
    transfer = active_transfer(call)
    handed_over = _handed_over(call, agent_id)
    return {
        "leg_id": leg.id,
        "call_sid": call.call_sid,
        "direction": call.direction,
        "caller": call.caller_shown,
        "queue": call.queue.name if call.queue else "",
        "reason": call.ivr_reason or "",
        "status": call.status,
        "leg_status": leg.status,
        "in_browser": legs.is_browser_leg(leg),
        "has_caller": call.agent_id == agent_id,
        # Only a connected leg is in a room: on hold (a swap) the browser leaves it.
        "room": leg.room_name if leg.status == LegStatus.CONNECTED else None,
        "duration_seconds": _seconds_since(leg.answered_at or call.answered_at),
        "transfer": _transfer_view(transfer, agent_id) if transfer is not None else None,
        # Kept on screen from the offer to the end of the call: the summary they were handed, and the transcript.
        "summary": summary_view(t, handed_over) if handed_over is not None else None,
        "notes": (handed_over.notes or "") if handed_over is not None else "",
        "notes_by": _notes_by(t.session, handed_over) if handed_over is not None else "",
        "transcript": _transcript(t.session, call),
    }


def console_state(t: Telephony, agent_id: int) -> dict:
    """Everything the console shows for this agent, read from the database now."""
    reactions.expire_rings(t)
    agent = t.session.get(Agent, agent_id)
    offered = _offered_leg(t.session, agent_id)
    live = _call_leg(t.session, agent_id)
    return {
        "agent": {
            "name": agent.name,
            "extension": agent.extension,
            "presence": agent.presence,
            "activity": agent.activity,
            "browser": not agent.sip_uri,
            "wrap_up_seconds_left": _wrap_up_left(agent),
            "dispositions": list(t.settings.disposition_codes),
        },
        "offer": _offer(t, offered) if offered is not None else None,
        "call": _live_call(t, live, agent_id) if live is not None else None,
    }


def _wrap_up_left(agent: Agent) -> int | None:
    if agent.activity != Activity.WRAP_UP or agent.wrap_up_until is None:
        return None
    return max(0, int((agent.wrap_up_until - utcnow()).total_seconds()))


# The longest after-call note kept.
WRAP_UP_NOTES_MAX = 1000


def finish_wrap_up(t: Telephony, agent_id: int, disposition: str, notes: str, *, by: Actor) -> None:
    """The agent is done with their after-call work: the disposition code and notes go on the call's timeline
    (card numbers and the like redacted), and they are offered the next call."""
    agent = t.session.get(Agent, agent_id)
    codes = t.settings.disposition_codes
    disposition = disposition.strip()
    if disposition and disposition not in codes:
        raise ConsoleRefused(f"the disposition must be one of {', '.join(codes)}", 400)
    if len(notes) > WRAP_UP_NOTES_MAX:
        raise ConsoleRefused(f"the notes are too long (at most {WRAP_UP_NOTES_MAX} characters)", 400)
    if not end_wrap_up(t, agent, "ready", by=by, disposition=disposition or None, notes=redact(notes.strip()) or None):
        raise ConsoleRefused("you are not in after-call work", 409)


def transfer_targets(session: Session, agent_id: int) -> list[tuple[str, str]]:
    """(code, label) of every other agent and every queue, for the transfer form's suggestions."""
    agents = session.scalars(select(Agent).where(Agent.id != agent_id).order_by(Agent.extension))
    queues = session.scalars(select(Queue).order_by(Queue.dtmf_code))
    return [(a.extension, f"{a.name} ({a.presence})") for a in agents] + [
        (q.dtmf_code, f"{q.name} queue") for q in queues
    ]


def change_presence(t: Telephony, agent_id: int, presence: str, *, by: Actor) -> Agent:
    """Set the signed-in agent's presence; made available, they are offered what waits for them at once."""
    if presence not in Presence.__members__.values():
        raise ConsoleRefused(f"presence must be one of {', '.join(Presence)}", 400)
    agent = t.session.get(Agent, agent_id)
    return set_presence_and_offer(t, agent.extension, presence, by=by)


def _my_leg(t: Telephony, agent_id: int, leg_id: int) -> Leg:
    # The call is locked first, so an accept or a hang-up racing the caller's
    # own hang-up acts on what that step left.
    leg = legs.lock_leg(t, leg_id)
    if leg is None or leg.agent_id != agent_id:
        raise ConsoleRefused("that call is not yours", 404)
    return leg


def _offered(t: Telephony, agent_id: int, leg_id: int) -> Leg:
    leg = _my_leg(t, agent_id, leg_id)
    if not legs.is_browser_leg(leg):
        raise ConsoleRefused("this call rings on your phone: answer it there")
    if reactions.expire_ring(t, leg):
        raise ConsoleRefused("too late: it was not answered in time and went to someone else")
    if leg.is_final or leg.call.is_final:
        raise ConsoleRefused("the offer is over: the caller hung up or it went to someone else")
    return leg


def accept_offer(t: Telephony, agent_id: int, leg_id: int) -> str:
    """Take the call or transfer offered in the browser, as pressing 1 in the whisper does."""
    leg = _offered(t, agent_id, leg_id)
    if leg.status not in legs.RINGING_LEG_STATUSES:
        return "already accepted"
    if leg.role == LegRole.AGENT:
        if reactions.agent_answered(t, leg) is None:
            raise ConsoleRefused("the caller is no longer waiting")
        leg.room_name = leg.call.room_name
        if not reactions.agent_accepted(t, leg):
            raise ConsoleRefused("the caller hung up before you were connected")
        return "connected to the caller"
    if transfers.target_answered(t, leg) is None:
        raise ConsoleRefused("the transfer is over")
    outcome = transfers.target_accepted(t, leg)
    if outcome == transfers.Accepted.GONE:
        raise ConsoleRefused("the transfer is over")
    if outcome == transfers.Accepted.CONSULT:
        return "consulting with the transferring agent"
    return "connected to the caller"


def decline_offer(t: Telephony, agent_id: int, leg_id: int) -> None:
    """Decline the call or transfer offered in the browser, as pressing 2 in the whisper does."""
    leg = _offered(t, agent_id, leg_id)
    if leg.status not in legs.RINGING_LEG_STATUSES:
        raise ConsoleRefused("you have already accepted it")
    if leg.role == LegRole.AGENT:
        reactions.agent_declined(t, leg, pressed="console")
    else:
        transfers.target_declined(t, leg, Missed.DECLINED)


def hang_up(t: Telephony, agent_id: int, leg_id: int) -> None:
    """Leave the call from the browser, as hanging up the phone does."""
    leg = _my_leg(t, agent_id, leg_id)
    if not legs.is_browser_leg(leg):
        raise ConsoleRefused("you are on this call by phone: hang up there")
    if leg.is_final:
        return
    if leg.status in legs.RINGING_LEG_STATUSES:
        raise ConsoleRefused("the call is still being offered: accept or decline it")
    reactions.agent_left(t, leg)


def call_customer(t: Telephony, agent_id: int, number: str, reason: str, *, by: Actor) -> str:
    """Place an outbound call from the signed-in agent: their phone rings first (they press 1), or, in the
    browser, they are taken as having answered and the customer is dialled at once; what the console says."""
    agent = t.session.get(Agent, agent_id)
    try:
        call = outbound.place_call(t, agent, number, reason=reason, by=by)
    except outbound.OutboundRefused as refusal:
        raise ConsoleRefused(str(refusal)) from None
    if agent.sip_uri:
        return f"Your phone is ringing: answer it and press 1 to call {call.to_number}."
    leg = legs.agent_leg_of(call, agent_id)
    reactions.agent_answered(t, leg)
    reactions.agent_accepted(t, leg)
    return f"Calling {call.to_number}."


def _my_live_call_leg(t: Telephony, agent_id: int) -> Leg:
    leg = _call_leg(t.session, agent_id)
    if leg is None:
        raise ConsoleRefused("you have no call in progress")
    return leg


def _outside_target(t: Telephony, text: str) -> transfers.Target:
    """The outside number or SIP URI typed; a malformed one is refused here (400), one not allowed when started."""
    try:
        kind = destination_kind(text)
    except DestinationRefused as refusal:
        raise ConsoleRefused(str(refusal), 400) from None
    return transfers.find_target(t.session, **{kind: text})


def transfer_call(t: Telephony, agent_id: int, code: str, mode: str, notes: str | None, *, by: Actor,
                  outside: str = "") -> Transfer:
    """Transfer the agent's own live call to an extension or a queue, or to an OUTSIDE number or SIP URI."""
    leg = _my_live_call_leg(t, agent_id)
    call = leg.call
    if call.agent_id != agent_id:
        raise ConsoleRefused("only the agent with the caller can transfer the call")
    try:
        target = _outside_target(t, outside) if outside else transfers.resolve_target(t, code)
        return transfers.start_transfer(t, call, target, mode=mode, trigger=TransferTrigger.WEB, by=by,
                                         notes=notes, agent_id=agent_id)
    except transfers.TransferRefused as refusal:
        raise ConsoleRefused(str(refusal)) from None


def finish_transfer(t: Telephony, agent_id: int, transfer_id: int, action: str, *, by: Actor) -> str:
    """Complete, cancel, make three-way or swap the transfer the agent started; what the console says."""
    transfer = t.session.get(Transfer, transfer_id)
    if transfer is None or transfer.from_agent_id != agent_id:
        raise ConsoleRefused("that transfer is not yours", 404)
    if action not in TRANSFER_ACTIONS:
        raise ConsoleRefused(f"there is no transfer action {action[:20]!r}", 404)
    try:
        act_on_transfer(t, transfer_id, action, by=by)
    except transfers.TransferRefused as refusal:
        raise ConsoleRefused(str(refusal)) from None
    return TRANSFER_ACTIONS[action].told_agent
