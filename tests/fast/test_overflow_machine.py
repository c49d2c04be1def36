"""A queue's overflow when the caller cannot go where it says: the options, with the reason named."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.calls import service as calls
from app.calls.service import CallerNext
from app.models import CallStatus, Event, Presence, Queue, utcnow
from tests.fast.conftest import agent, set_presence, waiting_call


def _long_waiting(t, overflow: str | None):
    for extension in ("101", "102", "201"):
        set_presence(t, extension, Presence.AWAY)
    billing = t.session.scalar(select(Queue).where(Queue.name == "billing"))
    billing.overflow = overflow
    call = waiting_call(t)
    call.queued_at = utcnow() - timedelta(seconds=t.settings.max_queue_wait_seconds + 1)
    t.session.flush()
    return call


def _events(t, call, name: str) -> list[dict]:
    return [event.detail for event in t.session.scalars(
        select(Event).where(Event.call_id == call.id, Event.name == name).order_by(Event.id))]


def test_an_overflow_to_a_closed_queue_falls_back_to_the_options_and_says_why(t):
    technical = t.session.scalar(select(Queue).where(Queue.name == "technical"))
    technical.hours = {}  # closed every day
    call = _long_waiting(t, "technical")
    assert calls.caller_waited(t, call) == CallerNext.OPTIONS
    assert call.queue.name == "billing" and call.status == CallStatus.QUEUED
    (fallback,) = _events(t, call, "queue_overflow_fallback")
    assert fallback == {"from": "billing", "to": "technical", "reason": "technical is closed", "fallback": "options"}
    assert _events(t, call, "queue_options_offered") and not _events(t, call, "queue_overflowed")


def test_an_overflow_to_a_queue_that_is_gone_falls_back_to_the_options_and_says_why(t):
    call = _long_waiting(t, "sales")  # checked when saved; the queue was deleted since
    assert calls.caller_waited(t, call) == CallerNext.OPTIONS
    (fallback,) = _events(t, call, "queue_overflow_fallback")
    assert fallback["reason"] == "no queue is named sales" and fallback["fallback"] == "options"


def test_an_overflow_moves_the_call_and_rings_the_other_queues_agent(t):
    call = _long_waiting(t, "technical")
    agent(t, "102").skills = ["technical"]  # not billing's: nobody there takes the call before it overflows
    set_presence(t, "102", Presence.AVAILABLE)
    queued_at = call.queued_at
    assert calls.caller_waited(t, call) == CallerNext.OVERFLOWED
    assert call.queue.name == "technical" and call.queued_at == queued_at
    assert call.status == CallStatus.RINGING_AGENT and calls.ringing_leg(call).agent.extension == "102"
    assert "passing your call to technical" in calls.overflow_words(t, call)
    # The next hold turn: technical's own limit counts from the move, not from the first queue.
    assert calls.caller_waited(t, call) == CallerNext.HOLD


def test_the_options_are_the_default_overflow(t):
    call = _long_waiting(t, None)
    assert calls.caller_waited(t, call) == CallerNext.OPTIONS
    assert _events(t, call, "queue_options_offered") and not _events(t, call, "queue_overflowed")


def test_a_caller_past_the_limit_whom_a_free_agent_of_their_queue_can_take_is_rung_there_not_moved(t):
    call = _long_waiting(t, "technical")
    set_presence(t, "101", Presence.AVAILABLE)  # Alice: billing only
    assert calls.caller_waited(t, call) == CallerNext.HOLD
    assert call.queue.name == "billing" and calls.ringing_leg(call).agent.extension == "101"
    assert not _events(t, call, "queue_overflowed")
