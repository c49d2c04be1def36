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

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.agents.availability import free_agents, reserve_agent
from app.calls.legs import (
    RINGING_LEG_STATUSES,
    Missed,
    agent_leg_of,
    close_leg,
    lock_call,
)
from app.calls.ringing import ring_leg
from app.events import record_event
from app.logs import get_logger
from app.models import (
    Activity,
    Agent,
    Call,
    CallStatus,
    Leg,
    LegRole,
    LegStatus,
    Presence,
    Queue,
    Transfer,
    TransferState,
    utcnow,
)
from app.summaries.redaction import redact
from app.telephony.context import Telephony
from app.telephony.effects import close_room, hang_up, open_room, start_summary
from app.telephony.sip import consult_room_user, room_name
from app.transfers.lifecycle import active_transfer, move
from app.transfers.outside import (
    DestinationRefused,
    check_number,
    check_sip_uri,
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

MODES = ("warm", "blind")
TRIGGERS = ("dtmf", "web", "api")


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


def resolve_target(t: Telephony, code: str) -> Target:
    """What keys name: an extension (2-6 digits) or a queue code (1-4 digits); TransferRefused otherwise."""
    code = code.strip()
    if not code.isdigit():
        raise TransferRefused("enter an extension or a queue number")
    try:
        return find_target(t.session, extension=code)
    except TransferRefused:
        pass
    try:
        return find_target(t.session, queue=code)
    except TransferRefused:
        raise TransferRefused(f"{' '.join(code)} is not an extension or a queue") from None


# --- starting ------------------------------------------------------------------


def open_transfer(t: Telephony, call: Call, from_leg: Leg, *, trigger: str, notes: str | None = None) -> Transfer:
    """Begin a transfer: one per call, the caller on hold, the summary started now."""
    if trigger not in TRIGGERS:
        raise ValueError(trigger)
    refuse_opening(call, from_leg)
    transfer = Transfer(
        call_id=call.id,
        mode="warm",
        trigger=trigger,
        state=TransferState.REQUESTED,
        from_agent_id=from_leg.agent_id,
        # Notes are the caller's data like the transcript: redacted before they are stored, shown or sent.
        notes=redact((notes or "").strip()[:2000]) or None,
        tried_agent_ids=[],
    )
    try:
        with t.session.begin_nested():
            t.session.add(transfer)
    except IntegrityError:
        raise TransferRefused("a transfer is already under way for this call") from None
    t.session.refresh(call)
    record_event(t.session, call, "transfer_requested", transfer=transfer, trigger=trigger,
                 from_agent=from_leg.agent.extension)
    hold_caller(t, call)
    start_summary(t, transfer)
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


def refuse_target(t: Telephony, from_agent_id: int | None, target: Target, mode: str) -> None:
    """TransferRefused, with the reason, if TARGET cannot take the call now (a look: nothing is touched)."""
    if mode not in MODES:
        raise TransferRefused("the mode must be warm or blind")
    if target.outside:
        outside_destination(t, target)
    elif target.agent is not None:
        if target.agent.id == from_agent_id:
            raise TransferRefused("you cannot transfer a call to yourself")
        if target.agent.presence != Presence.AVAILABLE or target.agent.activity != Activity.IDLE:
            raise TransferRefused(f"{target.agent.name} is not available")
    elif target.queue is not None:
        if not free_agents(t.session, target.queue.skill, exclude={from_agent_id}):
            raise TransferRefused(f"nobody at {target.label} is available")
    else:
        raise TransferRefused("give a target: an agent's extension, a queue, a number or a SIP URI")


def outside_destination(t: Telephony, target: Target) -> str:
    """The normalised number or SIP URI of an outside TARGET, if the allow-list lets it be rung; else TransferRefused."""
    try:
        if target.number:
            return check_number(t.settings, target.number)
        return check_sip_uri(t.settings, target.sip_uri or "")
    except DestinationRefused as refusal:
        raise TransferRefused(str(refusal)) from None


def choose_target(t: Telephony, transfer: Transfer, target: Target, mode: str) -> None:
    """Set the target and mode and ring the target; TransferRefused (transfer unchanged) if impossible."""
    if transfer.state != TransferState.REQUESTED:
        raise TransferRefused(f"the transfer is already {transfer.state}")
    refuse_target(t, transfer.from_agent_id, target, mode)
    transfer.mode = mode
    transfer.target_agent_id = target.agent.id if target.agent else None
    transfer.target_queue_id = target.queue.id if target.queue else None
    transfer.target_number = outside_destination(t, target) if target.outside else None
    t.session.flush()
    t.session.refresh(transfer)
    if not ring_target(t, transfer):
        outside = transfer.target_number
        transfer.target_agent_id = transfer.target_queue_id = transfer.target_number = None
        raise TransferRefused(f"{outside} could not be called" if outside else f"nobody at {target.label} is available")


def ring_target(t: Telephony, transfer: Transfer) -> bool:
    """Reserve and ring the (next) target agent, or the outside destination; False when nobody can be rung."""
    if transfer.target_number:
        return _ring_outside(t, transfer)
    while t.dials_left > 0:
        agent = _reserve_target(t, transfer)
        if agent is None:
            return False
        transfer.tried_agent_ids = [*transfer.tried_agent_ids, agent.id]
        if _dial_target(t, transfer, agent, agent.extension) is None:
            return True
        if transfer.target_agent_id is not None:
            return False
    return False


def _ring_outside(t: Telephony, transfer: Transfer) -> bool:
    """Ring the outside destination once, as a softphone agent is rung; the caller ID is ours."""
    if t.dials_left <= 0 or transfer.target_leg_id is not None:
        return False
    return _dial_target(t, transfer, None, transfer.target_number, outside=True) is None


def _dial_target(t: Telephony, transfer: Transfer, agent: Agent | None, target: str,
                 **detail) -> str | None:
    """A target leg for AGENT (None: the outside destination), the consult room (warm), then ring it;
    None when it rings, else why not."""
    call = transfer.call
    leg = Leg(call_id=call.id, role=LegRole.TARGET, agent_id=agent.id if agent else None, status=LegStatus.DIALING)
    t.session.add(leg)
    t.session.flush()
    transfer.target_leg_id = leg.id
    if transfer.mode == "warm" and transfer.consult_room is None:
        _open_consult_room(t, transfer)
    t.session.flush()
    t.session.refresh(transfer)
    move(t, transfer, TransferState.DIALING, target=target, mode=transfer.mode, **detail)
    failure = ring_leg(t, leg, agent, answer_url=t.urls.transfer_answer(leg.id),
                       status_url=t.urls.transfer_status(leg.id),
                       fallback_url=t.urls.transfer_fallback(leg.id),
                       timeout=t.settings.transfer_ring_timeout_seconds,
                       to=None if agent else transfer.target_number)
    if failure is not None:
        record_event(t.session, call, "transfer_dial_failed", transfer=transfer, target=target, error=failure)
        transfer.state = TransferState.REQUESTED
    return failure


def target_of(transfer: Transfer | None, leg: Leg) -> str | None:
    """Who a target leg rings, for the timeline: the agent's extension, or the outside destination."""
    if leg.agent is not None:
        return leg.agent.extension
    return transfer.target_number if transfer is not None else None


def _reserve_target(t: Telephony, transfer: Transfer) -> Agent | None:
    if transfer.target_agent_id is not None:
        if transfer.target_agent_id in transfer.tried_agent_ids:
            return None
        won = t.session.execute(
            update(Agent)
            .where(Agent.id == transfer.target_agent_id, Agent.activity == Activity.IDLE,
                   Agent.presence == Presence.AVAILABLE)
            .values(activity=Activity.RINGING)
            .execution_options(synchronize_session=False)
        ).rowcount
        agent = t.session.get(Agent, transfer.target_agent_id)
        t.session.refresh(agent)
        return agent if won == 1 else None
    queue = transfer.target_queue
    if queue is None:
        return None
    exclude = {*transfer.tried_agent_ids, transfer.from_agent_id}
    return reserve_agent(t.session, queue.skill, exclude)


def _open_consult_room(t: Telephony, transfer: Transfer) -> None:
    user = consult_room_user(transfer.call_id, transfer.id)
    transfer.consult_room = room_name(t.settings, user)
    open_room(t, transfer.call, transfer.consult_room, transfer=transfer)


def after_target_rung(t: Telephony, transfer: Transfer, from_leg: Leg | None, *, requester: Leg | None) -> Prompt:
    """Where the transferring agent goes once the target rings: the consult room (warm) or away (blind)."""
    if from_leg is None or from_leg.is_final:
        return Prompt.NONE
    if transfer.mode == "warm":
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


def start_transfer(t: Telephony, call: Call, target: Target, *, mode: str, trigger: str,
                   notes: str | None = None) -> Transfer:
    """Start a whole transfer from the web form or the API: hold, summary, ring, move the agent.

    The call and the target are checked first: a refusal touches no leg.
    """
    call = lock_call(t, call.id)  # the caller hanging up meanwhile waits for this step, or wins before it
    from_leg = agent_leg_of(call, call.agent_id)
    try:
        refuse_opening(call, from_leg)
        # A browser agent's leg is moved by writing its room: their console reconnects.
        if not (from_leg.twilio_call_sid or from_leg.livekit_identity):
            raise TransferRefused("the call's agent has no phone leg to move")
        refuse_target(t, from_leg.agent_id, target, mode)
    except TransferRefused as refusal:
        if target.outside:
            # An outside destination refused is kept on the timeline: a
            # transfer to numbers nobody allowed is how toll fraud starts.
            record_event(t.session, call, "transfer_refused", target=target.label, reason=str(refusal))
        raise
    transfer = open_transfer(t, call, from_leg, trigger=trigger, notes=notes)
    try:
        choose_target(t, transfer, target, mode)
        after_target_rung(t, transfer, from_leg, requester=None)
    except TransferRefused as refusal:
        # The target was taken meanwhile, or Twilio could not dial them.
        cancel(t, transfer, str(refusal), requester=None)
        raise
    except Exception:
        log.exception("transfer_start_failed", transfer_id=transfer.id)
        transfer_id = transfer.id
        dialled = transfer.target_leg.twilio_call_sid if transfer.target_leg else None
        t.session.rollback()  # what was not committed is dropped, with its effects
        stored = t.session.get(Transfer, transfer_id)
        if stored is not None and not stored.is_final:
            # Committed before Twilio dialled the target: the caller is on
            # hold, so the transfer is cancelled (the target's phone with it)
            # and the caller brought back.
            if stored.target_leg is not None and dialled:
                stored.target_leg.twilio_call_sid = dialled
            cancel(t, stored, "the transfer could not be started", requester=None)
        raise TransferRefused("the transfer could not be started") from None
    return transfer


# --- the target's phone ----------------------------------------------------------


def transfer_of_target_leg(t: Telephony, leg: Leg) -> Transfer | None:
    """The transfer whose target leg this is."""
    return t.session.scalar(select(Transfer).where(Transfer.target_leg_id == leg.id))


def target_answered(t: Telephony, leg: Leg) -> Transfer | None:
    """The target picked up: the transfer to whisper about, or None if it is over."""
    transfer = transfer_of_target_leg(t, leg)
    if transfer is None or transfer.is_final or leg.is_final:
        close_leg(t, leg, LegStatus.CANCELED, "transfer_over")
        return None
    if transfer.state == TransferState.DIALING:
        leg.status = LegStatus.WHISPER
        leg.answered_at = utcnow()
        move(t, transfer, TransferState.WHISPERING, target=target_of(transfer, leg))
    return transfer


def summary_ready_for_target(t: Telephony, leg: Leg, transfer: Transfer) -> bool:
    """Whether the answered target can hear the summary now (past the deadline, the fallback is stored).

    When it is, the timeline records how long they waited after answering
    (`summary_whispered`, waited_ms): the dead air of a warm transfer for
    its target, shown on the call page.
    """
    ready = settle_summary(t.session, transfer, since=leg.answered_at,
                           deadline_seconds=t.settings.summary_deadline_seconds)
    if ready:
        waited = (utcnow() - leg.answered_at).total_seconds() if leg.answered_at else 0.0
        record_event(t.session, transfer.call, "summary_whispered", transfer=transfer, leg_id=leg.id,
                     waited_ms=int(waited * 1000), source=transfer.summary_source)
    return ready


class Accepted(StrEnum):
    """What the target's accepting led to."""

    CONSULT = "consult"  # with the transferring agent, the caller on hold
    CONNECTED = "connected"  # straight to the caller (a blind transfer, or A gone)
    GONE = "gone"  # the transfer was over


def target_accepted(t: Telephony, leg: Leg) -> Accepted:
    """The target pressed 1: join the transferring agent (CONSULT) or go straight to the caller (CONNECTED)."""
    transfer = transfer_of_target_leg(t, leg)
    if transfer is None or transfer.is_final or leg.is_final:
        close_leg(t, leg, LegStatus.CANCELED, "transfer_over")
        return Accepted.GONE
    if leg.agent is not None:
        leg.agent.activity = Activity.ON_CALL
        leg.agent.missed_in_row = 0
    from_leg = agent_leg_of(transfer.call, transfer.from_agent_id)
    if transfer.mode == "warm" and from_leg is not None:
        place_agent(t, leg, transfer.consult_room, requester=leg)
        move(t, transfer, TransferState.CONSULTING, target=target_of(transfer, leg))
        if from_leg.room_name != transfer.consult_room or from_leg.status != LegStatus.CONNECTED:
            place_agent(t, from_leg, transfer.consult_room, requester=leg, say=Prompt.ACCEPTED)
        return Accepted.CONSULT
    complete(t, transfer, requester=leg)
    return Accepted.CONNECTED


def target_declined(t: Telephony, leg: Leg, reason: Missed, *, over_at_twilio: bool = False) -> None:
    """The target declined, did not answer, was busy or failed: the next agent of a queue, or back to A.

    OVER_AT_TWILIO: Twilio's status callback said so (see legs.close_leg)."""
    transfer = transfer_of_target_leg(t, leg)
    was_ringing = leg.status in RINGING_LEG_STATUSES
    close_leg(t, leg, reason.leg_status, reason, missed=reason.agent_missed_it, over_at_twilio=over_at_twilio)
    if transfer is None or transfer.is_final or not was_ringing:
        return
    record_event(t.session, transfer.call, "transfer_target_missed", transfer=transfer,
                 target=target_of(transfer, leg), reason=reason)
    if transfer.target_queue_id is not None:
        transfer.state = TransferState.REQUESTED
        if ring_target(t, transfer):
            return
    final = {Missed.DECLINED: TransferState.DECLINED, Missed.FAILED: TransferState.FAILED}.get(
        reason, TransferState.NO_ANSWER)
    _give_back(t, transfer, final, reason)


def _give_back(t: Telephony, transfer: Transfer, final: str, reason: str) -> None:
    """The target will not take the call: A returns to the caller, or, with A gone, the caller is queued again."""
    call = transfer.call
    move(t, transfer, final, reason=reason)
    from_leg = agent_leg_of(call, transfer.from_agent_id)
    if from_leg is not None:
        place_agent(t, from_leg, call.room_name, requester=None, say=_returning_code(final))
        unhold_caller(t, call)
    else:
        requeue_caller(t, call)


def _returning_code(state: str) -> Prompt:
    return {
        TransferState.DECLINED: Prompt.DECLINED,
        TransferState.NO_ANSWER: Prompt.NO_ANSWER,
        TransferState.FAILED: Prompt.FAILED,
    }.get(state, Prompt.RETURNED)


# --- consult actions --------------------------------------------------------------


def complete(t: Telephony, transfer: Transfer, *, requester: Leg | None, keep_from_agent: bool = False) -> None:
    """The caller and the target are connected in the call's room; A leaves (or stays, for a three-way)."""
    if transfer.state not in (TransferState.CONSULTING, TransferState.WHISPERING):
        raise TransferRefused(f"the transfer cannot be completed while it is {transfer.state}")
    call = transfer.call
    target_leg = transfer.target_leg
    # An outside party has no agent row: the call is then with nobody the
    # service can route to, and only its caller or that party can end it.
    call.agent_id = target_leg.agent_id
    target_leg.answered_at = target_leg.answered_at or utcnow()
    if target_leg.agent is not None:
        target_leg.agent.activity = Activity.ON_CALL
        target_leg.agent.missed_in_row = 0
    move(t, transfer, TransferState.COMPLETED, three_way=keep_from_agent, reason="three-way" if keep_from_agent else "completed")
    from_leg = agent_leg_of(call, transfer.from_agent_id)
    if from_leg is not None:
        if keep_from_agent:
            place_agent(t, from_leg, call.room_name, requester=requester, say=Prompt.THREE_WAY)
        else:
            release_agent_leg(t, from_leg, "transferred", requester=requester, say=Prompt.COMPLETED)
    place_agent(t, target_leg, call.room_name, requester=requester, say=Prompt.CONNECTED)
    unhold_caller(t, call)
    _close_consult_room(t, transfer)


def cancel(t: Telephony, transfer: Transfer, reason: str, *, requester: Leg | None) -> None:
    """Abort: the target's leg ends, A returns to the caller (the caller to the queue if A is gone)."""
    if transfer.is_final:
        raise TransferRefused(f"the transfer is already {transfer.state}")
    call = transfer.call
    target_leg = transfer.target_leg
    if target_leg is not None and not target_leg.is_final:
        ringing = target_leg.status in RINGING_LEG_STATUSES
        close_leg(t, target_leg, LegStatus.CANCELED if ringing else LegStatus.ENDED, "transfer_cancelled")
        hang_up(t, call, target_leg.twilio_call_sid, leg_id=target_leg.id)
    move(t, transfer, TransferState.CANCELLED, reason=reason)
    from_leg = agent_leg_of(call, transfer.from_agent_id)
    if from_leg is not None:
        place_agent(t, from_leg, call.room_name, requester=requester, say=Prompt.RETURNED)
        unhold_caller(t, call)
    else:
        requeue_caller(t, call)
    _close_consult_room(t, transfer)


def swap(t: Telephony, transfer: Transfer, *, requester: Leg | None) -> None:
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
        record_event(t.session, call, "transfer_swapped", transfer=transfer, now_with="caller")
        unhold_caller(t, call)
        return
    place_agent(t, from_leg, transfer.consult_room, requester=requester)
    record_event(t.session, call, "transfer_swapped", transfer=transfer, now_with="target")
    hold_caller(t, call)
    place_agent(t, target_leg, transfer.consult_room, requester=requester, say=Prompt.SWAPPED)


def three_way(t: Telephony, transfer: Transfer, *, requester: Leg | None) -> None:
    """The caller, the target and the transferring agent together in the call's room; the target keeps the call."""
    complete(t, transfer, requester=requester, keep_from_agent=True)


def _close_consult_room(t: Telephony, transfer: Transfer) -> None:
    close_room(t, transfer.call, transfer.consult_room, transfer=transfer)


# --- parties leaving -----------------------------------------------------------------


def agent_left_during_transfer(t: Telephony, leg: Leg) -> bool:
    """A's leg ended while a transfer was under way; True if the transfer took care of the call."""
    transfer = active_transfer(leg.call)
    if transfer is None or leg.agent_id != transfer.from_agent_id:
        return False
    record_event(t.session, leg.call, "transfer_agent_left", transfer=transfer, state=transfer.state)
    if transfer.state == TransferState.REQUESTED:
        move(t, transfer, TransferState.CANCELLED, reason="transferring agent hung up before choosing a target")
        requeue_caller(t, leg.call)
    elif transfer.state == TransferState.CONSULTING:
        complete(t, transfer, requester=None)
    # Dialing or whispering: the target is connected to the caller on accepting,
    # or the caller is queued again if the target does not take the call.
    return True


# A target's phone that neither answered nor reported back this long after
# ringing began is given up on (its status callback was lost); the whisper
# itself, with the summary's deadline, fits well inside the margin.
STALE_TARGET_MARGIN = timedelta(seconds=60)
# A transfer menu nobody answered for this long (the agent's phone went
# away without a callback) is abandoned.
STALE_MENU_AFTER = timedelta(minutes=2)


def expire_stale_transfer(t: Telephony, call: Call) -> bool:
    """While the caller holds: give up on a transfer whose target or menu went silent; True if one was."""
    transfer = active_transfer(call)
    if transfer is None:
        return False
    now = utcnow()
    if transfer.state == TransferState.REQUESTED and now - transfer.created_at > STALE_MENU_AFTER:
        cancel(t, transfer, "the transfer menu was left unanswered", requester=None)
        return True
    leg = transfer.target_leg
    if transfer.state not in (TransferState.DIALING, TransferState.WHISPERING) or leg is None or leg.is_final:
        return False
    limit = timedelta(seconds=t.settings.transfer_ring_timeout_seconds) + STALE_TARGET_MARGIN
    if now - leg.created_at <= limit:
        return False
    record_event(t.session, call, "transfer_target_silent", transfer=transfer, target=target_of(transfer, leg))
    hang_up(t, call, leg.twilio_call_sid, leg_id=leg.id)
    target_declined(t, leg, Missed.NO_ANSWER)
    return True
