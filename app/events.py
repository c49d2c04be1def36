"""The call timeline: one Event row per step, mirrored as a log line."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.database import insert_new_rows
from app.logs import get_logger
from app.models import Call, Event, Transfer, utcnow
from app.outgoing.catalogue import event_type_of
from app.outgoing.outbox import queue_deliveries

log = get_logger("switchboard.events")

# Event names that say something went wrong (or a worker died): warnings in the log.
FAULT_ENDINGS = ("_failed", "_unreachable", "_unconfirmed", "_after_crash", "_recovered")


# Timeline details that stay in the database: a recording's address at Twilio (kept in the call's row, played
# through the service's own address). Events written before they were left out still hold it.
PRIVATE_DETAIL = frozenset({"recording_url"})


def shown_detail(event: Event) -> dict[str, Any]:
    """What pages and the API show of an event's detail: all of it but PRIVATE_DETAIL."""
    return {key: value for key, value in (event.detail or {}).items() if key not in PRIVATE_DETAIL}


def record_event(session: Session, call: Call | None, name: str, transfer: Transfer | None = None,
                 **detail: Any) -> int:
    """Add a step to a call's timeline (and log it under the same snake_case name); the new event's id."""
    return _written(session, event_values(call, name, transfer, **detail), call, transfer)


def record_event_on(session: Session, call_id: int, name: str, **detail: Any) -> int:
    """record_event for a call known by its id alone, by a step that reads nothing else of it (a LiveKit room's
    comings and goings); the new event's id. NAME must not be a step subscribers are sent (its payload carries
    the call's data): those are recorded with their call."""
    if event_type_of(name) is not None:
        raise ValueError(f"{name} is sent to subscribers: record it with its call (record_event)")
    return _written(session, {**event_values(None, name, **detail), "call_id": call_id}, None, None)


def _written(session: Session, values: dict[str, Any], call: Call | None, transfer: Transfer | None) -> int:
    # Written at once by one statement built once (no flush of the session's other changes, no ORM object:
    # nothing in a step changes an event, and a later read in the step finds it in the database).
    event_id = insert_new_rows(session, Event, (), values)[0].id
    event_written(session, event_id, values, call, transfer)
    return event_id


def event_values(call: Call | None, name: str, transfer: Transfer | None = None, **detail: Any) -> dict[str, Any]:
    """The row of a step on CALL's timeline, stamped now (the step's time), as `record_event` writes it; a
    statement that writes the call's row too fills its call_id in (states/calls.new_call)."""
    return {
        "call_id": call.id if call is not None else None,
        "transfer_id": transfer.id if transfer is not None else None,
        "name": name,
        "detail": detail,
        "created_at": utcnow(),
    }


def event_written(session: Session, event_id: int, values: dict[str, Any], call: Call | None,
                  transfer: Transfer | None = None) -> None:
    """What follows the row of the event EVENT_ID, written from VALUES: its deliveries, its log line."""
    # Other systems subscribed to this kind of step are told of it: their deliveries are in this transaction.
    queue_deliveries(session, event_id, values, call, transfer)
    # A step that failed, or a fallback taken, is a warning in the log: what an operator alerts on.
    name = values["name"]
    fault = name.endswith(FAULT_ENDINGS) or "fallback" in name or "unreachable" in name
    (log.warning if fault else log.info)(name, call_id=values["call_id"], transfer_id=values["transfer_id"],
                                          **values["detail"])
