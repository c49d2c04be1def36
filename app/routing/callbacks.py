"""Callbacks in line: a caller who asks to be called back keeps their place, and each attempt's outcome.

The caller's request becomes a Callback, in line from when the caller
queued (`requested_at`), ahead of anyone who queued later, behind anyone
earlier. It is offered to an agent with the queue's skill when one is free
(calls/callbacks.py), as an outbound call whose agent is told who, why and
how long ago, and dials the customer once they accept. An attempt that
reaches the customer completes the callback; one the customer does not
answer counts, and the callback waits CALLBACK_RETRY_SECONDS before the
next, until CALLBACK_ATTEMPTS (or the queue's own callback_attempts) have
rung them (then it fails); one that never
rang the customer (the agent declined or did not answer) does not count, and
the callback goes straight back to its place.

A callback is offered only to a number the service may dial
(OUTBOUND_CALL_ALLOW): a caller whose number it may not dial is not offered
one (callback_possible).

Supervisors see every callback by state (callbacks_by_state: the callbacks
page and GET /api/callbacks).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Select, case, select
from sqlalchemy.orm import Session

from app.events import record_event
from app.models import (
    Call,
    Callback,
    CallbackState,
    CallStatus,
    Leg,
    LegRole,
    Queue,
    utcnow,
)
from app.primitives.context import Telephony
from app.routing.ivr import speakable_number
from app.states.callbacks import move_callback, new_callback
from app.telephony.numbers import DestinationRefused, allowed_number

# An agent who declined a callback, or let it ring, is not offered it again for this long.
RETRY_SAME_AGENT_AFTER = timedelta(seconds=30)


class AttemptOutcome(StrEnum):
    """How an attempt's outbound call ended, for its callback."""

    REACHED = "reached"  # the customer answered
    UNANSWERED = "unanswered"  # the customer was rung and did not answer (busy, no answer, failed)
    NOT_RUNG = "not_rung"  # the agent declined or did not answer: the customer was never rung


def callback_possible(t: Telephony, call: Call) -> bool:
    """Whether the caller of CALL may be offered a callback: their number is one outbound calls may dial."""
    try:
        allowed_number(call.from_number, t.settings.outbound_call_allow, off="off", what="outbound calls")
    except DestinationRefused:
        return False
    return call.queue_id is not None


def request_callback(t: Telephony, call: Call) -> Callback:
    """The caller of CALL asked to be called back: a callback in line from when they queued."""
    callback = new_callback(t.session, call, number=call.from_number,
                            requested_at=call.queued_at or call.created_at)
    record_event(t.session, call, "callback_requested", callback_id=callback.id, number=call.from_number)
    t.callbacks_due = True
    return callback


def due_callbacks(session: Session, now: datetime) -> list[Callback]:
    """Callbacks in line whose next attempt is due, oldest place first."""
    return list(session.scalars(
        select(Callback)
        .where(Callback.state == CallbackState.PENDING, Callback.next_attempt_at <= now)
        .order_by(Callback.requested_at, Callback.id)
    ))


def callbacks_ahead_of(skill: str, queued_at: datetime, now: datetime) -> Select:
    """The due callbacks for a queue of SKILL that hold a place ahead of a caller who queued at QUEUED_AT (a
    query: routing.service.offer_call asks whether there is one, with its other questions)."""
    return (select(Callback.id).join(Queue, Callback.queue_id == Queue.id)
            .where(Callback.state == CallbackState.PENDING, Callback.next_attempt_at <= now, Queue.skill == skill,
                   Callback.requested_at < queued_at))


def caller_ahead_of(session: Session, callback: Callback) -> bool:
    """Whether a caller still waiting for an agent (none rung for them now) in a queue of the callback's skill
    queued before it was asked for."""
    return session.scalar(
        select(Call.id).join(Queue, Call.queue_id == Queue.id)
        .where(Call.status == CallStatus.QUEUED, Queue.skill == callback.queue.skill,
               Call.queued_at < callback.requested_at)
        .limit(1)
    ) is not None


def agents_to_skip(session: Session, callback: Callback, now: datetime) -> set[int]:
    """Agents who let this callback go (declined, did not answer) less than RETRY_SAME_AGENT_AFTER ago."""
    ended = session.execute(
        select(Leg.agent_id, Leg.ended_at).join(Call, Leg.call_id == Call.id)
        .where(Call.callback_id == callback.id, Leg.role == LegRole.AGENT, Leg.ended_at.is_not(None))
    ).all()
    return {agent_id for agent_id, ended_at in ended if agent_id and now - ended_at < RETRY_SAME_AGENT_AFTER}


def minutes_words(since: datetime, now: datetime) -> str:
    """How long ago SINCE was, in whole minutes, as an agent hears it."""
    minutes = int((now - since).total_seconds() // 60)
    if minutes < 1:
        return "less than a minute ago"
    return "1 minute ago" if minutes == 1 else f"{minutes} minutes ago"


def offer_words(callback: Callback, now: datetime) -> str:
    """What the agent offered a callback hears (and reads in the console): who, for what, why, how long ago."""
    queue = callback.queue.name if callback.queue else "no queue"
    said = f" They said: {callback.reason}." if callback.reason else ""
    tried = f" Attempt {callback.attempts + 1}." if callback.attempts else ""
    return (f"Callback to {speakable_number(callback.number)}, for {queue}, asked "
            f"{minutes_words(callback.requested_at, now)}.{said}{tried}")


def attempt_started(t: Telephony, callback: Callback, call: Call, agent_extension: str) -> None:
    """An agent is rung for the callback: it is calling, on CALL."""
    call.callback_id = callback.id
    move_callback(t.session, callback, CallbackState.CALLING, "callback_offered", agent=agent_extension,
                  attempt=callback.attempts + 1, call_sid=call.call_sid)


def attempt_ended(t: Telephony, call: Call, outcome: AttemptOutcome) -> None:
    """The outbound call CALL made for a callback ended so: the callback completes, waits to try again, or fails."""
    callback = t.session.get(Callback, call.callback_id) if call.callback_id else None
    if callback is None or callback.state != CallbackState.CALLING:
        return
    now = utcnow()
    if outcome == AttemptOutcome.REACHED:
        callback.attempts += 1
        move_callback(t.session, callback, CallbackState.COMPLETED, "callback_completed", reason="reached",
                      attempt=callback.attempts, call_sid=call.call_sid)
        return
    if outcome == AttemptOutcome.NOT_RUNG:
        callback.next_attempt_at = now
        move_callback(t.session, callback, CallbackState.PENDING, "callback_back_in_line", why="agent_did_not_take_it",
                      call_sid=call.call_sid)
        t.callbacks_due = True
        return
    callback.attempts += 1
    limit = callback.queue.setting("callback_attempts", t.settings.callback_attempts) if callback.queue else \
        t.settings.callback_attempts
    if callback.attempts >= limit:
        move_callback(t.session, callback, CallbackState.FAILED, "callback_failed", reason="not_answered",
                      attempts=callback.attempts, call_sid=call.call_sid)
        return
    callback.next_attempt_at = now + timedelta(seconds=t.settings.callback_retry_seconds)
    move_callback(t.session, callback, CallbackState.PENDING, "callback_attempt_unanswered",
                  attempt=callback.attempts, next_attempt_at=callback.next_attempt_at.isoformat(),
                  call_sid=call.call_sid)


def give_up(t: Telephony, callback: Callback, reason: str, **detail) -> None:
    """The callback can no longer be made (its number may not be dialled now): it fails, with REASON."""
    move_callback(t.session, callback, CallbackState.FAILED, "callback_failed", reason=reason, **detail)


# The list's order: what still waits first, in its place in line; then the newest finished.
STATE_ORDER = (CallbackState.CALLING, CallbackState.PENDING, CallbackState.FAILED, CallbackState.COMPLETED)
# The most rows the page shows of each finished state.
FINISHED_SHOWN = 100


def callbacks_by_state(session: Session) -> dict[str, list[dict]]:
    """Callbacks in each state: calling and pending in their place in line, failed and completed newest first."""
    rows: dict[str, list[dict]] = {state: [] for state in STATE_ORDER}
    waiting = session.scalars(
        select(Callback).where(Callback.state.in_((CallbackState.PENDING, CallbackState.CALLING)))
        .order_by(Callback.requested_at, Callback.id)
    )
    finished = session.scalars(
        select(Callback).where(Callback.state.in_((CallbackState.FAILED, CallbackState.COMPLETED)))
        .order_by(case((Callback.state == CallbackState.FAILED, 0), else_=1), Callback.ended_at.desc())
        .limit(FINISHED_SHOWN * 2)
    )
    for callback in [*waiting, *finished]:
        if len(rows[callback.state]) < FINISHED_SHOWN or not callback.is_final:
            rows[callback.state].append(callback_row(session, callback))
    return rows


def callback_row(session: Session, callback: Callback) -> dict:
    """One callback as the page and the API show it."""
    call_sid = session.scalar(select(Call.call_sid).where(Call.id == callback.call_id))
    latest = session.scalar(select(Call.call_sid).where(Call.callback_id == callback.id).order_by(Call.id.desc()))
    return {
        "id": callback.id,
        "state": callback.state,
        "number": callback.number,
        "queue": callback.queue.name if callback.queue else None,
        "reason": callback.reason,
        "attempts": callback.attempts,
        "requested_at": callback.requested_at,
        "next_attempt_at": callback.next_attempt_at if not callback.is_final else None,
        "end_reason": callback.end_reason,
        "ended_at": callback.ended_at,
        "call_sid": call_sid,
        "latest_attempt_call_sid": latest,
    }
