"""A callback's state: the one writer of `Callback.state`, and the moves it allows.

A callback waits in line (pending) until an agent is free for it and its
next attempt is due; each attempt is an outbound call (calling): reaching
the customer completes it, and an attempt the customer does not answer puts
it back in line for later, or fails it after the last one. An attempt that
never reached the customer (its agent declined or did not answer) puts it
back in line at once, and is not counted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.events import record_event
from app.models import FINAL_CALLBACK_STATES, Call, Callback, CallbackState, utcnow
from app.states.moves import check_move, stamp_ending

CALLBACK_MOVES: dict[str, frozenset[str]] = {
    CallbackState.PENDING: frozenset({CallbackState.CALLING, CallbackState.FAILED}),
    CallbackState.CALLING: frozenset({CallbackState.PENDING, CallbackState.COMPLETED, CallbackState.FAILED}),
}


def new_callback(session: Session, call: Call, *, number: str, requested_at: datetime) -> Callback:
    """A callback asked for on CALL, to NUMBER, in line from REQUESTED_AT, due at once."""
    callback = Callback(call_id=call.id, queue_id=call.queue_id, number=number, reason=call.ivr_reason,
                        state=CallbackState.PENDING, requested_at=requested_at, next_attempt_at=utcnow())
    session.add(callback)
    session.flush()
    return callback


def move_callback(session: Session, callback: Callback, to: CallbackState, event: str | None = None, *,
                  reason: str | None = None, **detail: Any) -> bool:
    """Move CALLBACK to TO (a final state stamps ended_at and REASON) and write EVENT on its call's timeline."""
    moved = check_move("callback", callback.id, CALLBACK_MOVES, callback.state, to)
    if moved:
        callback.state = to
        if to in FINAL_CALLBACK_STATES:
            stamp_ending(callback, reason)
    if event is not None:
        record_event(session, callback.call, event, callback_id=callback.id, **detail)
    return moved
