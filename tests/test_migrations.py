"""Migrations have one head, go up and down cleanly, and match the models."""

import uuid
from contextlib import contextmanager

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from app.database import Base, alembic_config, make_engine, models_own
from app.models import Agent, Call, Event, Leg, Queue, Transfer, Utterance, utcnow
from tests.conftest import TEST_DATABASE, _create_postgres_database


def test_one_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def _scratch_database(tmp_path):
    if TEST_DATABASE == "postgres":
        return _create_postgres_database()
    return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}", (lambda: None)


@contextmanager
def _migrated_to(tmp_path, revision: str):
    """A scratch database at REVISION: the engine to arrange rows with, and a function that upgrades it to head
    (for a migration's own test: what it does to the rows of the revision before it)."""
    url, drop = _scratch_database(tmp_path)
    engine = None
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, revision)
        engine = make_engine(url, pooled=False)
        yield engine, lambda: command.upgrade(cfg, "head")
    finally:
        if engine is not None:
            engine.dispose()
        drop()


def test_upgrade_downgrade_upgrade(tmp_path):
    url, drop = _scratch_database(tmp_path)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "head")
        command.downgrade(cfg, "base")
        engine = make_engine(url, pooled=False)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        command.upgrade(cfg, "head")
        assert {"agents", "calls", "legs", "transfers", "events"} <= set(inspect(engine).get_table_names())
        engine.dispose()
    finally:
        drop()


def test_models_match_migrations(database_url):
    engine = make_engine(database_url, pooled=False)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": models_own})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_models_round_trip(app):
    from app.db import session_scope

    with session_scope(app) as session:
        queue = Queue(name="billing", dtmf_code="1", skill="billing", speech_hints=["bill"])
        agent = Agent(name="Ann", extension="101", sip_uri="sip:ann@x.sip.twilio.com", skills=["billing"])
        call = Call(call_sid="CA" + "1" * 32, from_number="+15551230000", queue=queue, agent=agent, ivr_reason="bill")
        session.add_all([queue, agent, call])
        session.flush()
        session.add(Leg(call_id=call.id, role="caller", twilio_call_sid=call.call_sid, status="connected"))
        session.add(Utterance(call_id=call.id, speaker="caller", text="My bill doubled"))
        transfer = Transfer(
            call_id=call.id,
            mode="warm",
            trigger="dtmf",
            from_agent_id=agent.id,
            summary_structured={"reason": "billing", "mood": "calm"},
            tried_agent_ids=[agent.id],
        )
        session.add(transfer)
        session.flush()
        session.add(Event(call_id=call.id, transfer_id=transfer.id, name="transfer_requested", detail={"to": "102"}))

    with session_scope(app) as session:
        call = session.scalar(select(Call))
        assert call.queue.name == "billing" and call.agent.extension == "101"
        assert call.created_at.tzinfo is not None and call.created_at <= utcnow()
        assert [leg.role for leg in call.legs] == ["caller"]
        assert call.transfers[0].summary_structured == {"reason": "billing", "mood": "calm"}
        assert call.transfers[0].tried_agent_ids == [call.agent.id]
        assert session.scalar(select(Event)).detail == {"to": "102"}
        assert session.scalar(select(Agent)).skills == ["billing"]


def test_0019_takes_the_legs_that_talked_from_what_they_show(tmp_path):
    from sqlalchemy import text

    with _migrated_to(tmp_path, "0017") as (engine, upgrade):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO calls (id, call_sid, direction, from_number, to_number, status, "
                                    "ivr_attempts, created_at) VALUES (1, 'CA1', 'inbound', '', '', 'completed', 0, "
                                    ":at)"), {"at": utcnow()})
            for leg_id, status, answered in ((1, "ended", True), (2, "declined", True), (3, "connected", True),
                                             (4, "no_answer", False), (5, "ended", False)):
                connection.execute(text("INSERT INTO legs (id, call_id, role, status, placement, created_at, "
                                        "answered_at) VALUES (:id, 1, 'agent', :status, 0, :at, :answered)"),
                                   {"id": leg_id, "status": status, "at": utcnow(),
                                    "answered": utcnow() if answered else None})
        upgrade()
        with engine.connect() as connection:
            talked = connection.execute(text("SELECT id FROM legs WHERE connected_at IS NOT NULL ORDER BY id"))
            assert [row.id for row in talked] == [1, 3]


def test_0028_takes_a_calls_first_queueing_from_its_timeline(tmp_path):
    from datetime import timedelta

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    with _migrated_to(tmp_path, "0027") as (engine, upgrade):
        start = utcnow().replace(microsecond=0)
        last_week = start - timedelta(days=7)
        with engine.begin() as connection:
            # Typed as the service writes them; only the columns given (and the defaults) are sent.
            connection.execute(Call.__table__.insert(), [
                {"id": call_id, "call_sid": f"CA{call_id}", "from_number": "", "to_number": "", "status": "completed",
                 "created_at": at} for call_id, at in ((1, start), (2, start), (3, last_week))])
            # Call 1 queued twice (requeued by a transfer), call 2 never, call 3 last week: only the calls the day's
            # figures may count are filled in, so only call 1 gets its first queueing.
            for call_id, seconds, name in ((1, 9, "call_queued"), (1, 5, "call_queued"), (1, 1, "call_received"),
                                           (3, 5, "call_queued")):
                moment = (start if call_id == 1 else last_week) + timedelta(seconds=seconds)
                connection.execute(text("INSERT INTO events (call_id, name, detail, created_at) "
                                        "VALUES (:call_id, :name, '{}', :at)"),
                                   {"call_id": call_id, "name": name, "at": moment})
        upgrade()
        with Session(engine) as session:
            first = dict(session.execute(select(Call.id, Call.first_queued_at).order_by(Call.id)).all())
        assert first == {1: start + timedelta(seconds=5), 2: None, 3: None}
