"""A transfer's state: the one writer of `Transfer.state`, and the moves it allows.

`requested` (the menu is open, or the form's target is being checked) →
`dialing` (the target rings) → `whispering` (they hear the summary) →
`consulting` (they talk with the transferring agent) → `completed`; it
ends early as `declined`, `no_answer`, `failed`, `cancelled` or
`caller_hung_up`. A queue's next agent is rung from `requested` again.
Every move is on the call's timeline as `transfer_<state>` unless the step
names its own event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.events import record_event
from app.models import Call, Transfer, TransferState, utcnow
from app.states.moves import check_move

_GIVEN_UP = frozenset({TransferState.DECLINED, TransferState.NO_ANSWER, TransferState.FAILED,
                       TransferState.CANCELLED, TransferState.CALLER_HUNG_UP})

TRANSFER_MOVES: dict[str, frozenset[str]] = {
    # Given up from requested too: a queue whose agents all let it go.
    TransferState.REQUESTED: frozenset({TransferState.DIALING}) | _GIVEN_UP,
    # Back to requested: the dial failed, or the queue's next agent is rung.
    TransferState.DIALING: frozenset({TransferState.REQUESTED, TransferState.WHISPERING}) | _GIVEN_UP,
    TransferState.WHISPERING: frozenset({TransferState.REQUESTED, TransferState.CONSULTING,
                                         TransferState.COMPLETED}) | _GIVEN_UP,
    TransferState.CONSULTING: frozenset({TransferState.COMPLETED}) | _GIVEN_UP,
}


def new_transfer(session: Session, call: Call, *, mode: str, trigger: str, from_agent_id: int | None,
                 notes: str | None) -> Transfer:
    """A transfer of CALL, REQUESTED (not yet flushed: the caller adds it under its own guard)."""
    return Transfer(call_id=call.id, mode=mode, trigger=trigger, state=TransferState.REQUESTED,
                    from_agent_id=from_agent_id, notes=notes, tried_agent_ids=[])


def move_transfer(session: Session, transfer: Transfer, to: TransferState, event: str | None = None,
                  **detail: Any) -> bool:
    """Move TRANSFER to TO and write the step on the timeline (EVENT, or `transfer_<to>`, with the previous state).

    A final state stamps ended_at and keeps detail's `reason` as the end
    reason. A move to the state already held writes its event again (a
    queue's next agent is `transfer_dialing` once more).
    """
    previous = transfer.state
    moved = check_move("transfer", transfer.id, TRANSFER_MOVES, previous, to)
    if moved:
        transfer.state = to
        if transfer.is_final:
            transfer.ended_at = transfer.ended_at or utcnow()
            transfer.end_reason = detail.get("reason", transfer.end_reason)
    if event is None:
        record_event(session, transfer.call, f"transfer_{to}", transfer=transfer, previous=previous, **detail)
    else:
        record_event(session, transfer.call, event, transfer=transfer, **detail)
    return moved


def active_transfer(call: Call) -> Transfer | None:
    """The call's transfer under way, if any (there is at most one)."""
    return next((transfer for transfer in call.transfers if not transfer.is_final), None)
