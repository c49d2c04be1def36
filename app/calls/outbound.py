"""Outbound calls: an agent dials a customer, from the console or the API, and the call is a call like any other.

The agent is rung first (a phone hears where the call goes and presses 1;
a browser agent placing the call from the console is taken as answered),
then Twilio dials the customer from TWILIO_PHONE_NUMBER into the call's
room, where the agent already is. The customer's leg is the call's caller
leg, so holds, transfers, transcripts and summaries work on it as on any
caller's. Only numbers OUTBOUND_CALL_ALLOW names are dialled
(telephony/numbers.py): a refused number rings nobody, the agent included.

The call is DIALING until the customer answers (CONNECTED), and ends
UNANSWERED when they do not (busy, no answer, a failed number: the agent is
told and freed) or FAILED when the agent never took it. A callback's
attempt (routing/callbacks.py) is such a call, told each ending.
"""

from __future__ import annotations

import json
import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor, ActorKind
from app.calls.service import end_call
from app.events import record_event
from app.logs import get_logger
from app.models import (
    Activity,
    Agent,
    Call,
    Callback,
    CallStatus,
    Leg,
    LegRole,
    LegStatus,
    Presence,
    utcnow,
)
from app.primitives.availability import reserve_agent
from app.primitives.context import Telephony
from app.primitives.effects import close_room, hang_up, open_room
from app.primitives.legs import caller_leg, close_leg
from app.primitives.moves import redirect_leg
from app.primitives.ringing import OutsideDial, ring_leg
from app.routing.callbacks import (
    AttemptOutcome,
    attempt_ended,
    attempt_started,
    offer_words,
)
from app.routing.ivr import speakable_number
from app.routing.service import Whisper, agent_picked_up, decline_leg, ring_agent
from app.states.agents import move_activity
from app.states.calls import move_call, new_outbound_call
from app.states.legs import move_leg, new_leg
from app.summaries.redaction import redact
from app.telephony.numbers import DestinationRefused, allowed_number
from app.telephony.outcomes import CallProgress, Missed
from app.telephony.sip import call_room_user, leg_identity, room_name
from app.text import ascii_digits
from app.transfers.parties import Prompt

log = get_logger("switchboard.outbound")

# An outbound call's own name (Call.call_sid): Twilio's CallSids start with CA, so ours never meet one.
OUTBOUND_SID_PREFIX = "OB"
NOT_ENABLED = "outbound calls are not enabled (OUTBOUND_CALL_ALLOW names no prefix)"
# The longest reason kept with the call (read to the agent, shown on pages).
REASON_LIMIT = 200


class OutboundRefused(Exception):
    """An outbound call that is not placed, with the reason in words; nothing was rung."""


def check_number(t: Telephony, text: str) -> str:
    """The E.164 number TEXT names, if OUTBOUND_CALL_ALLOW lets outbound calls dial it; OutboundRefused otherwise."""
    try:
        return allowed_number(text, t.settings.outbound_call_allow, off=NOT_ENABLED, what="outbound calls")
    except DestinationRefused as refusal:
        raise OutboundRefused(str(refusal)) from None


def refusal(t: Telephony, number: str) -> str | None:
    """Why an outbound call to NUMBER would be refused before any agent is asked, in words; None if it would not."""
    try:
        check_number(t, number)
        _check_our_number(t)
    except OutboundRefused as refused:
        return str(refused)
    return None


def place_call(t: Telephony, agent: Agent, number: str, *, reason: str | None, by: Actor) -> Call:
    """Place an outbound call from AGENT to NUMBER: checked, then the agent rung (OutboundRefused if it cannot be).

    BY is who asked (the agent at the console, a supervisor, an API token), the timeline's `by`.
    """
    customer = check_number(t, number)
    _check_our_number(t)
    if agent.presence != Presence.AVAILABLE:
        raise OutboundRefused(f"{agent.name} ({agent.extension}) is {agent.presence}: only an available agent "
                              "places calls")
    if reserve_agent(t.session, agent_id=agent.id) is None:
        raise OutboundRefused(f"{agent.name} ({agent.extension}) is busy ({agent.activity}): try again when they "
                              "are free")
    return _ring_agent_first(t, agent, customer, reason=redact((reason or "").strip()[:REASON_LIMIT]) or None,
                             by=by)


def callback_number(t: Telephony, callback: Callback) -> str:
    """The number CALLBACK dials, if it may be dialled now; OutboundRefused otherwise (the allow-list changed)."""
    customer = check_number(t, callback.number)
    _check_our_number(t)
    return customer


def place_callback(t: Telephony, callback: Callback, agent: Agent, customer: str) -> Call:
    """An attempt of CALLBACK to CUSTOMER (its callback_number), offered to AGENT, reserved for it: an outbound
    call whose agent is told who, why and how long ago."""
    return _ring_agent_first(t, agent, customer, reason=callback.reason, by=Actor(ActorKind.SERVICE, "callback"),
                             callback=callback)


def _check_our_number(t: Telephony) -> None:
    if not t.settings.twilio_phone_number:
        raise OutboundRefused("TWILIO_PHONE_NUMBER is not set: an outbound call needs the number it comes from")


def _ring_agent_first(t: Telephony, agent: Agent, customer: str, *, reason: str | None, by: Actor,
                      callback: Callback | None = None) -> Call:
    call = _new_call(t, agent, customer, reason=reason, by=by, callback=callback)
    leg = new_leg(t.session, call, LegRole.AGENT, agent=agent)
    record_event(t.session, call, "agent_ringing", agent=agent.extension, leg_id=leg.id, browser=not agent.sip_uri)
    ring_agent(t, leg, agent)
    return call


def _new_call(t: Telephony, agent: Agent, customer: str, *, reason: str | None, by: Actor,
              callback: Callback | None = None) -> Call:
    call = new_outbound_call(t.session, OUTBOUND_SID_PREFIX + uuid.uuid4().hex, t.settings.twilio_phone_number,
                             customer)
    call.ivr_reason = reason
    call.queue_id = callback.queue_id if callback is not None else None
    call.room_name = room_name(t.settings, call_room_user(call.id))
    record_event(t.session, call, "outbound_call_placed", number=customer, agent=agent.extension, by=by.label,
                 reason=call.ivr_reason, callback_id=callback.id if callback is not None else None)
    if callback is not None:
        attempt_started(t, callback, call, agent.extension)
    open_room(t, call, call.room_name, metadata=json.dumps({"call_sid": call.call_sid}))
    return call


def agent_of_phone(session: Session, from_uri: str, sip_username: str) -> Agent | None:
    """The roster agent whose phone FROM_URI is (its sip_uri, user and host; any parameters or port aside), and,
    when Twilio authenticated the INVITE by a credential list, whose SIP user is SIP_USERNAME; None otherwise."""
    phone = _sip_address(from_uri)
    if phone is None or (sip_username and phone[0] != sip_username):
        return None
    for agent in session.scalars(select(Agent).where(Agent.sip_uri.is_not(None))):
        if _sip_address(agent.sip_uri) == phone:
            return agent
    return None


def number_dialled(to_uri: str) -> str:
    """The number an agent's phone dialled, from its SIP To URI (sip:+15551230199@domain); digits alone are read
    as E.164 without its plus, as desk phones often send them."""
    user = (_sip_address(to_uri) or ("", ""))[0]
    return "+" + user if ascii_digits(user) else user


def place_call_from_phone(t: Telephony, agent: Agent, number: str, call_sid: str) -> Leg:
    """AGENT dialled NUMBER on their phone (its call CALL_SID, already answered): checked as any outbound call,
    then their leg goes into the new call's room and the customer is dialled (OutboundRefused if not)."""
    customer = check_number(t, number)
    _check_our_number(t)
    if agent.presence != Presence.AVAILABLE:
        raise OutboundRefused(f"you are {agent.presence}: set yourself available to place calls")
    if reserve_agent(t.session, agent_id=agent.id) is None:
        raise OutboundRefused(f"you are busy ({agent.activity})")
    call = _new_call(t, agent, customer, reason=None, by=Actor(ActorKind.PHONE, agent.extension))
    leg = new_leg(t.session, call, LegRole.AGENT, agent=agent, twilio_call_sid=call_sid)
    agent_picked_up(t, leg)
    agent_accepted(t, leg)
    return leg


def _sip_address(uri: str) -> tuple[str, str] | None:
    # (user, host) of sip:user@host[:port][;params], the host in lower case; None for anything else.
    match = re.match(r"^sips?:([^@;:]+)@([^;:>]+)", (uri or "").strip().strip("<>"), re.IGNORECASE)
    return (match[1], match[2].lower()) if match else None


def _still_to_dial(call: Call) -> bool:
    # The agent's part comes first: once the customer's leg exists, the agent took the call.
    return call.status == CallStatus.DIALING and caller_leg(call) is None


def agent_answered(t: Telephony, leg: Leg) -> Whisper | None:
    """The agent picked up: where the call goes, and the keys; None when the call is over."""
    call = leg.call
    if leg.is_final or not _still_to_dial(call):
        close_leg(t, leg, LegStatus.CANCELED, "call_over")
        return None
    agent_picked_up(t, leg)
    callback = t.session.get(Callback, call.callback_id) if call.callback_id else None
    if callback is not None:
        return Whisper(f"{offer_words(callback, utcnow())} Press 1 to call them now, 2 to decline.")
    about = f" About: {call.ivr_reason}." if call.ivr_reason else ""
    return Whisper(f"Outbound call to {speakable_number(call.to_number)}.{about} "
                   "Press 1 to call them now, 2 to cancel.")


def agent_accepted(t: Telephony, leg: Leg) -> bool:
    """The agent pressed 1 (or placed the call in the browser): they join the room and the customer is dialled.
    False when the call is over."""
    call = leg.call
    if leg.status == LegStatus.CONNECTED:
        return True
    if leg.is_final or not _still_to_dial(call):
        close_leg(t, leg, LegStatus.CANCELED, "call_over")
        return False
    move_leg(leg, LegStatus.CONNECTED)
    leg.answered_at = leg.answered_at or utcnow()
    leg.room_name = call.room_name
    agent = leg.agent
    move_activity(agent, Activity.ON_CALL)
    agent.missed_in_row = 0
    call.agent_id = agent.id
    customer = new_leg(t.session, call, LegRole.CALLER)
    record_event(t.session, call, "customer_dialling", agent=agent.extension, number=call.to_number,
                 leg_id=customer.id)
    ring_leg(t, customer, None, outside=OutsideDial(call.to_number, detect_machine=False), answer_url=t.urls.customer_answer(customer.id),
             status_url=t.urls.customer_status(customer.id), fallback_url=t.urls.customer_fallback(customer.id),
             timeout=t.settings.outbound_ring_timeout_seconds)
    return True


def agent_declined(t: Telephony, leg: Leg, *, pressed: str) -> None:
    """The agent pressed another key (or none) instead of 1: the call is not made."""
    if leg.is_final:
        return
    decline_leg(t, leg, pressed)
    _fail(t, leg.call, "agent_declined", agent=leg.agent.extension, pressed=pressed or "nothing")


def agent_gone(t: Telephony, leg: Leg, status: str, reason: str, *, missed: bool = False,
               over_at_twilio: bool = False) -> None:
    """The agent's leg ended before the customer answered (not answered, busy, a failed dial, hung up): the
    customer's ringing phone, if any, is cancelled and the call fails."""
    call = leg.call
    close_leg(t, leg, status, reason, missed=missed, over_at_twilio=over_at_twilio)
    customer = caller_leg(call)
    if customer is not None and not customer.is_final:
        close_leg(t, customer, LegStatus.CANCELED, "agent_left")
        if customer.twilio_call_sid:
            hang_up(t, call, customer.twilio_call_sid, leg_id=customer.id)
    _fail(t, call, "agent_left_before_customer", agent=leg.agent.extension if leg.agent else None, ended=reason)


def _fail(t: Telephony, call: Call, why: str, **detail) -> None:
    if call.is_final:
        return
    move_call(t.session, call, CallStatus.FAILED, "outbound_call_failed", why=why, **detail)
    close_room(t, call, call.room_name)
    attempt_ended(t, call, AttemptOutcome.NOT_RUNG)


def customer_answered(t: Telephony, leg: Leg) -> str | None:
    """The customer picked up: they join the room; the room, or None when the agent left meanwhile."""
    call = leg.call
    if leg.is_final or call.is_final:
        close_leg(t, leg, LegStatus.CANCELED, "agent_left")
        return None
    if leg.status == LegStatus.DIALING:
        now = utcnow()
        move_leg(leg, LegStatus.CONNECTED)
        leg.answered_at = now
        call.answered_at = call.answered_at or now
        move_call(t.session, call, CallStatus.CONNECTED, "customer_answered", leg_id=leg.id)
        attempt_ended(t, call, AttemptOutcome.REACHED)
    leg.room_name = call.room_name
    leg.livekit_identity = leg_identity(leg.id)
    return call.room_name


def customer_unanswered(t: Telephony, leg: Leg, missed: Missed) -> None:
    """The customer did not answer (busy, no answer, the number failed): the agent is told and freed."""
    call = leg.call
    close_leg(t, leg, missed.leg_status, missed, over_at_twilio=True)
    if call.is_final:
        return
    move_call(t.session, call, CallStatus.UNANSWERED, "customer_unanswered", status=missed)
    attempt_ended(t, call, AttemptOutcome.UNANSWERED)
    for agent_leg in call.legs:
        if agent_leg.role == LegRole.CALLER or agent_leg.is_final:
            continue
        close_leg(t, agent_leg, LegStatus.ENDED, "customer_unanswered")
        redirect_leg(t, agent_leg, t.urls.agent_rejoin(agent_leg.id, Prompt.CUSTOMER_UNANSWERED),
                     hang_up_otherwise=True)
    # After the agent was told: a browser agent leaves with the room.
    close_room(t, call, call.room_name)


def customer_status(t: Telephony, leg: Leg, progress: CallProgress) -> None:
    """A status callback of the customer's leg: unanswered ends the call so; a hang-up after talking ends it as a
    caller's hang-up does."""
    if leg.is_final or not progress.is_final:
        return
    if progress.unanswered:
        customer_unanswered(t, leg, Missed.of(progress))
    elif leg.status == LegStatus.DIALING:
        # Completed without an answer the service saw (its answer webhook never came): not answered for us.
        customer_unanswered(t, leg, Missed.NO_ANSWER)
    else:
        end_call(t, leg.call, progress)
