"""Effects recorded by a step: kept in order, the last move of a leg wins, dropped with what was never committed."""

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.telephony.effects import CloseRoom, HangUp, PendingEffects, Redirect


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    with Session(engine) as session:
        yield session
    engine.dispose()


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
