"""What the call page, the agent console and the JSON API may do to a transfer under way: one table for all three.

Each action is one step on the call: the call's row is locked first and the
transfer read afresh under it, so an action racing the caller's hang-up (or
another action) acts on what that one left, and an action on a call that
has ended is refused in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select

from app.actors import Actor
from app.models import Transfer, TransferState
from app.primitives.context import Telephony
from app.primitives.legs import lock_call
from app.transfers import service


@dataclass(frozen=True)
class TransferAction:
    """One thing a page, the console or the API can do to a transfer."""

    name: str  # in URLs
    title: str  # on buttons
    summary: str  # what it does, for the API's document
    done: str  # what the call page says once it is done
    told_agent: str  # what the transferring agent's console says once it is done
    possible: Callable[[Transfer], bool]  # whether the transfer's state allows it (the buttons shown)
    perform: Callable[[Telephony, Transfer, Actor], None]  # (t, transfer, who asked)

    @property
    def flag(self) -> str:
        """The key that says whether it is possible, in the pages' data: can_complete, can_three_way…"""
        return "can_" + self.name.replace("-", "_")


def _completable(transfer: Transfer) -> bool:
    return transfer.state in (TransferState.CONSULTING, TransferState.WHISPERING)


TRANSFER_ACTIONS: dict[str, TransferAction] = {
    action.name: action
    for action in (
        TransferAction(
            "complete", "Complete", "Connect the caller with the target; the transferring agent leaves.",
            "Transfer completed: the caller is connected to the new agent.", "Transfer completed.",
            _completable, lambda t, transfer, by: service.complete(t, transfer, requester=None, by=by)),
        TransferAction(
            "three-way", "Three-way",
            "The caller, the target and the transferring agent talk together; the target keeps the call after.",
            "Three-way call: the caller, the agent and the new agent are together.",
            "Three-way call: you, the caller and your colleague.",
            _completable, lambda t, transfer, by: service.three_way(t, transfer, requester=None, by=by)),
        TransferAction(
            "swap", "Swap", "The transferring agent switches between the caller and the target (the other one holds).",
            "Swapped: the agent is with the other party; the first one holds.",
            "Swapped: you are with the other party; the first one holds.",
            lambda transfer: transfer.state == TransferState.CONSULTING,
            lambda t, transfer, by: service.swap(t, transfer, requester=None, by=by)),
        TransferAction(
            "cancel", "Cancel", "Abort: the target is released and the transferring agent returns to the caller.",
            "Transfer cancelled: the agent is back with the caller.",
            "Transfer cancelled: you are back with the caller.",
            lambda transfer: not transfer.is_final,
            lambda t, transfer, by: service.cancel(t, transfer, f"cancelled by {by}", requester=None, by=by)),
    )
}


def possible_actions(transfer: Transfer, *, allowed: bool = True) -> dict[str, bool]:
    """Which actions the transfer's state allows now, as the pages' flags ({"can_complete": True, …});
    all False unless ALLOWED (the viewer may not act on it)."""
    return {action.flag: allowed and action.possible(transfer) for action in TRANSFER_ACTIONS.values()}


def act_on_transfer(t: Telephony, transfer_id: int, name: str, *, by: Actor) -> Transfer:
    """Run the action NAME on the transfer, its call locked and re-read first; TransferRefused in words if it
    cannot be done now (the call is over, or the transfer's state does not allow it).

    BY is who asked (a supervisor, the transferring agent, an API token): the timeline's `by`.
    """
    action = TRANSFER_ACTIONS[name]
    call_id = t.session.scalar(select(Transfer.call_id).where(Transfer.id == transfer_id))
    call = lock_call(t, call_id) if call_id is not None else None
    if call is None:
        raise service.TransferRefused(f"there is no transfer {transfer_id}")
    transfer = t.session.get(Transfer, transfer_id)
    if call.is_final:
        raise service.TransferRefused("the call has ended")
    action.perform(t, transfer, by)
    return transfer
