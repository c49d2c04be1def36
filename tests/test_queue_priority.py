"""A queue's priority: an agent who serves several queues is offered the highest priority queue's caller first,
then the longest waiting; a queue's own callback attempts. Whole calls on the demo roster (Bob 102 serves
billing and technical; Alice 101 billing; Carmen 201 technical).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import update

from app.models import Agent
from tests.test_callbacks import asks_for_a_callback, callback_row
from tests.transfer_helpers import ALICE, BOB, call_row, connected_call


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, outbound_call_allow=("+1555",), callback_attempts=3)


def _queue(centre, name: str, code: str, *options: str) -> None:
    hints = {"billing": "bill,billing,invoice,charge", "technical": "internet,router,technical"}[name]
    saved = centre.app.test_cli_runner().invoke(
        args=["queues", "add", "--name", name, "--dtmf-code", code, "--hints", hints, *options,
              *(["--default"] if name == "billing" else [])])
    assert saved.exit_code == 0, saved.output


def _away(centre, *extensions: str) -> None:
    with centre.db() as session:
        session.execute(update(Agent).where(Agent.extension.in_(extensions)).values(presence="away"))


def _technical_then_billing_while_bob_talks(centre):
    """Bob (alone serving both queues) on a call, a technical caller waiting, then a billing caller 20 s later;
    Bob's call ends; returns (technical, billing)."""
    _away(centre, "101", "201")
    first, bob = connected_call(centre, number="+15557771001")
    assert bob.to == BOB
    technical = centre.network.incoming_call("+15557771002", centre.number)
    technical.press("2")
    centre.network.advance(20)
    billing = centre.network.incoming_call("+15557771003", centre.number)
    billing.press("1")
    first.hangup()
    return technical, billing


def test_an_agent_who_frees_up_gets_the_higher_priority_queues_caller_though_another_waited_longer(centre):
    _queue(centre, "billing", "1", "--priority", "10")
    technical, billing = _technical_then_billing_while_bob_talks(centre)
    assert call_row(centre, billing.sid).status == "ringing_agent"
    assert call_row(centre, technical.sid).status == "queued"


def test_with_equal_priorities_the_longest_waiting_caller_goes_first(centre):
    technical, billing = _technical_then_billing_while_bob_talks(centre)
    assert call_row(centre, technical.sid).status == "ringing_agent"
    assert call_row(centre, billing.sid).status == "queued"


def test_a_queues_own_callback_attempts_end_its_callbacks_sooner(centre):
    _queue(centre, "billing", "1", "--callback-attempts", "1")
    first, _alice = connected_call(centre, number="+15557771011")
    second, _bob = connected_call(centre, number="+15557771012")
    asks_for_a_callback(centre)
    first.hangup()
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    centre.network.ring_out(centre.network.last_call(to="+15557770404").sid, "no-answer")
    callback = callback_row(centre)
    assert callback.state == "failed" and callback.attempts == 1  # billing's 1, not CALLBACK_ATTEMPTS's 3
