"""After-call work, step by step: who goes to wrap-up, who is freed, and when it ends."""

from dataclasses import replace
from datetime import timedelta

from app.models import Activity, LegStatus
from app.primitives.availability import end_due_wrap_ups
from app.primitives.legs import close_leg
from app.states.agents import ACTIVITY_MOVES
from tests.fast.conftest import agent, connected


def test_an_agent_who_talked_goes_to_wrap_up_and_is_not_offered_until_it_is_over(t):
    t.settings = replace(t.settings, wrap_up_seconds=30)
    call, alice_leg = connected(t, phone_sid="")  # a browser leg: freed at once, without Twilio's word
    alice_leg.twilio_call_sid = None
    close_leg(t, alice_leg, LegStatus.ENDED, "agent_hung_up")
    alice = agent(t, "101")
    assert alice.activity == Activity.WRAP_UP and alice.id not in t.freed_agent_ids
    assert end_due_wrap_ups(t) == 0  # not yet
    alice.wrap_up_until -= timedelta(seconds=31)
    assert end_due_wrap_ups(t) == 1
    assert alice.activity == Activity.IDLE and alice.id in t.freed_agent_ids and alice.wrap_up_until is None


def test_a_missed_ring_owes_no_wrap_up(t):
    t.settings = replace(t.settings, wrap_up_seconds=30)
    call, alice_leg = connected(t, phone_sid="")
    alice_leg.twilio_call_sid = None
    alice_leg.status = LegStatus.DIALING  # still ringing when it ends
    close_leg(t, alice_leg, LegStatus.NO_ANSWER, "no_answer", missed=True)
    assert agent(t, "101").activity == Activity.IDLE


def test_wrap_up_ends_only_in_idle_or_back_on_a_call():
    assert ACTIVITY_MOVES[Activity.WRAP_UP] == {Activity.IDLE, Activity.ON_CALL, Activity.LEAVING}
    assert Activity.WRAP_UP in ACTIVITY_MOVES[Activity.ON_CALL] and Activity.WRAP_UP not in ACTIVITY_MOVES[Activity.IDLE]
