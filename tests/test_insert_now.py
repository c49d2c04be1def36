"""`insert_now`: a new row written by one statement built once, then in the session as the ORM's flush leaves it."""

from __future__ import annotations

from sqlalchemy import func, select

from app.database import insert_now, insert_now_with, link_loaded
from app.events import record_event
from app.models import Call, CallDirection, CallStatus, Event, Leg, LegRole, LegStatus
from app.states.calls import new_call
from tests.sent_statements import sent_statements


def _call(sid: str) -> Call:
    return Call(call_sid=sid, from_number="+15550001111", to_number="+15550100000", status=CallStatus.IVR)


def test_the_row_is_written_with_its_defaults_and_nothing_is_left_pending(app):
    make_session = app.extensions["db_sessionmaker"]
    with make_session() as session:
        call = insert_now(session, _call("CA-insert-now-1"))
        assert call.id is not None
        assert (call.direction, call.ivr_attempts, call.queue_id) == (CallDirection.INBOUND, 0, None)
        assert call.created_at is not None
        assert call in session and not session.new and not session.dirty
        created_at = call.created_at
        session.commit()
    with make_session() as session:
        stored = session.scalar(select(Call).where(Call.call_sid == "CA-insert-now-1"))
        assert (stored.id, stored.status, stored.direction) == (call.id, CallStatus.IVR, CallDirection.INBOUND)
        assert stored.created_at == created_at


def test_a_row_whose_key_is_there_already_is_not_written(app):
    make_session = app.extensions["db_sessionmaker"]
    with make_session() as session:
        first = insert_now(session, _call("CA-insert-now-2"), unless_present=("call_sid",))
        again = insert_now(session, _call("CA-insert-now-2"), unless_present=("call_sid",))
        assert first is not None and again is None
        session.commit()
        assert session.scalar(select(func.count(Call.id)).where(Call.call_sid == "CA-insert-now-2")) == 1


def test_a_rollback_takes_the_row_out_of_the_session_as_it_does_a_flushed_one(app):
    make_session = app.extensions["db_sessionmaker"]
    with make_session() as session:
        call = insert_now(session, _call("CA-insert-now-3"))
        flushed = _call("CA-insert-now-4")
        session.add(flushed)
        session.flush()
        session.rollback()
        for row in (call, flushed):
            assert row not in session
        assert call.call_sid == "CA-insert-now-3"  # what it held is kept, as for the flushed one
        # The same step run again (SQLite may hand out the same id again) is written afresh.
        again = insert_now(session, _call("CA-insert-now-3"))
        session.commit()
        assert session.scalar(select(func.count(Call.id)).where(Call.call_sid == "CA-insert-now-3")) == 1
        assert again in session


def test_a_new_leg_shows_in_the_calls_loaded_legs_and_leaves_unloaded_ones_unread(app):
    make_session = app.extensions["db_sessionmaker"]
    with make_session() as session:
        call = insert_now(session, _call("CA-insert-now-5"))
        assert call.legs == []  # loaded now
        leg = insert_now(session, Leg(call_id=call.id, role=LegRole.CALLER, status=LegStatus.CONNECTED))
        link_loaded(call, "legs", leg, "call")
        assert call.legs == [leg] and leg.call is call
        assert not session.dirty and not session.new
        session.commit()
    with make_session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == "CA-insert-now-5"))
        leg = insert_now(session, Leg(call_id=call.id, role=LegRole.AGENT, status=LegStatus.DIALING))
        link_loaded(call, "legs", leg, "call")
        assert "legs" not in call.__dict__  # not read for it
        assert [one.role for one in call.legs] == [LegRole.CALLER, LegRole.AGENT]  # read when asked


def test_a_timeline_event_is_in_the_database_and_not_in_the_session(app):
    make_session = app.extensions["db_sessionmaker"]
    with make_session() as session:
        call = insert_now(session, _call("CA-insert-values-1"))
        event_id = record_event(session, call, "probe", digits="1")
        assert isinstance(event_id, int)
        assert not any(isinstance(row, Event) for row in session) and not session.new
        stored = session.get(Event, event_id)  # read from the database: the session held no such object
        assert (stored.call_id, stored.name, stored.detail) == (call.id, "probe", {"digits": "1"})
        assert stored.created_at is not None
        session.commit()


def test_a_row_and_the_rows_that_refer_to_it_are_written_together(app):
    make_session = app.extensions["db_sessionmaker"]
    postgres = app.extensions["db_engine"].dialect.name == "postgresql"
    children = ((Leg, "call_id", {"role": LegRole.CALLER, "status": LegStatus.CONNECTED}),
                (Event, "call_id", {"name": "probe", "detail": {"digits": "1"}}))
    with make_session() as session, sent_statements(app.extensions["db_engine"]) as sent:
        call, (leg_id, event_id), () = insert_now_with(session, _call("CA-insert-with-1"), children, (), {},
                                                       unless_present=("call_sid",))
        # One statement on PostgreSQL (INSERTs inside WITH); SQLite has none such: one per row.
        written = [statement for statement in sent if statement != "BEGIN IMMEDIATE"]
        assert len(written) == (1 if postgres else 3), sent
        # The row is in the session as read back, with its defaults; the children are not.
        assert (call.direction, call.ivr_attempts, call.queue_id) == (CallDirection.INBOUND, 0, None)
        assert call.created_at is not None and call in session and not session.new and not session.dirty
        assert not any(isinstance(row, (Leg, Event)) for row in session)
        again = insert_now_with(session, _call("CA-insert-with-1"), children, (), {}, unless_present=("call_sid",))
        assert again == (None, (None, None), ())
        session.commit()
    with make_session() as session:
        leg, event = session.get(Leg, leg_id), session.get(Event, event_id)
        assert (leg.call_id, leg.role, leg.status, leg.placement) == (call.id, LegRole.CALLER, LegStatus.CONNECTED, 0)
        assert leg.created_at is not None  # its Python-side default, sent with it
        assert (event.call_id, event.name, event.detail) == (call.id, "probe", {"digits": "1"})
        assert session.scalar(select(func.count(Leg.id)).where(Leg.call_id == call.id)) == 1
        assert session.scalar(select(func.count(Event.id)).where(Event.call_id == call.id)) == 1


def test_a_new_call_is_written_with_its_callers_leg_and_its_first_event_once(app):
    make_session = app.extensions["db_sessionmaker"]
    with make_session() as session:
        call, last_call_id = new_call(session, "CA-new-call-1", "+15550001111", "+15550100000", "token")
        assert last_call_id is None and (call.status, call.call_token) == (CallStatus.IVR, "token")
        assert new_call(session, "CA-new-call-1", "+15550001111", "+15550100000") == (None, None)
        session.commit()
    with make_session() as session:
        (leg,) = session.scalars(select(Leg).where(Leg.call_id == call.id)).all()
        assert (leg.role, leg.status, leg.twilio_call_sid) == (LegRole.CALLER, LegStatus.CONNECTED, "CA-new-call-1")
        assert leg.answered_at is not None and leg.connected_at is not None
        (event,) = session.scalars(select(Event).where(Event.call_id == call.id)).all()
        assert (event.name, event.detail) == ("call_received", {"from_number": "+15550001111",
                                                                 "to_number": "+15550100000"})
