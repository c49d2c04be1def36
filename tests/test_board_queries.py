"""The board's data costs a fixed number of database statements, however many calls and transfers are live.

Counted with SQLAlchemy's cursor events on the board's own session: a query
per live call (a call's transfers loaded one by one, say) would make the
count grow with the calls, and 50 boards on a busy floor would cost the
webhooks their speed (issue 23: pages whose cost does not grow with live
calls). Statements are counted, never timed.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from sqlalchemy import event, func, insert, select

from app.auth.service import create_user
from app.calls.figures import live_call_times
from app.database import make_engine
from app.db import session_scope
from app.live.readers import board_reader, call_reader
from app.models import Agent, Call, CallStatus, Event, Leg, LegRole, LegStatus, Queue, Transfer
from app.supervisor.board import board_snapshot
from tests.conftest import TEST_DATABASE
from tests.sent_statements import sent_statements
from tests.test_supervisor_pages import PASSWORD, signed_in
from tests.transfer_helpers import connected_call


def _add_live_calls(app, calls: int) -> None:
    """CALLS more live calls in billing, each connected to an agent, every other one with a warm transfer dialing."""
    with session_scope(app) as session:
        billing = session.scalar(select(Queue).where(Queue.name == "billing"))
        agents = list(session.scalars(select(Agent).order_by(Agent.extension)))
        first = session.scalar(select(func.count()).select_from(Call))
        for n in range(first, first + calls):
            agent = agents[n % len(agents)]
            call = Call(call_sid=f"CA{n:032d}", from_number=f"+1555000{n:04d}", to_number="+15550100000",
                        status=CallStatus.CONNECTED, queue_id=billing.id, agent_id=agent.id)
            session.add(call)
            session.flush()
            session.add(Leg(call_id=call.id, role=LegRole.CALLER, status=LegStatus.CONNECTED))
            session.add(Leg(call_id=call.id, role=LegRole.AGENT, status=LegStatus.CONNECTED, agent_id=agent.id))
            if n % 2:
                session.add(Transfer(call_id=call.id, mode="warm", trigger="api", state="dialing",
                                     from_agent_id=agent.id, target_agent_id=agents[(n + 1) % len(agents)].id,
                                     tried_agent_ids=[]))


def _statements_of_a_snapshot(app) -> int:
    return len(_texts_of_a_snapshot(app))


def _texts_of_a_snapshot(app) -> list[str]:
    """The text of each statement one board snapshot sends."""
    with session_scope(app) as session:
        sent = []

        def listener(_conn, _cursor, statement, *_args) -> None:
            sent.append(statement)

        bind = session.get_bind()
        event.listen(bind, "before_cursor_execute", listener)
        try:
            snapshot = board_snapshot(session, app.config["SETTINGS"])
        finally:
            event.remove(bind, "before_cursor_execute", listener)
        assert snapshot["calls"]
        return sent


def test_the_boards_snapshot_costs_the_same_statements_for_4_live_calls_as_for_40(centre):
    _add_live_calls(centre.app, 4)
    few = _statements_of_a_snapshot(centre.app)
    _add_live_calls(centre.app, 36)
    many = _statements_of_a_snapshot(centre.app)
    assert many == few, f"{few} statements for 4 live calls, {many} for 40"


def test_the_boards_statements_read_the_same_for_4_live_calls_as_for_40(centre):
    """No statement carries a list of the calls' ids (an IN-list grows with the calls): its text would change
    from one read to the next, and be parsed anew by SQLAlchemy, the driver and the database each time, on a
    board read twice a second (a list of 2,000 ids cost the read more than its rows)."""
    _add_live_calls(centre.app, 4)
    few = _texts_of_a_snapshot(centre.app)
    _add_live_calls(centre.app, 36)
    many = _texts_of_a_snapshot(centre.app)
    assert many == few, [text for text in many if text not in few]


def test_a_caller_who_arrives_between_the_boards_statements_costs_the_read_nothing(centre):
    """The list of calls and their timelines are two statements, each seeing the database as it is when it starts:
    a caller who arrives between them is in the second only. Their events are passed over (they failed the read,
    and the board's update waited for the retry)."""
    _add_live_calls(centre.app, 2)
    with session_scope(centre.app) as session:
        listed, arrived = list(session.scalars(select(Call).order_by(Call.id)))
        for call in (listed, arrived):
            session.add(Event(call_id=call.id, name="call_queued", detail={}))
        session.flush()
        times = live_call_times(session, [listed], select(Call.id).subquery())
        assert list(times) == [listed.id] and times[listed.id].phase == "queue"


@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="SQLite's BEGIN IMMEDIATE holds writers off for the whole read")
def test_a_board_read_sees_one_moment_of_the_database(centre):
    """A live board's read is several statements: its cursor, the list of calls, their timelines and transfers,
    the queues' figures, the agents. A caller committed while it runs (here, right after its first statement)
    is in none of them, so the figures, the list, its count and the cursor agree; the next read has them all."""
    app = centre.app
    _add_live_calls(app, 2)
    read = board_reader(app, "board", "")
    before = read()
    other = make_engine(str(app.extensions["db_engine"].url.render_as_string(hide_password=False)), pooled=False)
    arrived: list[str] = []

    def a_caller_arrives(_conn, _cursor, _statement, *_args) -> None:
        if arrived:
            return
        arrived.append("CA" + "9" * 32)
        with other.begin() as connection:
            billing = connection.scalar(select(Queue.id).where(Queue.name == "billing"))
            call_id = connection.execute(insert(Call).values(
                call_sid=arrived[0], from_number="+15550009999", to_number="+15550100000",
                status=CallStatus.QUEUED, queue_id=billing, queued_at=func.now()).returning(Call.id)).scalar_one()
            connection.execute(insert(Event).values(call_id=call_id, name="call_queued", detail={}))

    engine = app.extensions["db_engine"]
    event.listen(engine, "after_cursor_execute", a_caller_arrives)
    try:
        during = read()
    finally:
        event.remove(engine, "after_cursor_execute", a_caller_arrives)
        other.dispose()
    assert arrived, "the caller arrived during the read"

    def shown(reading):
        billing = next(q for q in reading.snapshot["queues"] if q["queue"] == "billing")
        return ([c["call_sid"] for c in reading.snapshot["calls"]], reading.snapshot["calls_total"],
                billing["waiting"], reading.cursor)

    assert shown(during) == shown(before)
    calls, total, waiting, cursor = shown(read())
    assert arrived[0] in calls and total == 3 and waiting == 1 and cursor != before.cursor


def test_past_its_page_of_calls_the_board_lists_the_longest_running_and_counts_the_rest(centre):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], board_calls_shown=3)
    _add_live_calls(centre.app, 2)
    few = _statements_of_a_snapshot(centre.app)
    _add_live_calls(centre.app, 38)
    many = _statements_of_a_snapshot(centre.app)
    assert many == few + 1, "one count of the calls left out, whatever their number"
    with session_scope(centre.app) as session:
        snapshot = board_snapshot(session, centre.app.config["SETTINGS"])
        oldest = list(session.scalars(select(Call.call_sid).order_by(Call.created_at, Call.id).limit(3)))
    assert [row["call_sid"] for row in snapshot["calls"]] == oldest and snapshot["calls_total"] == 40

    with centre.db() as session:
        create_user(session, "sam", PASSWORD, "supervisor")
    html = " ".join(signed_in(centre, "sam").get("/board").get_data(as_text=True).split())
    assert 'data-count="calls">40<' in html
    assert "Showing the <span data-calls-shown>3</span> longest-running of <span data-calls-total>40</span>" in html


def test_a_call_pages_live_read_reads_the_call_once_and_its_cursor_in_one_statement(centre):
    caller, _alice = connected_call(centre)
    with centre.db() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == caller.sid))
    read = call_reader(centre.app, call_id, may_act=True, agent_id=None)
    with sent_statements(centre.app.extensions["db_engine"]) as sent:
        reading = read()
    assert reading.snapshot["call"]["call_sid"] == caller.sid and reading.snapshot["timeline"]
    event_id, utterance_id = (int(part) for part in reading.cursor.split("."))
    assert event_id > 0 and utterance_id > 0  # the call has a timeline and a transcript
    reads_of_the_call = [text for text in sent if re.search(r"FROM calls WHERE calls\.id = ", text)]
    cursors = [text for text in sent if "max(events.id)" in text or "max(utterances.id)" in text]
    assert len(reads_of_the_call) == 1, reads_of_the_call
    assert len(cursors) == 1 and "max(utterances.id)" in cursors[0], cursors
