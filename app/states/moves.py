"""What every state machine shares: the check of a move against its table, the refusal, and the stamp of an end."""

from __future__ import annotations

from typing import Mapping

from app.logs import get_logger
from app.models import Callback, Leg, utcnow

log = get_logger("switchboard.states")


class IllegalMove(RuntimeError):
    """A state change that the state's table does not allow: a defect in the step that asked for it."""


def check_move(kind: str, row_id: int | None, table: Mapping[str, frozenset[str]], current: str, to: str) -> bool:
    """True when CURRENT -> TO is a move TABLE allows (logged), False when TO is already held; else IllegalMove."""
    if current == to:
        return False
    if to not in table.get(current, frozenset()):
        raise IllegalMove(f"{kind} {row_id}: {current} -> {to} is not an allowed move")
    log.info("state_moved", kind=kind, id=row_id, previous=current, state=to)
    return True


def stamp_ending(row: Leg | Callback, reason: str | None) -> None:
    """ROW has just reached a final state: it ended now, for REASON."""
    row.end_reason = reason
    row.ended_at = utcnow()
