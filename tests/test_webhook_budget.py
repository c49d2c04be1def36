"""A webhook's time budget: every call to Twilio and LiveKit before its answer draws from WEBHOOK_BUDGET_SECONDS,
and what is left when it is spent is carried out once the answer has gone, so no worst case passes Twilio's 15 s.

The budget runs on the call centre's own counter (`centre.spend`): a test
says how long a slow answer took, nothing is slept. tests/benchmarks/
webhook_budget.py measures the same worst cases in real time.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from app.gateways.deadline import at_most, capped
from app.models import Event
from config import ConfigError, load_settings
from tests.transfer_helpers import BOB, connected_call, transfer_row


def events(centre, name: str) -> list[dict]:
    with centre.db() as session:
        return [e.detail for e in session.scalars(select(Event).where(Event.name == name).order_by(Event.id))]


def _budget(centre) -> float:
    return centre.app.config["SETTINGS"].webhook_budget_seconds


def test_a_menu_choice_whose_hold_spends_the_budget_rings_the_target_after_its_answer(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    # Moving the caller to hold music takes the whole budget: Twilio answers that POST only then.
    centre.network.while_answering_next(f"Calls/{caller.sid}.json", lambda: centre.spend(_budget(centre)),
                                        method="POST")
    alice.press("2102#")
    menu = [d for d in centre.network.deliveries if "/twilio/transfer/menu" in d.url][-1]
    assert "Calling Bob Okafor" in alice.heard_text  # the answer left, in time
    dials = [i for i, r in enumerate(centre.network.rest_log)
             if r.method == "POST" and r.path.endswith("/Calls.json") and r.form.get("To") == BOB]
    # Ringing Bob (and opening the consult room before it) was left for after the answer, and done then.
    assert len(dials) == 1 and menu.rest_before_answer is not None and dials[0] >= menu.rest_before_answer
    assert caller.waiting_on.tag == "Play" and transfer_row(centre).state == "dialing"
    assert centre.network.last_call(to=BOB).live


def test_a_webhook_within_its_budget_carries_everything_out_before_it_answers(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    menu = [d for d in centre.network.deliveries if "/twilio/transfer/menu" in d.url][-1]
    to_hold = [i for i, r in enumerate(centre.network.rest_log)
               if r.path.endswith(f"Calls/{caller.sid}.json") and "/twilio/caller/wait" in r.form.get("Url", "")]
    assert to_hold and to_hold[0] < menu.rest_before_answer


def test_with_no_budget_at_all_a_star_is_taken_as_a_star_and_everything_follows_the_answer(centre):
    caller, alice = connected_call(centre)
    # A budget smaller than what the answer keeps for itself: spent before the webhook begins.
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], webhook_budget_seconds=0.5)
    alice.press_star()
    assert "Transfer menu" in alice.heard_text  # LiveKit not asked: `*` assumed, and said so
    (assumed,) = events(centre, "star_assumed_livekit_unreachable")
    assert "time budget" in assumed["error"]
    alice.press("2102#")
    menu = [d for d in centre.network.deliveries if "/twilio/transfer/menu" in d.url][-1]
    dials = [i for i, r in enumerate(centre.network.rest_log)
             if r.method == "POST" and r.path.endswith("/Calls.json") and r.form.get("To") == BOB]
    assert len(dials) == 1 and dials[0] >= menu.rest_before_answer  # rung once the answer had gone
    assert caller.waiting_on.tag == "Play" and centre.network.last_call(to=BOB).live


def test_the_cap_leaves_a_gateway_its_own_timeout_outside_a_budget():
    assert capped(5.0) == 5.0
    with at_most(2.0):
        assert capped(5.0) <= 2.0 and capped(1.0) == 1.0
    with at_most(-3.0):
        assert capped(5.0) == 0.1  # spent: the call fails at once as a timeout
    assert capped(5.0) == 5.0


@pytest.mark.parametrize("value", ["1", "14", "soon"])
def test_the_webhook_budget_must_fit_inside_twilios_fifteen_seconds(value):
    with pytest.raises(ConfigError, match="WEBHOOK_BUDGET_SECONDS"):
        load_settings({"WEBHOOK_BUDGET_SECONDS": value}, dotenv=False)
    assert load_settings({"WEBHOOK_BUDGET_SECONDS": "8"}, dotenv=False).webhook_budget_seconds == 8.0
