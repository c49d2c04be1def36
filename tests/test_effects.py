"""Effects recorded by a step: kept in order, the last move of a leg wins, dropped with what was never committed."""

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.database import Base
from app.db import _count_commit, commits
from app.jobs.steps import job_step
from app.models import Leg, LegRole, LegStatus, OutboxEffect
from app.primitives.effects import (
    EFFECT_KINDS,
    CloseRoom,
    Dial,
    HangUp,
    OpenRoom,
    PendingEffects,
    Redirect,
    RemoveFromRoom,
    StartSummary,
    SwitchTranscription,
    effect_as_row,
    effect_from_row,
    repeatable,
)
from tests.sent_statements import sent_statements
from tests.transfer_helpers import connected_call


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def _outbox(session) -> int:
    return session.scalar(select(func.count()).select_from(OutboxEffect))


def test_effects_run_in_the_order_the_step_recorded_them(session):
    effects = PendingEffects(session)
    effects.add(HangUp(1, "CA1", 2))
    effects.add(Redirect(1, 3, "CA3", "https://x/twilio/agent/rejoin"))
    effects.add(CloseRoom(1, "call_1"))
    assert [type(e).__name__ for e in effects.take()] == ["HangUp", "Redirect", "CloseRoom"]
    assert effects.take() == []


def test_only_the_last_redirect_of_a_leg_is_kept(session):
    effects = PendingEffects(session)
    effects.add(Redirect(1, 3, "CA3", "https://x/hold"))
    effects.add(HangUp(1, "CA9", 9))
    effects.add(Redirect(1, 3, "CA3", "https://x/room"))
    effects.add(Redirect(1, 4, "CA4", "https://x/other"))
    assert [(type(e).__name__, getattr(e, "url", None)) for e in effects.take()] == [
        ("HangUp", None), ("Redirect", "https://x/room"), ("Redirect", "https://x/other")]


def test_a_rollback_drops_what_was_recorded_since_the_last_commit(session):
    effects = PendingEffects(session)
    session.execute(text("select 1"))
    effects.add(HangUp(1, "CA1"))
    session.commit()  # the hang-up acts on stored state: it stays
    session.execute(text("select 1"))
    effects.add(HangUp(1, "CA2"))
    effects.add(Redirect(1, 5, "CA5", "https://x/hold"))
    session.rollback()  # never stored: what it would act on does not exist
    assert [e.call_sid for e in effects.take()] == ["CA1"]


def test_a_savepoint_is_not_the_steps_commit_nor_its_rollback():
    """SQLAlchemy fires after_commit and after_rollback for a savepoint too (open_transfer opens one): the step's
    effects are durable only once the step itself commits, a savepoint's end is not counted as a commit (a step
    that has committed is not run again after a deadlock), and a savepoint rolled back drops only what was
    recorded inside it (its outbox rows went with it)."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "after_commit", _count_commit)
    try:
        _savepoints_then_the_step(factory)
    finally:
        engine.dispose()


def _savepoints_then_the_step(factory) -> None:
    with factory() as session:
        effects = PendingEffects(session)
        effects.add(HangUp(1, "CA1"))
        with session.begin_nested():
            session.execute(text("select 1"))
        assert commits(session) == 0
        try:
            with session.begin_nested():
                effects.add(HangUp(1, "CA2"))
                raise RuntimeError("the savepoint's work failed")
        except RuntimeError:
            pass
        assert [e.call_sid for e in effects] == ["CA1"] and _outbox(session) == 1
        session.rollback()  # the step fails: nothing it recorded was ever stored
        assert effects.take() == [] and commits(session) == 0
        effects.add(HangUp(1, "CA3"))
        session.commit()
        assert commits(session) == 1 and [e.call_sid for e in effects.take()] == ["CA3"]


def test_a_redirect_recorded_before_a_commit_is_never_replaced(session):
    effects = PendingEffects(session)
    session.execute(text("select 1"))
    effects.add(Redirect(1, 5, "CA5", "https://x/hold"))
    effects.add(HangUp(1, "CA1"))
    session.commit()
    session.execute(text("select 1"))
    effects.add(Redirect(1, 5, "CA5", "https://x/room"))
    session.rollback()
    # The hold is stored; its replacement was not: the caller must still reach the hold.
    assert [getattr(e, "url", e.call_sid) for e in effects.take()] == ["https://x/hold", "CA1"]


def test_each_effect_is_kept_in_the_outbox_with_its_step_and_a_rolled_back_step_keeps_none(session):
    effects = PendingEffects(session)
    effects.add(HangUp(1, "CA1"))
    effects.add(Redirect(1, 5, "CA5", "https://x/hold"))
    effects.add(Redirect(1, 5, "CA5", "https://x/room"))  # replaces the first move of leg 5: one row for it
    session.commit()
    assert _outbox(session) == 2
    effects.add(CloseRoom(1, "call_1"))
    session.rollback()
    assert _outbox(session) == 2 and [type(e).__name__ for e in effects.take()] == ["HangUp", "Redirect"]


EXAMPLES = [
    HangUp(1, "CA1", 2),
    Redirect(1, 3, "CA3", "https://x/rejoin", HangUp(1, "CA3", 3), "if_failed", None),
    OpenRoom(1, "call_1", 1800, "{}", 4),
    CloseRoom(1, "call_1-consult-4", 4),
    RemoveFromRoom(1, "call_1", "agent-101"),
    StartSummary(1, 4),
    SwitchTranscription(1, "CA1", "caller", True, "card_digits", "https://x/t", "en-US", "caller"),
    Dial(1, 6, "sip:bob@example.com", "+15550100000", "https://x/a", "https://x/s", "https://x/f", 20),
]


def test_every_kind_of_effect_comes_back_from_its_outbox_row_as_it_was():
    assert {type(effect) for effect in EXAMPLES} == set(EFFECT_KINDS.values())
    for effect in EXAMPLES:
        assert effect_from_row(effect_as_row(effect)) == effect


def test_only_a_dial_and_a_transcription_start_must_never_run_twice():
    assert [type(e).__name__ for e in EXAMPLES if not repeatable(e)] == ["SwitchTranscription", "Dial"]
    assert repeatable(SwitchTranscription(1, "CA1", "caller", False))


def test_a_dials_outbox_row_goes_with_the_commit_that_stores_its_callsid(centre):
    # effects.Dial: the row is deleted in the transaction that records the CallSid Twilio answered, where a
    # DELETE and a commit of their own followed it (a write, so a flush of the database's log, per dial).
    with sent_statements(centre.app.extensions["db_engine"]) as sent:
        connected_call(centre)  # the IVR's choice dials Alice
    recorded = [index for index, text in enumerate(sent) if text.startswith("UPDATE legs SET twilio_call_sid")]
    assert recorded
    for index in recorded:
        assert sent[index + 1].startswith("DELETE FROM outbox WHERE outbox.id = ") and sent[index + 2] == "COMMIT"
    with centre.db() as session:
        assert _outbox(session) == 0


def test_a_dial_for_a_leg_already_over_goes_nowhere_and_is_never_marked_tried(centre):
    # The leg ended between the step's commit and its dial (the caller hung up): effects.Dial.still_wanted finds
    # it over in the transaction that would have marked the row tried, and Twilio is never asked.
    connected_call(centre)
    with centre.db() as session:
        leg = session.scalar(select(Leg).where(Leg.role == LegRole.AGENT))
        leg.status, leg.twilio_call_sid = LegStatus.ENDED, None
        session.commit()
        call_id, leg_id = leg.call_id, leg.id
    asked_before = len(centre.network.rest_log)
    with sent_statements(centre.app.extensions["db_engine"]) as sent, centre.app.app_context(), \
            job_step(centre.app.extensions["jobs"].context["tools"]) as t:
        t.effects.add(Dial(call_id, leg_id, "sip:alice@example.com", "+15550100000", "https://x/a",
                           "https://x/s", "https://x/f", 20))
    assert len(centre.network.rest_log) == asked_before
    assert not [text for text in sent if text.startswith("UPDATE outbox SET tried_at")]
    with centre.db() as session:
        assert _outbox(session) == 0
