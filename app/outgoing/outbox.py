"""The outbox of outgoing events: a delivery per subscriber, written in the step's own transaction.

The timeline's `record_event` hands every event here. An event of a type
some subscribers want becomes one `EventDelivery` row per subscriber, in
the same transaction as the step that recorded it: a step rolled back
sends nothing, a step committed is sent even if the worker dies just after
(the `deliver_due_events` timer finds its rows). After the commit the
session's `after_commit` hook (app/jobs/setup.py) queues the delivering job
of each (subscriber, call) line the step added to.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.database import read_configuration
from app.models import Call, Event, EventDelivery, EventSubscriber, Transfer
from app.outgoing.catalogue import event_type_of, payload

# session.info key: the (subscriber id, call id) lines with deliveries added since the last commit.
LINES_ADDED = "event_delivery_lines"
# session.info key: the subscribers as read in the session's current transaction, and that transaction.
SUBSCRIBERS_READ = "event_subscribers_read"


# Who subscribes to what: all that a step needs of its subscribers, built once.
_SUBSCRIBERS = select(EventSubscriber.__table__.c.id, EventSubscriber.__table__.c.event_types).order_by(
    EventSubscriber.__table__.c.id)


def _subscribers(session: Session) -> list:
    """Every subscriber's id and event types, read once per transaction however many events a step records."""
    transaction = session.get_transaction()
    read = session.info.get(SUBSCRIBERS_READ)
    if transaction is None or read is None or read[0] is not transaction:
        subscribers = read_configuration(session, "event_subscribers", lambda: session.execute(_SUBSCRIBERS).all())
        read = session.info[SUBSCRIBERS_READ] = (session.get_transaction(), subscribers)
    return read[1]


def queue_deliveries(session: Session, event_id: int, values: dict[str, Any], call: Call | None,
                     transfer: Transfer | None) -> int:
    """Add a delivery of the event EVENT_ID (written from VALUES, `record_event`) for each subscriber that wants
    its type; how many were added."""
    event_type = event_type_of(values["name"])
    if event_type is None:
        return 0
    wanted = [s for s in _subscribers(session) if event_type in (s.event_types or ())]
    if not wanted:
        return 0
    event = Event(id=event_id, **values)  # for the payload only: never added to the session
    body = payload(session, event, event_type, call, transfer)
    for subscriber in wanted:
        session.add(EventDelivery(subscriber_id=subscriber.id, call_id=event.call_id, event_type=event_type,
                                  message_id=f"msg_{uuid.uuid4().hex}", payload=body,
                                  next_attempt_at=event.created_at))
        session.info.setdefault(LINES_ADDED, set()).add((subscriber.id, event.call_id))
    session.flush()
    return len(wanted)


def lines_added(session: Session) -> set[tuple[int, int | None]]:
    """The lines with deliveries added since the last commit, forgotten once read."""
    return session.info.pop(LINES_ADDED, set())
