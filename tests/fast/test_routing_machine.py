"""Routing's state machine, step by step, with the effects each step records."""

from app.models import Activity, CallStatus, LegStatus, Presence
from app.primitives.effects import Redirect
from app.primitives.legs import caller_leg
from app.routing import service as routing
from tests.fast.conftest import agent, moved_to, set_presence, waiting_call


def test_a_waiting_call_rings_the_longest_idle_agent_with_the_skill(t):
    call = waiting_call(t)
    leg = routing.offer_call(t, call)
    assert leg.agent.extension == "101" and leg.status == LegStatus.DIALING
    assert leg.livekit_identity  # a browser agent's console finds the leg itself: nothing to dial
    assert agent(t, "101").activity == Activity.RINGING and call.status == CallStatus.RINGING_AGENT
    second = waiting_call(t, sid="CAfast0002")
    assert routing.offer_call(t, second).agent.extension == "102"  # Alice is taken
    assert len(t.effects) == 0


def test_a_call_with_nobody_free_stays_queued(t):
    for extension in ("101", "102", "201"):
        set_presence(t, extension, Presence.AWAY)
    call = waiting_call(t)
    assert routing.offer_call(t, call) is None and call.status == CallStatus.QUEUED


def test_a_decline_frees_the_agent_and_rings_the_next(t):
    call = waiting_call(t)
    first = routing.offer_call(t, call)
    routing.agent_declined(t, first, pressed="2")
    assert first.status == LegStatus.DECLINED and first.agent.missed_in_row == 0  # a decline is not a miss
    t.session.refresh(call)
    assert routing.ringing_leg(call).agent.extension == "102"  # the next agent, not the one who declined


def test_an_agent_who_lets_calls_ring_out_is_set_away(t):
    set_presence(t, "102", Presence.AWAY)
    set_presence(t, "201", Presence.AWAY)
    call = waiting_call(t)
    leg = routing.offer_call(t, call)
    routing.agent_declined(t, leg, pressed="")  # the whisper timed out: a miss
    # Not offered to Alice again at once: the caller waits RETRY_SAME_AGENT_AFTER for someone else...
    assert routing.ringing_leg(call) is None and call.status == CallStatus.QUEUED
    leg.ended_at -= routing.RETRY_SAME_AGENT_AFTER
    again = routing.offer_call(t, call)  # ...then, the only agent with the skill, she is rung again
    assert again.agent.extension == "101" and again.id != leg.id
    routing.agent_declined(t, again, pressed="")
    assert agent(t, "101").presence == Presence.AWAY  # MISSED_CALLS_BEFORE_AWAY=2 in the fast tier
    t.session.refresh(call)
    assert routing.ringing_leg(call) is None and call.status == CallStatus.QUEUED


def test_accepting_connects_the_agent_and_records_the_callers_move(t):
    call = waiting_call(t)
    leg = routing.offer_call(t, call)
    assert routing.agent_accepted(t, leg) is True
    assert call.status == CallStatus.CONNECTED and call.agent_id == leg.agent_id
    assert agent(t, "101").activity == Activity.ON_CALL
    (move,) = list(t.effects)
    assert isinstance(move, Redirect) and move.url == moved_to(t.urls.caller_connect(call.id), caller_leg(call))
    assert move.if_failed == "caller_connect_left_to_hold_loop"


def test_accepting_after_the_caller_left_connects_nobody(t):
    call = waiting_call(t)
    leg = routing.offer_call(t, call)
    call.status = CallStatus.ABANDONED
    assert routing.agent_accepted(t, leg) is False
    assert leg.status == LegStatus.CANCELED and len(t.effects) == 0
