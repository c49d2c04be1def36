"""Transfer state changes shared by every path: moving between states and closing a transfer."""

from __future__ import annotations

from app.events import record_event
from app.models import Call, Transfer, TransferState, utcnow
from app.telephony.context import Telephony


def move(t: Telephony, transfer: Transfer, state: str, **detail) -> None:
    """Move a transfer to STATE and write the step to the call's timeline."""
    previous = transfer.state
    transfer.state = state
    if transfer.is_final:
        transfer.ended_at = transfer.ended_at or utcnow()
        transfer.end_reason = detail.get("reason", transfer.end_reason)
    record_event(t.session, transfer.call, f"transfer_{state}", transfer=transfer, previous=previous, **detail)


def active_transfer(call: Call) -> Transfer | None:
    """The call's transfer under way, if any (there is at most one)."""
    return next((transfer for transfer in call.transfers if not transfer.is_final), None)


def caller_hung_up_during_transfers(t: Telephony, call: Call) -> list[str]:
    """Close the transfer under way because the caller left; returns consult rooms to close."""
    transfer = active_transfer(call)
    if transfer is None:
        return []
    move(t, transfer, TransferState.CALLER_HUNG_UP, reason="caller hung up")
    return [transfer.consult_room] if transfer.consult_room else []
