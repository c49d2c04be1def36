"""The configuration every call reads (the IVR's menu, who subscribes to events) is read once per version: the
database's triggers change the version with any change to the queues or the subscribers, whoever makes it, and a
new call's INSERT reads it (migration 0025, database.read_configuration)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from flask import has_request_context, request
from sqlalchemy import create_engine, delete, event, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models import CONFIGURATION_VERSION, Call, EventDelivery, Queue
from tests.event_receiver import Receiver
from tests.test_event_webhooks import subscribe


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def _version(centre) -> int | None:
    with centre.db() as session:
        return session.scalar(select(CONFIGURATION_VERSION))


def _statements_of_new_calls(centre, callers: int) -> list[list[str]]:
    """The statements each of CALLERS new calls' `/twilio/voice` sent, one list per call."""
    sent: list[list[str]] = []
    serving: dict[int, bool] = {}

    def arrived() -> None:
        serving[threading.get_ident()] = request.path == "/twilio/voice"
        if serving[threading.get_ident()]:
            sent.append([])

    def counted(_conn, _cursor, statement, *_args) -> None:
        if has_request_context() and serving.get(threading.get_ident()) and not statement.startswith("BEGIN"):
            sent[-1].append(statement)

    centre.app.before_request(arrived)
    event.listen(Engine, "before_cursor_execute", counted)
    try:
        for number in range(callers):
            centre.dial(f"+1555123{number:04d}")
    finally:
        event.remove(Engine, "before_cursor_execute", counted)
    return sent


def _reads(statements: list[str], table: str) -> int:
    return sum(1 for statement in statements if statement.startswith("SELECT") and f"FROM {table}" in statement)


def test_the_version_changes_with_every_change_to_the_queues_and_the_subscribers(centre, receiver):
    seen = [_version(centre)]
    assert seen[0] is not None
    with centre.db() as session:
        session.add(Queue(name="Sales", dtmf_code="7", skill="sales"))
    seen.append(_version(centre))
    with centre.db() as session:
        session.execute(update(Queue).where(Queue.name == "Sales").values(speech_hints=["buy"]))
    seen.append(_version(centre))
    with centre.db() as session:
        session.execute(delete(Queue).where(Queue.name == "Sales"))
    seen.append(_version(centre))
    subscribe(centre.app, receiver, types="call.received")
    seen.append(_version(centre))
    assert len(set(seen)) == len(seen), seen
    # Nothing else moves it: a call coming and going is not configuration.
    centre.dial().hangup()
    assert _version(centre) == seen[-1]


def test_new_calls_read_the_menu_and_the_subscribers_once_per_version(centre):
    first, second, third = _statements_of_new_calls(centre, 3)
    assert _reads(first, "queues") <= 1 and _reads(first, "event_subscribers") <= 1
    for later in (second, third):
        assert _reads(later, "queues") == 0 and _reads(later, "event_subscribers") == 0, later
        # The call (whose INSERT asks for the caller's last call and the configuration's version too), its leg,
        # its event: a new call claims no delivery (app/voice/guard.py, ServesArrival). One statement on
        # PostgreSQL (the leg's and the event's INSERTs inside the call's WITH), three on SQLite.
        postgres = centre.app.extensions["db_engine"].dialect.name == "postgresql"
        assert len(later) == (1 if postgres else 3), later


def test_a_queue_another_instance_adds_is_in_the_next_callers_menu_at_once(centre):
    assert "press 3" not in centre.dial("+15551230001").heard_text
    other_instance = create_engine(centre.app.config["SETTINGS"].database_url)
    try:
        with Session(other_instance) as session, session.begin():
            session.add(Queue(name="Sales", dtmf_code="3", skill="sales", speech_hints=["buy"]))
    finally:
        other_instance.dispose()
    assert "press 3 for Sales" in centre.dial("+15551230002").heard_text


def test_a_subscriber_added_meanwhile_is_told_of_the_very_next_call(centre, receiver):
    centre.dial("+15551230001")  # nobody subscribed: the process keeps that
    subscribe(centre.app, receiver, types="call.received")
    caller = centre.dial("+15551230002")
    with centre.db() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == caller.sid))
        told = Counter(session.scalars(select(EventDelivery.event_type).where(EventDelivery.call_id == call_id)))
    assert told == {"call.received": 1}


def test_a_missing_version_row_is_written_again_by_the_next_change(centre):
    with centre.db() as session:
        session.execute(text("DELETE FROM configuration_version"))
    assert _version(centre) is None
    # No version read: each new call reads its menu afresh (nothing kept is trusted).
    (statements,) = _statements_of_new_calls(centre, 1)
    assert _reads(statements, "queues") == 1
    with centre.db() as session:
        session.add(Queue(name="Sales", dtmf_code="7", skill="sales"))
    assert _version(centre) is not None
