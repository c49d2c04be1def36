"""A transfer's state: the one writer of `Transfer.state`, and the moves it allows.

`requested` (the menu is open, or the form's target is being checked) →
[`waiting` (at a queue whose agents are all busy, until one is free) →]
`dialing` (the target rings) → `whispering` (they hear the summary) →
`consulting` (they talk with the transferring agent) → `completed`; it
ends early as `declined`, `no_answer`, `voicemail` (a machine answered an
outside target), `failed`, `cancelled` or `caller_hung_up`. A queue's next agent is rung from `requested` again.
Every move is on the call's timeline as `transfer_<state>` unless the step
names its own event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.database import count_ahead
from app.events import record_event
from app.models import Call, Queue, Transfer, TransferState, utcnow
from app.states.moves import check_move

_GIVEN_UP = frozenset({TransferState.DECLINED, TransferState.NO_ANSWER, TransferState.FAILED,
                       TransferState.CANCELLED, TransferState.CALLER_HUNG_UP, TransferState.VOICEMAIL})

TRANSFER_MOVES: dict[str, frozenset[str]] = {
    # Given up from requested too: a queue whose agents all let it go.
    TransferState.REQUESTED: frozenset({TransferState.WAITING, TransferState.DIALING}) | _GIVEN_UP,
    # Given up from waiting: cancelled, the caller gone, or nobody free within the wait limit.
    TransferState.WAITING: frozenset({TransferState.DIALING}) | _GIVEN_UP,
    # Back to requested: the dial failed, or the queue's next agent is rung.
    TransferState.DIALING: frozenset({TransferState.REQUESTED, TransferState.WHISPERING}) | _GIVEN_UP,
    TransferState.WHISPERING: frozenset({TransferState.REQUESTED, TransferState.CONSULTING,
                                         TransferState.COMPLETED}) | _GIVEN_UP,
    TransferState.CONSULTING: frozenset({TransferState.COMPLETED}) | _GIVEN_UP,
}


def new_transfer(session: Session, call: Call, *, mode: str, trigger: str, from_agent_id: int | None,
                 notes: str | None, requested_by: str | None = None) -> Transfer:
    """A transfer of CALL, REQUESTED (not yet flushed: the caller adds it under its own guard); REQUESTED_BY is
    who asked (an actor's label), whose the notes are."""
    return Transfer(call_id=call.id, mode=mode, trigger=trigger, state=TransferState.REQUESTED,
                    from_agent_id=from_agent_id, notes=notes, requested_by=requested_by, tried_agent_ids=[])


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


def waiting_transfers(session: Session, skills: list[str] | None = None) -> list[int]:
    """Ids of the transfers waiting at a queue (of one of SKILLS, if given), the longest-waiting first."""
    return list(session.scalars(waiting_at(skills)))


def waiting_at(skills: list[str] | None = None) -> Select:
    """The query of `waiting_transfers`: the ids of the transfers waiting at a queue of one of SKILLS (any, if
    None), the longest-waiting first."""
    query = (select(Transfer.id).join(Queue, Queue.id == Transfer.target_queue_id)
             .where(Transfer.state == TransferState.WAITING).order_by(Transfer.waiting_since, Transfer.id))
    return query.where(Queue.skill.in_(skills)) if skills is not None else query


def place_in_line(session: Session, transfer: Transfer, *, joining: bool = False) -> int | None:
    """The waiting transfer's place at its queue (1: next), counting the transfers waiting there before it;
    None when it is not waiting. Transfers go ahead of the queue's callers. JOINING: it is about to wait (its
    waiting_since set, its state not moved yet): the place it takes."""
    if (transfer.state != TransferState.WAITING and not joining) or transfer.waiting_since is None:
        return None
    return count_ahead(session, (Transfer.waiting_since, Transfer.id), (transfer.waiting_since, transfer.id),
                       Transfer.state == TransferState.WAITING,
                       Transfer.target_queue_id == transfer.target_queue_id) + 1
