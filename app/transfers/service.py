"""Warm and blind transfers: one state machine for DTMF, the web form and the JSON API.

Parties are moved as app/transfers/parties.py does it (write where they
belong; Twilio is told once the step is committed), so a redirect that
arrives late or twice lands where the database says, and every path ends
with the caller connected to a person or told what happens next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.actors import Actor, by_detail
from app.database import link_loaded
from app.events import record_event
from app.hours import opening_words
from app.kinds import TransferMode, TransferTrigger
from app.logs import get_logger
from app.models import (
    Activity,
    Agent,
    Call,
    CallStatus,
    Event,
    Leg,
    LegRole,
    LegStatus,
    Queue,
    Transfer,
    TransferState,
    utcnow,
)
from app.primitives.availability import free_agents, reserve_agent, staffed_agents
from app.primitives.context import Telephony
from app.primitives.effects import close_room, hang_up, open_room, start_summary
from app.primitives.legs import (
    RINGING_LEG_STATUSES,
    agent_leg_of,
    claim_expired_ring,
    close_leg,
    dial_unconfirmed,
    lock_call,
    lock_call_unless_held,
)
from app.primitives.ringing import OutsideDial, ring_leg
from app.states.agents import move_activity
from app.states.legs import move_leg, new_leg
from app.states.transfers import (
    active_transfer,
    move_transfer,
    new_transfer,
    place_in_line,
    waiting_transfers,
)
from app.summaries.redaction import redact
from app.telephony.numbers import E164, DestinationRefused
from app.telephony.outcomes import Answerer, Missed
from app.telephony.sip import consult_room_user, room_name
from app.text import ascii_digits
from app.transfers.outside import (
    check_number,
    check_sip_uri,
    send_digits_for,
    split_extension,
)
from app.transfers.parties import (
    Prompt,
    hold_agent,
    hold_caller,
    place_agent,
    release_agent_leg,
    requeue_caller,
    unhold_caller,
)
from app.transfers.summary import settle_summary

log = get_logger("switchboard.transfers")


class TransferRefused(Exception):
    """A transfer request that cannot be carried out, with the reason in words."""


@dataclass(frozen=True)
class Target:
    """Who a transfer goes to: one agent, the next free agent of a queue, or an outside number or SIP URI.

    An outside destination is held as it was given until refuse_target has
    checked it against the allow-list (app/transfers/outside.py).
    """

    agent: Agent | None = None
    queue: Queue | None = None
    number: str | None = None
    sip_uri: str | None = None

    @property
    def outside(self) -> str | None:
        """The outside destination as given, if this is one."""
        return self.number or self.sip_uri

    @property
    def label(self) -> str:
        if self.agent is not None:
            return self.agent.name
        if self.outside:
            return self.outside.strip()[:60]
        return f"the {self.queue.name} queue" if self.queue else "nobody"


def find_target(session: Session, *, extension: str | None = None, queue: str | None = None,
                number: str | None = None, sip_uri: str | None = None) -> Target:
    """The agent with EXTENSION, the queue named or numbered QUEUE, or an outside NUMBER or SIP_URI.

    TransferRefused if no agent or queue matches; an outside destination is
    checked later, by refuse_target.
    """
    if number:
        return Target(number=number)
    if sip_uri:
        return Target(sip_uri=sip_uri)
    if extension:
        agent = session.scalar(select(Agent).where(Agent.extension == extension.strip()))
        if agent is None:
            raise TransferRefused(f"no agent has extension {extension}")
        return Target(agent=agent)
    if queue:
        key = queue.strip().lower()
        found = session.scalar(select(Queue).where((Queue.name == key) | (Queue.dtmf_code == key)))
        if found is None:
            raise TransferRefused(f"no queue is named or numbered {queue}")
        return Target(queue=found)
    raise TransferRefused("give a target: an agent's extension, a queue, a number or a SIP URI")


# The longest run of keys a refusal says back: the longest extension (queue codes are at most 4 digits).
LONGEST_CODE_SAID = 6


def resolve_target(t: Telephony, code: str) -> Target:
    """What keys name: an extension (2-6 digits) or a queue code (1-4 digits); TransferRefused otherwise."""
    code = code.strip()
    if not ascii_digits(code):
        raise TransferRefused("enter an extension or a queue number")
    try:
        return find_target(t.session, extension=code)
    except TransferRefused:
        pass
    try:
        return find_target(t.session, queue=code)
    except TransferRefused:
        # Said back key by key when it is short; a long run of keys (a card number typed by mistake) is never
        # repeated: the refusal goes to the timeline, the log and the transfer's end reason.
        said = " ".join(code) if len(code) <= LONGEST_CODE_SAID else "that"
        raise TransferRefused(f"{said} is not an extension or a queue") from None


def open_transfer(t: Telephony, call: Call, from_leg: Leg, *, trigger: TransferTrigger, by: Actor,
                  notes: str | None = None) -> Transfer:
    """Begin a transfer: one per call. The caller stays where they are until a target is chosen.

    A `*` may be a dropped leg read as a key (LiveKit ending the agent's SIP
    participant looks the same to Twilio's <Dial>), and an agent may leave
    the menu without choosing: neither may cost the caller hold music, nor
    start a summary of them. choose_target holds the caller and starts the
    summary once the target is rung or waited for."""
    trigger = TransferTrigger(trigger)
    refuse_opening(call, from_leg)
    transfer = new_transfer(
        t.session, call, mode=TransferMode.WARM, trigger=trigger, from_agent_id=from_leg.agent_id,
        # Notes are the caller's data like the transcript: redacted before they are stored, shown or sent.
        notes=redact((notes or "").strip()[:2000]) or None, requested_by=by.label,
    )
    try:
        with t.session.begin_nested():
            t.session.add(transfer)
    except IntegrityError:
        raise TransferRefused("a transfer is already under way for this call") from None
    link_loaded(call, "transfers", transfer, "call")  # the call's transfers, as the step sees them, include it
    record_event(t.session, call, "transfer_requested", transfer=transfer, trigger=trigger,
                 from_agent=from_leg.agent.extension, by=by.label)
    return transfer


def refuse_opening(call: Call, from_leg: Leg | None) -> None:
    """TransferRefused, with the reason, if this call cannot start a transfer now (nothing is touched)."""
    if call.is_final:
        raise TransferRefused("the call has ended")
    if active_transfer(call) is not None:
        raise TransferRefused("a transfer is already under way for this call")
    if call.status != CallStatus.CONNECTED:
        raise TransferRefused(f"the call is {call.status.replace('_', ' ')}, not connected to an agent")
    if from_leg is not None and not from_leg.is_final and from_leg.agent_id is None:
        raise TransferRefused("the call is with an outside party: only an agent can transfer it")
    if from_leg is None or from_leg.is_final or from_leg.agent_id is None:
        raise TransferRefused("the transferring agent is not on the call")


def refuse_target(t: Telephony, from_agent_id: int | None, target: Target, mode: TransferMode) -> None:
    """TransferRefused, with the reason, if TARGET cannot take the call now (a look: nothing is touched)."""
    if mode not in set(TransferMode):
        raise TransferRefused("the mode must be warm or blind")
    if target.outside:
        outside_destination(t, target)
    elif target.agent is not None:
        if target.agent.id == from_agent_id:
            raise TransferRefused("you cannot transfer a call to yourself")
        if not target.agent.is_free:
            raise TransferRefused(f"{target.agent.name} is not available")
    elif target.queue is not None:
        closed = _closed_until(t, target.queue)
        if closed is not None:
            raise TransferRefused(f"{target.label} is closed{closed}")
        # A queue whose agents are all busy takes the transfer to wait there; one with nobody signed in
        # and available (all away or offline) cannot.
        if not staffed_agents(t.session, target.queue.skill, exclude={from_agent_id}):
            raise TransferRefused(f"nobody at {target.label} is available")
    else:
        raise TransferRefused("give a target: an agent's extension, a queue, a number or a SIP URI")


def _closed_until(t: Telephony, queue: Queue) -> str | None:
    """None while QUEUE is within its business hours; else when it opens again, as words to follow "closed"
    ("; it opens again Monday at 9 AM", or nothing when it does not open within the year)."""
    now = utcnow()
    hours = queue.opening_hours(t.settings.centre_timezone)
    if hours.is_open(now):
        return None
    opens = hours.next_opening(now)
    return f"; it opens again {opening_words(opens, now)}" if opens is not None else ""


def outside_destination(t: Telephony, target: Target) -> str:
    """The normalised number or SIP URI of an outside TARGET, if the allow-list lets it be rung; else TransferRefused."""
    try:
        if target.number:
            return check_number(t.settings, target.number)
        return check_sip_uri(t.settings, target.sip_uri or "")
    except DestinationRefused as refusal:
        raise TransferRefused(str(refusal)) from None


def choose_target(t: Telephony, transfer: Transfer, target: Target, mode: TransferMode) -> None:
    """Set the target and mode and ring the target; TransferRefused (transfer unchanged) if impossible."""
    if transfer.state != TransferState.REQUESTED:
        raise TransferRefused(f"the transfer is already {transfer.state}")
    refuse_target(t, transfer.from_agent_id, target, mode)
    transfer.mode = mode
    transfer.target_agent_id = target.agent.id if target.agent else None
    transfer.target_queue_id = target.queue.id if target.queue else None
    transfer.target_number = outside_destination(t, target) if target.outside else None
    t.session.expire(transfer, ["target_agent", "target_queue"])  # read again, from the identity map, when asked
    # Only with a target rung or waited for does the caller hear hold music and the summary begin; the hold
    # comes first among what the step does outside (the caller's music starts before the target's phone rings,
    # and before a hang-up racing this step can be answered).
    if transfer.target_queue_id is not None and not free_agents(t.session, target.queue.skill,
                                                                  exclude={transfer.from_agent_id}):
        _hold_for_target(t, transfer)
        wait_at_queue(t, transfer)
    elif not ring_target(t, transfer, before_ringing=lambda: _hold_for_target(t, transfer)):
        outside = transfer.target_number
        transfer.target_agent_id = transfer.target_queue_id = transfer.target_number = None
        raise TransferRefused(f"{outside} could not be called" if outside else f"nobody at {target.label} is available")


def _hold_for_target(t: Telephony, transfer: Transfer) -> None:
    hold_caller(t, transfer.call)
    start_summary(t, transfer)


def wait_at_queue(t: Telephony, transfer: Transfer) -> None:
    """Everyone at the target queue is busy: the transfer waits there, ahead of the queue's callers, for the
    first agent who is free (offer_waiting_transfers), at most MAX_QUEUE_WAIT_SECONDS."""
    transfer.waiting_since = utcnow()
    move_transfer(t.session, transfer, TransferState.WAITING, queue=transfer.target_queue.name, mode=transfer.mode,
                  place=place_in_line(t.session, transfer, joining=True))


def ring_waiting_transfer(t: Telephony, transfer: Transfer) -> bool:
    """Ring the waiting transfer's queue again (an agent may be free); the transferring agent hears it is
    calling. False when nobody could be reserved: it waits on."""
    if transfer.state != TransferState.WAITING or not ring_target(t, transfer):
        return False
    waited = int((utcnow() - (transfer.waiting_since or transfer.created_at)).total_seconds())
    record_event(t.session, transfer.call, "transfer_wait_over", transfer=transfer, waited_seconds=waited)
    after_target_rung(t, transfer, agent_leg_of(transfer.call, transfer.from_agent_id), requester=None)
    return True


def offer_waiting_transfers(t: Telephony) -> int:
    """After a step committed: agents it freed ring the transfers waiting at their queues, the longest-waiting
    first, before any caller of those queues is offered (routing.offer_waiting_calls); returns how many rang.

    The call is locked skipping one another step holds (its own step offers
    it), and read afresh under the lock with its legs and transfers."""
    rang = 0
    for agent_id in sorted(t.freed_agent_ids):
        agent = t.session.get(Agent, agent_id)
        if agent is None or not agent.is_free:
            continue
        for transfer_id in waiting_transfers(t.session, list(agent.skills or [])):
            call_id = t.session.scalar(select(Transfer.call_id).where(Transfer.id == transfer_id))
            call = lock_call_unless_held(t, call_id)
            if call is None:
                continue
            transfer = next((transfer for transfer in call.transfers if transfer.id == transfer_id), None)
            if transfer is not None and ring_waiting_transfer(t, transfer):
                rang += 1
                break
    return rang


def ring_target(t: Telephony, transfer: Transfer, *, before_ringing: Callable[[], None] | None = None) -> bool:
    """Reserve and ring the (next) target agent, or the outside destination (once); False when nobody can be rung.
    BEFORE_RINGING runs once a target is sure to be rung, before its ring is recorded.

    A phone is dialled once the step is committed (calls.ringing.ring_leg); if
    Twilio refuses, target_dial_failed tries the queue's next agent or ends
    the transfer, as a target that did not answer does.
    """
    if t.dials_left <= 0:
        return False
    if transfer.target_number:
        if transfer.target_leg_id is not None:  # an outside destination is rung once
            return False
        if before_ringing is not None:
            before_ringing()
        _ring(t, transfer, None, transfer.target_number, outside=True)
        return True
    agent = _reserve_target(t, transfer)
    if agent is None:
        return False
    transfer.tried_agent_ids = [*transfer.tried_agent_ids, agent.id]
    if before_ringing is not None:
        before_ringing()
    _ring(t, transfer, agent, agent.extension)
    return True


def _ring(t: Telephony, transfer: Transfer, agent: Agent | None, target: str, **detail) -> None:
    """A target leg for AGENT (None: the outside destination), the consult room (warm), then ring it."""
    call = transfer.call
    leg = new_leg(t.session, call, LegRole.TARGET, agent=agent)
    transfer.target_leg_id = leg.id
    if transfer.mode == TransferMode.WARM and transfer.consult_room is None:
        _open_consult_room(t, transfer)
    t.session.expire(transfer, ["target_leg"])
    move_transfer(t.session, transfer, TransferState.DIALING, target=target, mode=transfer.mode, **detail)
    outside = _outside_dial(t, transfer) if agent is None else None
    ring_leg(t, leg, agent, answer_url=t.urls.transfer_answer(leg.id), status_url=t.urls.transfer_status(leg.id),
             fallback_url=t.urls.transfer_fallback(leg.id), timeout=t.settings.transfer_ring_timeout_seconds,
             outside=outside)


def _outside_dial(t: Telephony, transfer: Transfer) -> OutsideDial:
    """How Twilio places the call to an outside destination: the number (its extension sent as keys once
    answered), with answering-machine detection unless keys are sent (Twilio then ignores it), showing our
    number or the caller's."""
    number, keys = split_extension(transfer.target_number)
    call = transfer.call
    # The caller's own number, where OUTSIDE_TRANSFER_CALLER_ID=caller and Twilio gave the call a CallToken
    # (an inbound call whose caller has a number); otherwise ours.
    shows_caller = bool(t.settings.outside_transfer_caller_id == "caller" and call.call_token
                    and not call.is_outbound and E164.match(call.from_number or ""))
    return OutsideDial(to=number, send_digits=send_digits_for(keys) if keys else None, detect_machine=not keys,
                       from_=call.from_number if shows_caller else None,
                       call_token=call.call_token if shows_caller else None)


def target_of(transfer: Transfer | None, leg: Leg) -> str | None:
    """Who a target leg rings, for the timeline: the agent's extension, or the outside destination."""
    if leg.agent is not None:
        return leg.agent.extension
    return transfer.target_number if transfer is not None else None


def _reserve_target(t: Telephony, transfer: Transfer) -> Agent | None:
    # The named agent once, or a queue's agents one after another, never the transferring one.
    exclude = {*transfer.tried_agent_ids, transfer.from_agent_id}
    if transfer.target_agent_id is not None:
        return reserve_agent(t.session, agent_id=transfer.target_agent_id, exclude=exclude)
    if transfer.target_queue is None:
        return None
    return reserve_agent(t.session, skill=transfer.target_queue.skill, exclude=exclude)


def _open_consult_room(t: Telephony, transfer: Transfer) -> None:
    user = consult_room_user(transfer.call_id, transfer.id)
    transfer.consult_room = room_name(t.settings, user)
    open_room(t, transfer.call, transfer.consult_room, transfer=transfer)


def after_target_rung(t: Telephony, transfer: Transfer, from_leg: Leg | None, *, requester: Leg | None) -> Prompt:
    """Where the transferring agent goes once the target rings: the consult room (warm) or away (blind)."""
    if from_leg is None or from_leg.is_final:
        return Prompt.NONE
    if transfer.state == TransferState.WAITING:
        if transfer.mode == TransferMode.WARM:
            # A waits on music (a browser agent too: no consult room until someone rings), 1 to go back.
            hold_agent(t, from_leg, requester=requester, say=Prompt.QUEUED)
            return Prompt.QUEUED
        release_agent_leg(t, from_leg, "blind_transfer", requester=requester, say=Prompt.TRANSFERRED_QUEUED)
        return Prompt.TRANSFERRED_QUEUED
    if transfer.mode == TransferMode.WARM:
        if from_leg.twilio_call_sid:
            # A phone leg waits on music, not alone in the consult room: LiveKit
            # would keep its SIP call ringing there until someone publishes a
            # track (livekit/sip inbound.go, waitSubscribe), longer than the
            # target may ring. A joins the consult room when the target accepts.
            hold_agent(t, from_leg, requester=requester, say=Prompt.CALLING)
        else:
            place_agent(t, from_leg, transfer.consult_room, requester=requester, say=Prompt.CALLING)
        return Prompt.CALLING
    release_agent_leg(t, from_leg, "blind_transfer", requester=requester, say=Prompt.TRANSFERRED)
    return Prompt.TRANSFERRED


def start_transfer(t: Telephony, call: Call, target: Target, *, mode: TransferMode, trigger: TransferTrigger,
                   by: Actor, notes: str | None = None, agent_id: int | None = None) -> Transfer:
    """Start a whole transfer from the web form or the API: hold, summary, ring, move the agent. BY is who asked;
    AGENT_ID, when an agent asks for their own call (the console), must still have the caller once it is locked.

    The call and the target are checked first: a refusal touches no leg.
    """
    call = lock_call(t, call.id)  # the caller hanging up meanwhile waits for this step, or wins before it
    from_leg = agent_leg_of(call, call.agent_id)
    try:
        if agent_id is not None and call.agent_id != agent_id:
            # Another step handed the caller on while this one waited (a three-way call or a transfer completed).
            raise TransferRefused("only the agent with the caller can transfer the call")
        refuse_opening(call, from_leg)
        # A browser agent's leg is moved by writing its room: their console reconnects.
        if not (from_leg.twilio_call_sid or from_leg.livekit_identity):
            raise TransferRefused("the call's agent has no phone leg to move")
        refuse_target(t, from_leg.agent_id, target, mode)
    except TransferRefused as refusal:
        if target.outside:
            # An outside destination refused is kept on the timeline: a
            # transfer to numbers nobody allowed is how toll fraud starts.
            record_event(t.session, call, "transfer_refused", target=target.label, reason=str(refusal), by=by.label)
        raise
    transfer = open_transfer(t, call, from_leg, trigger=trigger, by=by, notes=notes)
    try:
        choose_target(t, transfer, target, mode)
        after_target_rung(t, transfer, from_leg, requester=None)
    except TransferRefused as refusal:
        # The target was taken meanwhile.
        cancel(t, transfer, str(refusal), requester=None)
        raise
    except Exception:
        # Nothing of the step is committed (the dial is an effect carried out
        # after the commit): rolled back whole, with its effects, nothing rang.
        log.exception("transfer_start_failed", transfer_id=transfer.id)
        t.session.rollback()
        raise TransferRefused("the transfer could not be started") from None
    return transfer


def transfer_of_target_leg(leg: Leg) -> Transfer | None:
    """The transfer whose target leg this is: one of the leg's call's, which the step has loaded with the call
    (primitives.legs.lock_call), so finding it costs no statement."""
    return next((transfer for transfer in leg.call.transfers if transfer.target_leg_id == leg.id), None)


def target_answered(t: Telephony, leg: Leg) -> Transfer | None:
    """The target picked up: the transfer to whisper about, or None if it is over."""
    transfer = transfer_of_target_leg(leg)
    if transfer is None or transfer.is_final or leg.is_final:
        close_leg(t, leg, LegStatus.CANCELED, "transfer_over")
        return None
    if transfer.state == TransferState.DIALING:
        move_leg(leg, LegStatus.WHISPER)
        leg.answered_at = utcnow()
        move_transfer(t.session, transfer, TransferState.WHISPERING, target=target_of(transfer, leg))
    return transfer


def target_asked_for_summary(t: Telephony, leg: Leg, transfer: Transfer) -> None:
    """The answered target pressed 1 to hear the summary: the first word of the caller they may hear.

    Until then they have heard only who is transferring (a machine that
    answers hears nothing of the caller). The timeline records the moment
    once per target (`summary_asked`): the summary's deadline and the
    target's dead air are counted from it.
    """
    if _summary_asked_at(t, transfer, leg) is None:
        record_event(t.session, transfer.call, "summary_asked", transfer=transfer, leg_id=leg.id)


def asked_for_summary(t: Telephony, leg: Leg, transfer: Transfer) -> bool:
    """Whether the target on LEG has pressed 1 for the summary (only then may they hear anything of the caller)."""
    return _summary_asked_at(t, transfer, leg) is not None


def summary_ready_for_target(t: Telephony, leg: Leg, transfer: Transfer, *, settle_now: bool = False) -> bool:
    """Whether the target who asked for the summary can hear it now (past the deadline, the fallback is stored).

    SETTLE_NOW: whatever is ready is spoken at once (the LLM's summary if it
    is stored, else the fallback is stored now), as when Twilio gave up on a
    wait turn and asked the fallback URL. When it is ready, the timeline
    records how long they waited after asking (`summary_whispered`,
    waited_ms): the dead air of a warm transfer for its target, shown on the
    call page.
    """
    since = _summary_asked_at(t, transfer, leg) or leg.answered_at
    ready = settle_summary(t.session, transfer, since=since, deadline_seconds=t.settings.summary_deadline_seconds,
                           at_once="fallback: Twilio gave up on a wait turn" if settle_now else None)
    if ready and not _whispered_before(t, transfer, leg):
        waited = (utcnow() - since).total_seconds() if since else 0.0
        record_event(t.session, transfer.call, "summary_whispered", transfer=transfer, leg_id=leg.id,
                     waited_ms=int(waited * 1000), source=transfer.summary_source)
    return ready


def _summary_asked_at(t: Telephony, transfer: Transfer, leg: Leg):
    for created_at, detail in t.session.execute(select(Event.created_at, Event.detail).where(
            Event.transfer_id == transfer.id, Event.name == "summary_asked")):
        if detail.get("leg_id") == leg.id:
            return created_at
    return None


def _whispered_before(t: Telephony, transfer: Transfer, leg: Leg) -> bool:
    # The wait is measured once per target: a repeated or replayed request (a `9` to hear it again) is not.
    details = t.session.scalars(select(Event.detail).where(Event.transfer_id == transfer.id,
                                                           Event.name == "summary_whispered"))
    return any(detail.get("leg_id") == leg.id for detail in details)


class Accepted(StrEnum):
    """What the target's accepting led to."""

    CONSULT = "consult"  # with the transferring agent, the caller on hold
    CONNECTED = "connected"  # straight to the caller (a blind transfer, or A gone)
    GONE = "gone"  # the transfer was over


def target_accepted(t: Telephony, leg: Leg) -> Accepted:
    """The target pressed 1: join the transferring agent (CONSULT) or go straight to the caller (CONNECTED)."""
    transfer = transfer_of_target_leg(leg)
    if transfer is None or transfer.is_final or leg.is_final:
        close_leg(t, leg, LegStatus.CANCELED, "transfer_over")
        return Accepted.GONE
    _target_on_call(leg)
    from_leg = agent_leg_of(transfer.call, transfer.from_agent_id)
    if transfer.mode == TransferMode.WARM and from_leg is not None:
        place_agent(t, leg, transfer.consult_room, requester=leg)
        move_transfer(t.session, transfer, TransferState.CONSULTING, target=target_of(transfer, leg))
        if from_leg.room_name != transfer.consult_room or from_leg.status != LegStatus.CONNECTED:
            place_agent(t, from_leg, transfer.consult_room, requester=leg, say=Prompt.ACCEPTED)
        return Accepted.CONSULT
    complete(t, transfer, requester=leg)
    return Accepted.CONNECTED


def _target_on_call(leg: Leg) -> None:
    if leg.agent is not None:
        move_activity(leg.agent, Activity.ON_CALL)
        leg.agent.missed_in_row = 0


def target_dial_failed(t: Telephony, leg: Leg, error: str) -> None:
    """Twilio refused (or never confirmed) the dial of the target's phone: as a target that failed, the queue's
    next agent or the end of the transfer; this agent is not offered anything at once."""
    transfer = transfer_of_target_leg(leg)
    if transfer is not None and not transfer.is_final:
        record_event(t.session, transfer.call, "transfer_dial_failed", transfer=transfer,
                     target=target_of(transfer, leg), error=error)
    target_declined(t, leg, Missed.FAILED)
    if leg.agent_id is not None:
        t.freed_agent_ids.discard(leg.agent_id)


def target_reached_machine(t: Telephony, leg: Leg, answerer: Answerer) -> None:
    """Twilio's answering-machine detection says a machine (or a fax) answered the target's phone.

    The attempt ends as its own outcome (`voicemail`): the machine hears
    nothing at all, the leg ends, and the transferring agent goes back to
    the caller, as when nobody answers.
    """
    transfer = transfer_of_target_leg(leg)
    if transfer is not None and not transfer.is_final:
        record_event(t.session, transfer.call, "transfer_target_machine", transfer=transfer,
                     target=target_of(transfer, leg), answered_by=answerer)
    target_declined(t, leg, Missed.VOICEMAIL)


def target_declined(t: Telephony, leg: Leg, reason: Missed, *, over_at_twilio: bool = False) -> None:
    """The target declined, did not answer, was busy or failed: the next agent of a queue, or back to A.

    OVER_AT_TWILIO: Twilio's status callback said so (see legs.close_leg)."""
    transfer = transfer_of_target_leg(leg)
    was_ringing = leg.status in RINGING_LEG_STATUSES
    close_leg(t, leg, reason.leg_status, reason, missed=reason.agent_missed_it, over_at_twilio=over_at_twilio)
    if transfer is None or transfer.is_final or not was_ringing:
        return
    if transfer.target_queue_id is not None:
        # The queue's next agent: back to requested, then rung (transfer_dialing again).
        move_transfer(t.session, transfer, TransferState.REQUESTED, "transfer_target_missed",
                      target=target_of(transfer, leg), reason=reason)
        if ring_target(t, transfer):
            return
    else:
        record_event(t.session, transfer.call, "transfer_target_missed", transfer=transfer,
                     target=target_of(transfer, leg), reason=reason)
    ending = {Missed.DECLINED: Ending.DECLINED, Missed.FAILED: Ending.FAILED, Missed.BUSY: Ending.BUSY,
              Missed.VOICEMAIL: Ending.VOICEMAIL}.get(reason, Ending.NO_ANSWER)
    end_transfer(t, transfer, ending, reason=reason)


def complete(t: Telephony, transfer: Transfer, *, requester: Leg | None, keep_from_agent: bool = False,
             by: Actor | None = None) -> None:
    """The caller and the target are connected in the call's room; A leaves (or stays, for a three-way)."""
    if transfer.state not in (TransferState.CONSULTING, TransferState.WHISPERING):
        raise TransferRefused(f"the transfer cannot be completed while it is {transfer.state}")
    end_transfer(t, transfer, Ending.THREE_WAY if keep_from_agent else Ending.COMPLETED, requester=requester, by=by)


def cancel(t: Telephony, transfer: Transfer, reason: str, *, requester: Leg | None, by: Actor | None = None) -> None:
    """Abort: the target's leg ends, A returns to the caller (the caller to the queue if A is gone)."""
    end_transfer(t, transfer, Ending.CANCELLED, reason=reason, requester=requester, by=by)


def swap(t: Telephony, transfer: Transfer, *, requester: Leg | None, by: Actor | None = None) -> None:
    """The transferring agent switches between the caller and the target; the other one holds.

    REQUESTER is the leg whose own webhook asked (it gets its TwiML in the
    answer); None when a page or the API asked. The timeline says who the
    agent is with now.
    """
    if transfer.state != TransferState.CONSULTING:
        raise TransferRefused("swap needs the target on the line")
    call = transfer.call
    target_leg = transfer.target_leg
    from_leg = agent_leg_of(call, transfer.from_agent_id)
    if from_leg is None or from_leg.is_final:
        raise TransferRefused("the transferring agent is not on the call")
    if from_leg.room_name == transfer.consult_room:
        hold_agent(t, target_leg, requester=requester)
        place_agent(t, from_leg, call.room_name, requester=requester)
        record_event(t.session, call, "transfer_swapped", transfer=transfer, now_with="caller", **by_detail(by))
        unhold_caller(t, call)
        return
    place_agent(t, from_leg, transfer.consult_room, requester=requester)
    record_event(t.session, call, "transfer_swapped", transfer=transfer, now_with="target", **by_detail(by))
    hold_caller(t, call)
    place_agent(t, target_leg, transfer.consult_room, requester=requester, say=Prompt.SWAPPED)


def three_way(t: Telephony, transfer: Transfer, *, requester: Leg | None, by: Actor | None = None) -> None:
    """The caller, the target and the transferring agent together in the call's room; the target keeps the call."""
    complete(t, transfer, requester=requester, keep_from_agent=True, by=by)


class Ending(StrEnum):
    """How a transfer ended: each is one way through end_transfer."""

    COMPLETED = "completed"  # the caller is with the target; the transferring agent left
    THREE_WAY = "three_way"  # the caller is with the target; the transferring agent stayed
    CANCELLED = "cancelled"  # the agent, a page or the API gave up, or the menu was left unanswered
    DECLINED = "declined"
    NO_ANSWER = "no_answer"  # the target let it ring out, or went silent
    BUSY = "busy"
    FAILED = "failed"  # the target could not be called
    VOICEMAIL = "voicemail"  # a machine answered the target's phone (answering-machine detection)
    CALLER_HUNG_UP = "caller_hung_up"
    AGENT_HUNG_UP = "agent_hung_up"  # the transferring agent left before a target was chosen
    TARGET_HUNG_UP = "target_hung_up"  # the target left during the consult

    @property
    def state(self) -> TransferState:
        """The transfer's final state for this ending."""
        return {
            Ending.COMPLETED: TransferState.COMPLETED, Ending.THREE_WAY: TransferState.COMPLETED,
            Ending.DECLINED: TransferState.DECLINED, Ending.NO_ANSWER: TransferState.NO_ANSWER,
            Ending.BUSY: TransferState.NO_ANSWER, Ending.FAILED: TransferState.FAILED,
            Ending.VOICEMAIL: TransferState.VOICEMAIL, Ending.CALLER_HUNG_UP: TransferState.CALLER_HUNG_UP,
        }.get(self, TransferState.CANCELLED)

    @property
    def connects_target(self) -> bool:
        return self in (Ending.COMPLETED, Ending.THREE_WAY)

    @property
    def prompt(self) -> Prompt:
        """What the transferring agent hears on going back to the caller."""
        return {
            Ending.DECLINED: Prompt.DECLINED, Ending.NO_ANSWER: Prompt.NO_ANSWER, Ending.BUSY: Prompt.NO_ANSWER,
            Ending.FAILED: Prompt.FAILED, Ending.TARGET_HUNG_UP: Prompt.TARGET_GONE,
            Ending.VOICEMAIL: Prompt.VOICEMAIL,
        }.get(self, Prompt.RETURNED)


def end_transfer(t: Telephony, transfer: Transfer, ending: Ending, *, reason: str | None = None,
                 requester: Leg | None = None, by: Actor | None = None) -> None:
    """The one way a transfer ends, whatever ended it: everything it opened is tidied here.

    The target's leg is connected to the caller (completed, three-way) or
    ended if it still rings or talks; the transferring agent leaves, stays
    (three-way) or goes back to the caller, who comes off hold; with the
    agent gone the caller waits in the queue again; with the caller gone
    nobody is moved. Agents are freed as their legs end (legs.close_leg),
    so none stays reserved. The consult room is closed, once, here. The
    timeline gets `transfer_<state>` with the reason, and BY when someone
    asked for it (a page, the console, the API, an agent's keys). REQUESTER
    is the leg whose own webhook asked (it gets its TwiML in the answer).
    """
    if transfer.is_final:
        raise TransferRefused(f"the transfer is already {transfer.state}")
    call = transfer.call
    target_leg = transfer.target_leg
    from_leg = agent_leg_of(call, transfer.from_agent_id)
    if ending.connects_target:
        _connect_target(t, transfer, keep_from_agent=ending == Ending.THREE_WAY, from_leg=from_leg,
                        requester=requester, by=by)
    else:
        if target_leg is not None and not target_leg.is_final:
            ringing = target_leg.status in RINGING_LEG_STATUSES
            close_leg(t, target_leg, LegStatus.CANCELED if ringing else LegStatus.ENDED, f"transfer_{ending}")
            hang_up(t, call, target_leg.twilio_call_sid, leg_id=target_leg.id)
        move_transfer(t.session, transfer, ending.state, reason=reason or ending.value.replace("_", " "),
                      **by_detail(by))
        if ending != Ending.CALLER_HUNG_UP:
            _back_to_the_caller(t, call, from_leg, ending.prompt, requester)
    close_room(t, call, transfer.consult_room, transfer=transfer)


def _connect_target(t: Telephony, transfer: Transfer, *, keep_from_agent: bool, from_leg: Leg | None,
                    requester: Leg | None, by: Actor | None) -> None:
    call = transfer.call
    target_leg = transfer.target_leg
    # An outside party has no agent row: the call is then with nobody the
    # service can route to, and only its caller or that party can end it.
    call.agent_id = target_leg.agent_id
    target_leg.answered_at = target_leg.answered_at or utcnow()
    _target_on_call(target_leg)
    move_transfer(t.session, transfer, TransferState.COMPLETED, three_way=keep_from_agent,
                  reason="three-way" if keep_from_agent else "completed", **by_detail(by))
    if from_leg is not None:
        if keep_from_agent:
            place_agent(t, from_leg, call.room_name, requester=requester, say=Prompt.THREE_WAY)
        else:
            release_agent_leg(t, from_leg, "transferred", requester=requester, say=Prompt.COMPLETED)
    place_agent(t, target_leg, call.room_name, requester=requester, say=Prompt.CONNECTED)
    unhold_caller(t, call)


def _back_to_the_caller(t: Telephony, call: Call, from_leg: Leg | None, say: Prompt, requester: Leg | None) -> None:
    if from_leg is not None:
        place_agent(t, from_leg, call.room_name, requester=requester, say=say)
        unhold_caller(t, call)
    else:
        requeue_caller(t, call)


def agent_left_during_transfer(t: Telephony, leg: Leg) -> bool:
    """An agent's leg ended while a transfer was under way; True if the transfer took care of the call.

    The transferring agent leaving before a target was chosen cancels it (the
    caller waits in the queue again); during the consult the target keeps the
    caller; while the target rings or hears the whisper, the target is
    connected to the caller on accepting, or the caller is queued again if
    they do not. The target leaving during the consult ends it: the
    transferring agent goes back to the caller.
    """
    transfer = active_transfer(leg.call)
    if transfer is None:
        return False
    if transfer.target_leg_id == leg.id:
        if transfer.state != TransferState.CONSULTING:
            return False
        record_event(t.session, leg.call, "transfer_target_left", transfer=transfer, state=transfer.state)
        end_transfer(t, transfer, Ending.TARGET_HUNG_UP, reason="the target hung up during the consult")
        return True
    if leg.agent_id != transfer.from_agent_id:
        return False
    record_event(t.session, leg.call, "transfer_agent_left", transfer=transfer, state=transfer.state)
    if transfer.state == TransferState.REQUESTED:
        end_transfer(t, transfer, Ending.AGENT_HUNG_UP,
                     reason="transferring agent hung up before choosing a target")
    elif transfer.state == TransferState.CONSULTING:
        complete(t, transfer, requester=None)
    return True


def caller_left_during_transfer(t: Telephony, call: Call) -> None:
    """The caller hung up (their legs are already closed): the transfer under way ends, and its room closes."""
    transfer = active_transfer(call)
    if transfer is not None:
        end_transfer(t, transfer, Ending.CALLER_HUNG_UP, reason="caller hung up")


# A target's phone that neither answered nor reported back this long after
# ringing began is given up on (its status callback was lost); the whisper
# itself, with the summary's deadline, fits well inside the margin.
STALE_TARGET_MARGIN = timedelta(seconds=60)
# A transfer menu nobody answered for this long (the agent's phone went
# away without a callback) is abandoned.
STALE_MENU_AFTER = timedelta(minutes=2)


def give_up_unanswered_menus(t: Telephony) -> int:
    """Transfers whose menu nobody answered for STALE_MENU_AFTER (the agent's phone went away without a word
    and no target was chosen): cancelled, each under its call's lock; returns how many.

    The reconciler runs this: until a target is chosen the caller is not on
    hold, so no hold turn of theirs comes by to notice (expire_stale_transfer).
    """
    cutoff = utcnow() - STALE_MENU_AFTER
    call_ids = t.session.scalars(
        select(Transfer.call_id).where(Transfer.state == TransferState.REQUESTED, Transfer.created_at < cutoff)
        .order_by(Transfer.id)
    ).all()
    given_up = 0
    for call_id in call_ids:
        call = lock_call(t, call_id)
        transfer = active_transfer(call) if call is not None else None
        if transfer is not None and transfer.state == TransferState.REQUESTED and transfer.created_at < cutoff:
            cancel(t, transfer, "the transfer menu was left unanswered", requester=None)
            given_up += 1
    return given_up


def expire_stale_transfer(t: Telephony, call: Call) -> bool:
    """While the caller holds: give up on a transfer whose target or menu went silent; True if one was."""
    transfer = active_transfer(call)
    if transfer is None:
        return False
    now = utcnow()
    if transfer.state == TransferState.REQUESTED and now - transfer.created_at > STALE_MENU_AFTER:
        cancel(t, transfer, "the transfer menu was left unanswered", requester=None)
        return True
    if transfer.state == TransferState.WAITING:
        return _keep_waiting_or_give_up(t, transfer, now)
    leg = transfer.target_leg
    if transfer.state not in (TransferState.DIALING, TransferState.WHISPERING) or leg is None or leg.is_final:
        return False
    if dial_unconfirmed(leg) and claim_expired_ring(t, leg):
        target_dial_failed(t, leg, "no word from Twilio about the call")
        return True
    limit = timedelta(seconds=t.settings.transfer_ring_timeout_seconds) + STALE_TARGET_MARGIN
    if now - leg.created_at <= limit:
        return False
    record_event(t.session, call, "transfer_target_silent", transfer=transfer, target=target_of(transfer, leg))
    hang_up(t, call, leg.twilio_call_sid, leg_id=leg.id)
    target_declined(t, leg, Missed.NO_ANSWER)
    return True


def _keep_waiting_or_give_up(t: Telephony, transfer: Transfer, now) -> bool:
    """The caller's hold turn while their transfer waits: ring if someone is free now (an agent freed by a step
    that offered nobody), end it past MAX_QUEUE_WAIT_SECONDS; True if something changed."""
    if ring_waiting_transfer(t, transfer):
        return True
    waited = now - (transfer.waiting_since or transfer.created_at)
    queue = transfer.target_queue
    limit = queue.setting("max_wait_seconds", t.settings.max_queue_wait_seconds) if queue \
        else t.settings.max_queue_wait_seconds
    if waited < timedelta(seconds=limit):
        return False
    end_transfer(t, transfer, Ending.NO_ANSWER,
                 reason=f"nobody at {queue.name if queue else 'the queue'} was free within {limit} s")
    return True
