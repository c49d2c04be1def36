"""The outgoing event types, the timeline events each is sent for, and the payload of each.

The timeline (app/events.py) already records every step where it happens;
this table picks the steps other systems are told of, so no step sends
anything itself. A payload has one shape for every type (README, "Event
webhooks"): {"type", "id", "timestamp", "data"}. Free text (the caller's
reason, a transfer's summary and its reason) goes through the redactor
first; no secret, no recording address and no card number is ever in one.
"""

from __future__ import annotations

from typing import Any

from app.models import Call, Callback, Event, Transfer
from app.summaries.redaction import redact

# Timeline event → outgoing event type. A type not listed here is never sent.
TIMELINE_TYPES: dict[str, str] = {
    "call_received": "call.received",
    "call_queued": "call.queued",
    "call_requeued": "call.queued",
    "agent_accepted": "call.answered",
    "customer_answered": "call.answered",  # an outbound call's customer picked up
    "transfer_requested": "transfer.started",
    "transfer_consulting": "transfer.accepted",
    "transfer_completed": "transfer.completed",
    "transfer_declined": "transfer.failed",
    "transfer_no_answer": "transfer.failed",
    "transfer_cancelled": "transfer.failed",
    "transfer_caller_hung_up": "transfer.failed",
    "transfer_failed": "transfer.failed",
    "transfer_voicemail": "transfer.failed",
    "voicemail_recorded": "voicemail.recorded",
    "callback_requested": "callback.scheduled",
    "callback_completed": "callback.done",
    "callback_failed": "callback.done",
    "call_ended": "call.ended",
    "outbound_call_failed": "call.ended",
    "customer_unanswered": "call.ended",
}

# Every type a subscriber may ask for, in the order a call meets them.
EVENT_TYPES: tuple[str, ...] = (
    "call.received", "call.queued", "call.answered", "transfer.started", "transfer.accepted",
    "transfer.completed", "transfer.failed", "voicemail.recorded", "callback.scheduled", "callback.done",
    "call.ended",
)


def event_type_of(name: str) -> str | None:
    """The outgoing type a timeline event called NAME is sent as, or None when it is not sent."""
    return TIMELINE_TYPES.get(name)


def payload(session, event: Event, event_type: str, call: Call | None, transfer: Transfer | None) -> dict[str, Any]:
    """What subscribers receive for EVENT (the same for each of them; only the webhook-id differs)."""
    data: dict[str, Any] = _call_data(call) if call is not None else {}
    if event_type.startswith("transfer.") and transfer is not None:
        data["transfer"] = _transfer_data(transfer)
    if event_type == "voicemail.recorded" and call is not None:
        data["voicemail"] = {"duration_seconds": event.detail.get("duration")}
    if event_type.startswith("callback.") and event.detail.get("callback_id") is not None:
        callback = session.get(Callback, event.detail["callback_id"])
        if callback is not None:
            data["callback"] = {"id": callback.id, "state": callback.state, "number": callback.number,
                                "reason": _free_text(callback.end_reason) if event_type == "callback.done" else None}
    if event_type == "call.ended" and call is not None:
        data["status"] = call.status
    return {"type": event_type, "id": f"evt_{event.id}", "timestamp": _iso(event.created_at), "data": data}


def _call_data(call: Call) -> dict[str, Any]:
    return {
        "call_sid": call.call_sid,
        "direction": call.direction,
        "from": call.from_number,
        "to": call.to_number,
        "queue": call.queue.name if call.queue is not None else None,
        "agent_extension": call.agent.extension if call.agent is not None else None,
        "reason": _free_text(call.ivr_reason),
        "status": call.status,
    }


def _transfer_data(transfer: Transfer) -> dict[str, Any]:
    if transfer.target_agent is not None:
        target = {"kind": "agent", "extension": transfer.target_agent.extension}
    elif transfer.target_queue is not None:
        target = {"kind": "queue", "queue": transfer.target_queue.name}
    elif transfer.target_number:
        target = {"kind": "outside", "number": transfer.target_number}
    else:
        target = None  # not chosen yet (a transfer started by the agent's *, before they key the target)
    return {
        "id": transfer.id,
        "mode": transfer.mode,
        "state": transfer.state,
        "from_agent_extension": transfer.from_agent.extension if transfer.from_agent is not None else None,
        "target": target,
        "summary": _free_text(transfer.summary_spoken),
        "reason": _free_text(transfer.end_reason),
    }


def _free_text(text: str | None) -> str | None:
    """Free text as subscribers may see it: card numbers, national ids and bank details replaced by markers."""
    return redact(text) if text else None


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")
