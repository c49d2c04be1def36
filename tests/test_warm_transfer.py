"""Warm transfer scenarios, each a whole call through the service's webhooks."""

import json
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from app.models import Event, Leg, Transfer
from app.primitives.legs import UNCONFIRMED_DIAL_AFTER
from app.sandbox.scenarios import on_a_wait_turn
from app.telephony import urls
from tests.transfer_helpers import (
    ALICE,
    BOB,
    CARMEN,
    accepts,
    agent_activity,
    call_row,
    calls_placed,
    connected_call,
    consulting,
    hears_summary,
    in_room,
    transfer_row,
    turn_at_or_past,
)


@pytest.fixture
def centre_settings(centre_settings):
    """The LLM's request may last the whole test: the "held" stand-in answers when a test says so, and the
    steps up to B's key take real time, seconds on a loaded machine, while the summary's own deadline runs on
    the virtual clock. A held request past the usual 3 s timeout would fall back on its own and the test would
    see a fallback it did not ask for. The stand-in ends a held request when it stops, at the test's end."""
    return replace(centre_settings, llm_timeout_seconds=60.0)


def test_dtmf_warm_transfer_to_an_agent(centre):
    caller, alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id

    alice.press_star()
    assert "Transfer menu" in alice.heard_text
    # Until a target is keyed the caller stays in the room: a `*` that was a dropped leg costs them nothing.
    assert caller.waiting_on.tag == "Dial" and transfer_row(centre).state == "requested"
    assert "caller_on_hold" not in centre.timeline(caller.sid) and not centre.llm.requests
    alice.press("2102#")
    assert "Calling Bob Okafor" in alice.heard_text
    assert caller.waiting_on.tag == "Play"  # on hold music from the moment the target is rung
    assert "MachineDetection" not in calls_placed(centre)[-1].form  # an agent's softphone: no detection
    transfer = transfer_row(centre)
    assert alice.waiting_on.tag == "Gather" and alice.played  # music, not alone in the consult room

    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    # Before a key: who is transferring and the offer of the summary, nothing of the caller.
    assert bob.heard_text == "Transfer from Alice Moreno. Press 1 to hear the summary, or 2 to decline."
    hears_summary(centre, bob)
    whisper = bob.heard_text
    assert "Here is the summary." in whisper and "Press 1 to accept, 2 to decline" in whisper
    assert "4111" not in whisper
    bob.press("1")
    assert in_room(bob, f"{call_id}-consult-{transfer.id}") and in_room(alice, f"{call_id}-consult-{transfer.id}")
    assert "Bob Okafor accepted" in alice.heard_text
    assert transfer_row(centre).state == "consulting"

    alice.press_star()
    assert "Transfer options" in alice.heard_text
    alice.press("2")
    assert "Transfer complete" in alice.heard_text and not alice.live
    assert in_room(caller, str(call_id)) and in_room(bob, str(call_id))

    transfer = transfer_row(centre)
    assert transfer.state == "completed"
    assert transfer.summary_source == "llm" and transfer.summary_provider == "openai"
    assert transfer.summary_model == "gpt-4o-mini" and transfer.summary_latency_ms is not None
    assert transfer.summary_spoken in whisper
    call = call_row(centre, caller.sid)
    assert call.status == "connected"
    assert agent_activity(centre, "101") == "idle" and agent_activity(centre, "102") == "on_call"

    # What left for the LLM: the model, the provider key, the redacted transcript, no secrets.
    (sent,) = centre.llm.requests
    assert sent.path == "/v1/chat/completions" and sent.model == "gpt-4o-mini"
    assert sent.headers["Authorization"] == "Bearer sk-test-openai-key-0123456789"
    body = json.dumps(sent.body)
    assert "two charges of 49 dollars" in body and "[card number removed]" in body
    assert "4111" not in body and "test-twilio-auth-token" not in body and "sip-trunk-password" not in body

    timeline = centre.timeline(caller.sid)
    for step in ("transfer_requested", "caller_on_hold", "transfer_dialing", "transfer_whispering",
                 "summary_ready", "transfer_consulting", "transfer_completed", "caller_off_hold"):
        assert step in timeline


def start_warm(centre, alice, target="102"):
    alice.press_star()
    alice.press(f"2{target}#")


def test_warm_transfer_to_a_queue_rings_the_next_agent_on_decline(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice, target="2")  # the technical queue
    assert "Calling Bob Okafor" in alice.heard_text  # longest idle with the skill, never A
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("2")
    carmen = centre.agent_phone(CARMEN)
    centre.network.answer(carmen.sid)
    accepts(centre, carmen)
    alice.press_star()
    alice.press("2")
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(carmen, str(call_id))
    transfer = transfer_row(centre)
    assert transfer.state == "completed" and transfer.target_queue_id is not None
    assert "transfer_target_missed" in centre.timeline(caller.sid)


def test_blind_transfer_skips_the_consult(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("1102#")
    assert "Transferring the caller" in alice.heard_text and not alice.live
    assert agent_activity(centre, "101") == "idle"
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    assert "Transfer from Alice Moreno" in bob.heard_text
    accepts(centre, bob)
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(bob, str(call_id))
    transfer = transfer_row(centre)
    assert transfer.mode == "blind" and transfer.state == "completed" and transfer.consult_room is None


def test_three_way_then_a_leaves(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    alice.press_star()
    alice.press("3")
    call_id = call_row(centre, caller.sid).id
    assert all(in_room(leg, str(call_id)) for leg in (caller, alice, bob))
    assert "Three-way call" in alice.heard_text
    alice.hangup()
    assert caller.live and in_room(bob, str(call_id))
    call = call_row(centre, caller.sid)
    assert call.status == "connected"
    assert agent_activity(centre, "101") == "idle" and agent_activity(centre, "102") == "on_call"


def test_swap_between_caller_and_target(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    call_id = call_row(centre, caller.sid).id
    alice.press_star()
    alice.press("4")
    assert in_room(alice, str(call_id)) and in_room(caller, str(call_id))
    assert bob.waiting_on.tag == "Play"  # Bob holds
    alice.press_star()
    alice.press("4")
    assert caller.waiting_on.tag == "Play"
    consult = transfer_row(centre).consult_room.split("_", 1)[1]
    assert in_room(alice, consult) and in_room(bob, consult)
    alice.press_star()
    alice.press("2")
    assert in_room(caller, str(call_id)) and in_room(bob, str(call_id))
    assert transfer_row(centre).state == "completed"


def test_abort_from_the_consult_returns_a_to_the_caller(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    alice.press_star()
    alice.press("1")
    call_id = call_row(centre, caller.sid).id
    assert "Returning you to your caller" in alice.heard_text
    assert in_room(alice, str(call_id)) and in_room(caller, str(call_id))
    assert not bob.live
    assert transfer_row(centre).state == "cancelled"
    assert agent_activity(centre, "102") == "idle"


def test_nothing_entered_in_the_menu_returns_a_to_the_caller(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("#")
    call_id = call_row(centre, caller.sid).id
    assert in_room(alice, str(call_id)) and in_room(caller, str(call_id))
    assert transfer_row(centre).state == "cancelled"


def test_unknown_target_is_refused_and_the_menu_asked_again(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2999#")
    assert "Sorry, 9 9 9 is not an extension or a queue" in alice.heard_text
    alice.press("2102#")
    assert "Calling Bob Okafor" in alice.heard_text


def test_a_long_run_of_keys_in_the_transfer_menu_is_never_said_back_or_kept(centre):
    """A card number typed into the menu by mistake is refused without being repeated: the refusal goes to the
    timeline, the log and the transfer's end reason."""
    _caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("24111111111111111#")
    assert "Sorry, that is not an extension or a queue" in alice.heard_text and "4 1 1 1" not in alice.heard_text
    with centre.db() as session:
        refused = session.scalars(select(Event).where(Event.name == "transfer_target_refused")).all()
    assert [event.detail["reason"] for event in refused] == ["that is not an extension or a queue"]


def test_b_declines(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("2")
    call_id = call_row(centre, caller.sid).id
    assert "Bob Okafor declined the transfer" in alice.heard_text
    assert in_room(alice, str(call_id)) and in_room(caller, str(call_id))
    assert transfer_row(centre).state == "declined"


def _rooms_deleted(centre):
    return [r.body["room"] for r in centre.livekit.requests if r.method == "DeleteRoom"]


@pytest.mark.parametrize("how", ["declines", "does not answer", "is busy"])
def test_a_transfer_b_does_not_take_closes_its_consult_room_once(centre, how):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    if how == "declines":
        centre.network.answer(bob.sid)
        bob.press("2")
    else:
        centre.network.ring_out(bob.sid, "no-answer" if how == "does not answer" else "busy")
    consult_room = transfer_row(centre).consult_room
    assert _rooms_deleted(centre).count(consult_room) == 1
    assert consult_room not in centre.livekit.rooms
    assert agent_activity(centre, "102") == "idle"


def test_b_hanging_up_in_the_consult_sends_a_back_to_the_caller(centre):
    caller, alice, bob = consulting(centre)
    assert transfer_row(centre).state == "consulting"
    bob.hangup()
    call_id = call_row(centre, caller.sid).id
    assert "Bob Okafor hung up. Returning you to your caller." in alice.heard_text
    assert in_room(alice, str(call_id)) and in_room(caller, str(call_id))
    transfer = transfer_row(centre)
    assert transfer.state == "cancelled" and transfer.end_reason == "the target hung up during the consult"
    assert _rooms_deleted(centre).count(transfer.consult_room) == 1
    assert agent_activity(centre, "101") == "on_call" and agent_activity(centre, "102") == "idle"


def test_b_does_not_answer(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    centre.network.ring_out(centre.agent_phone(BOB).sid, "no-answer")
    assert "Bob Okafor did not answer" in alice.heard_text
    assert in_room(caller, str(call_row(centre, caller.sid).id))
    assert transfer_row(centre).state == "no_answer"


def test_b_busy(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    centre.network.ring_out(centre.agent_phone(BOB).sid, "busy")
    assert "did not answer" in alice.heard_text
    transfer = transfer_row(centre)
    assert transfer.state == "no_answer" and transfer.end_reason == "busy"


def test_caller_hangs_up_on_hold(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    caller.hangup()
    assert bob.status == "canceled"
    assert "The caller hung up" in alice.heard_text and not alice.live
    assert transfer_row(centre).state == "caller_hung_up"
    assert agent_activity(centre, "101") == "idle" and agent_activity(centre, "102") == "idle"
    assert call_row(centre, caller.sid).status == "completed"


def test_a_hangs_up_before_b_answers_and_b_gets_the_caller(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    alice.hangup()
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(bob, str(call_id))
    assert transfer_row(centre).state == "completed"


def test_a_hangs_up_and_b_declines_so_the_caller_is_queued_again(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    alice.hangup()
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("2")
    assert call_row(centre, caller.sid).status in ("queued", "ringing_agent")
    assert "call_requeued" in centre.timeline(caller.sid)
    assert caller.live and caller.waiting_on.tag == "Play"


def test_with_the_llm_slower_than_the_deadline_b_is_greeted_at_once_then_hears_the_marked_fallback(centre):
    centre.llm.mode = "held"  # no answer until the test is over
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("1")
    # Within the key's own webhook: "one moment", then a short wait turn.
    assert bob.heard_text.endswith("Press 1 to hear the summary, or 2 to decline. One moment, the summary is on its way.")
    assert on_a_wait_turn(bob) and transfer_row(centre).summary_source is None
    centre.network.advance(1)  # the turn ends with no key: the next look is past the 1 s deadline
    assert "Here is the summary. Automatic summary unavailable" in bob.heard_text
    assert "I was charged twice for my internet bill" in bob.heard_text
    transfer = transfer_row(centre)
    assert transfer.summary_source == "fallback" and transfer.summary_error.startswith("deadline")
    timeline = centre.timeline(caller.sid)
    assert "summary_fallback_used" in timeline and "summary_whispered" in timeline
    with centre.db() as session:
        whispered = session.scalar(select(Event).where(Event.name == "summary_whispered"))
        assert whispered.detail["waited_ms"] == 1000 and whispered.detail["source"] == "fallback"
    bob.press("1")
    assert transfer_row(centre).state == "consulting"


def test_no_request_waits_for_the_summary_and_b_hears_it_on_the_turn_after_it_is_stored(centre):

    centre.llm.mode = "held"  # the LLM answers when the test says so
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("1")
    assert on_a_wait_turn(bob) and "One moment" in bob.heard_text
    centre.llm.released.set()
    centre.settle_summaries(10)  # the summary is written meanwhile: no transaction of B's holds it up
    assert transfer_row(centre).summary_source == "llm"
    centre.network.advance(1)
    assert "Here is the summary." in bob.heard_text and "Automatic summary unavailable" not in bob.heard_text
    assert bob.waiting_on.tag == "Gather" and not on_a_wait_turn(bob)


@pytest.mark.parametrize("key", ["1", "2"])
def test_a_key_b_presses_while_the_summary_is_written_is_acted_on(centre, key):
    centre.llm.mode = "held"  # the summary is still being written while B waits
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("1")
    centre.network.advance(0.5)  # within a wait turn
    assert on_a_wait_turn(bob)
    bob.press(key)
    call_id = call_row(centre, caller.sid).id
    if key == "1":
        transfer = transfer_row(centre)
        assert transfer.state == "consulting" and in_room(bob, f"{call_id}-consult-{transfer.id}")
    else:
        assert transfer_row(centre).state == "declined" and not bob.live
        assert "Bob Okafor declined the transfer" in alice.heard_text
        assert in_room(caller, str(call_id)) and in_room(alice, str(call_id))
    assert "Here is the summary" not in bob.heard_text


def test_a_fallback_during_the_wait_speaks_the_summary_stored_a_moment_before(centre):
    centre.llm.mode = "held"
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("1")
    centre.llm.released.set()
    centre.settle_summaries(10)  # stored while B's turn runs
    # The turn's look fails on the way (a proxy's 502): Twilio asks the call's fallback URL.
    centre.network.fail_next_webhook(urls.TRANSFER_SUMMARY_WAIT)
    centre.network.advance(1)
    transfer = transfer_row(centre)
    assert transfer.summary_source == "llm"
    assert f"Here is the summary. {transfer.summary_spoken}" in " ".join(bob.heard)
    assert "No summary is available" not in bob.heard_text and "Automatic summary unavailable" not in bob.heard_text
    assert "twilio_fallback" in centre.timeline(caller.sid)


def test_a_fallback_before_b_asked_for_the_summary_says_nothing_of_the_caller(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.fail_next_webhook(urls.TRANSFER_ANSWER)
    centre.network.answer(bob.sid)
    assert bob.heard_text == "Transfer from Alice Moreno. Press 1 to hear the summary, or 2 to decline."
    assert "twilio_fallback" in centre.timeline(caller.sid)
    bob.silence()  # no key: declined, and B never heard a word of the caller
    assert transfer_row(centre).state == "declined" and not bob.live
    assert "Here is the summary" not in bob.heard_text


@pytest.mark.parametrize(("mode", "error"), [("error", "http 500"), ("garbage", "format")])
def test_llm_down_or_garbage_falls_back(centre, mode, error):
    centre.llm.mode = mode
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    hears_summary(centre, bob)
    assert "Automatic summary unavailable" in bob.heard_text
    transfer = transfer_row(centre)
    assert transfer.summary_source == "fallback" and transfer.summary_error.startswith(error)
    bob.press("1")
    assert transfer_row(centre).state == "consulting"


def test_twilio_refusing_to_dial_b_sends_a_back_to_the_caller(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    # A refusal (4xx): Twilio placed nothing. The dial goes out after the menu's step is committed.
    centre.network.fail_next("Calls.json", status=400, code=21210, message="Caller phone number not verified")
    alice.press("2102#")
    assert "The transfer could not be placed. Returning you to your caller." in alice.heard_text
    assert "transfer_dial_failed" in centre.timeline(caller.sid)
    transfer = transfer_row(centre)
    assert transfer.state == "failed" and agent_activity(centre, "102") == "idle"
    assert in_room(caller, str(call_row(centre, caller.sid).id)) and in_room(alice, str(call_row(centre, caller.sid).id))


def test_a_dial_of_b_whose_answer_was_lost_is_adopted_by_its_first_webhook(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    # Twilio placed the call; its answer to calls.create was lost (a 5xx, a timeout).
    centre.network.fail_next("Calls.json", status=502, code=20500, message="Bad Gateway", applied=True)
    alice.press("2102#")
    assert "leg_dial_unconfirmed" in centre.timeline(caller.sid)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    transfer = transfer_row(centre)
    assert transfer.state == "consulting"
    with centre.db() as session:
        assert session.get(Leg, transfer.target_leg_id).twilio_call_sid == bob.sid


def test_a_dial_of_b_that_twilio_never_confirms_is_given_up_while_the_caller_holds(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    centre.network.fail_next("Calls.json", status=503, code=20503, message="Service Unavailable")  # not placed
    alice.press("2102#")
    assert transfer_row(centre).state == "dialing"  # not failed yet: Twilio may have placed it
    # The caller's first hold turn at or past UNCONFIRMED_DIAL_AFTER (their music ends) gives the dial up.
    centre.network.advance(turn_at_or_past(UNCONFIRMED_DIAL_AFTER.total_seconds()) + 1)
    assert "The transfer could not be placed. Returning you to your caller." in alice.heard_text
    assert transfer_row(centre).state == "failed" and agent_activity(centre, "102") == "idle"
    assert in_room(caller, str(call_row(centre, caller.sid).id))


def test_chained_transfer_a_to_b_to_c(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    alice.press_star()
    alice.press("2")
    first_summary = transfer_row(centre).summary_spoken
    bob.press_star()
    bob.press("2201#")
    carmen = centre.agent_phone(CARMEN)
    centre.network.answer(carmen.sid)
    assert "Transfer from Bob Okafor" in carmen.heard_text
    accepts(centre, carmen)
    bob.press_star()
    bob.press("2")
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(carmen, str(call_id)) and not bob.live
    second = transfer_row(centre)
    assert second.state == "completed"
    # The second summary covers the whole call from its transcript, told it is a chained
    # transfer, and never carries the first summary's text forward (no summaries of summaries).
    assert len(centre.llm.requests) == 2
    second_request = json.dumps(centre.llm.requests[1].body)
    assert "let me get billing to refund it" in second_request and '\\"chained_transfer\\": true' in second_request
    assert first_summary not in second_request


def test_warm_transfer_started_from_the_api(centre, api_headers):
    caller, alice = connected_call(centre)
    headers = api_headers(centre.app)
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "102", "notes": "VIP"},
                                  headers=headers)
    assert response.status_code == 201, response.get_json()
    transfer = response.get_json()
    assert transfer["state"] == "dialing" and transfer["trigger"] == "api" and transfer["notes"] == "VIP"
    centre.network.run_pending()
    assert caller.waiting_on.tag == "Play"
    assert "Calling Bob Okafor" in alice.heard_text
    again = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "201"}, headers=headers)
    assert again.status_code == 409 and "already under way" in again.get_json()["error"]

    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    done = centre.client.post(f"/api/transfers/{transfer['id']}/complete", headers=headers)
    assert done.status_code == 200 and done.get_json()["state"] == "completed"
    centre.network.run_pending()
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(bob, str(call_id)) and not alice.live
    status = centre.client.get(f"/api/transfers/{transfer['id']}", headers=headers).get_json()
    assert status["summary"]["source"] == "llm" and status["answered_by"] == "102"
    assert centre.client.get(f"/api/transfers/{transfer['id']}").status_code == 401


def test_api_refuses_clearly(centre, api_headers):
    caller, alice = connected_call(centre)
    headers = api_headers(centre.app)
    post = centre.client.post
    assert post("/api/calls/CAnope/transfers", json={"extension": "102"}, headers=headers).status_code == 404
    bad = post(f"/api/calls/{caller.sid}/transfers", json={"mode": "warm"}, headers=headers)
    assert bad.status_code == 400 and "extension" in bad.get_json()["error"]
    self_transfer = post(f"/api/calls/{caller.sid}/transfers", json={"extension": "101"}, headers=headers)
    assert self_transfer.status_code == 409 and "yourself" in self_transfer.get_json()["error"]
    centre.network.run_pending()
    # The refused request left the caller with Alice, not on hold.
    assert in_room(caller, str(call_row(centre, caller.sid).id))


def _age(centre, model, seconds, **where):
    from datetime import timedelta

    from sqlalchemy import select

    with centre.db() as session:
        for row in session.scalars(select(model).filter_by(**where)):
            row.created_at = row.created_at - timedelta(seconds=seconds)


def test_a_target_that_never_reports_back_is_given_up_while_the_caller_holds(centre):
    from app.models import Leg

    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB).lose_callbacks()  # rings out, but Twilio's callback never comes
    _age(centre, Leg, 200, role="target")
    caller.music_ends()
    assert "Bob Okafor did not answer" in alice.heard_text
    assert in_room(caller, str(call_row(centre, caller.sid).id))
    assert not bob.live and transfer_row(centre).state == "no_answer"
    assert "transfer_target_silent" in centre.timeline(caller.sid)
    # Stored as it is: back with Alice, not on hold (the hold turn's step must not lose the move it made).
    assert call_row(centre, caller.sid).status == "connected"


def test_an_abandoned_transfer_menu_returns_the_caller(centre):
    from app.jobs.setup import reconciler_of
    from app.models import Transfer

    caller, alice = connected_call(centre)
    alice.press_star()  # the menu plays; the agent's phone goes away without a word
    _age(centre, Transfer, 300)
    assert reconciler_of(centre.app).run_once().menus_given_up == 1
    assert transfer_row(centre).state == "cancelled"
    assert in_room(caller, str(call_row(centre, caller.sid).id))
    assert "caller_on_hold" not in centre.timeline(caller.sid)  # never held: the menu chose nobody


def test_the_database_allows_one_active_transfer_per_call(centre):
    from sqlalchemy.exc import IntegrityError

    from app.models import Call, Transfer

    caller, alice = connected_call(centre)
    with centre.db() as session:
        call_id = session.query(Call.id).scalar()
        session.add(Transfer(call_id=call_id, mode="warm", trigger="api", state="cancelled", tried_agent_ids=[]))
        session.add(Transfer(call_id=call_id, mode="warm", trigger="api", state="dialing", tried_agent_ids=[]))
    with pytest.raises(IntegrityError):
        with centre.db() as session:
            session.add(Transfer(call_id=call_id, mode="warm", trigger="web", state="requested", tried_agent_ids=[]))


def test_completing_from_the_whisper_puts_the_target_on_the_call(centre):
    caller, alice = connected_call(centre)
    start_warm(centre, alice)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    from app.transfers import service
    from app.web.unit_of_work import telephony

    with centre.app.test_request_context():
        t = telephony()
        from app.models import Transfer

        transfer = t.session.get(Transfer, transfer_row(centre).id)
        service.complete(t, transfer, requester=None)
        t.session.commit()
    centre.network.run_pending()
    assert agent_activity(centre, "102") == "on_call"
    assert transfer_row(centre).state == "completed"


def test_an_unexpected_failure_before_ringing_changes_nothing(centre, monkeypatch, api_headers):
    from app.transfers import service

    def broken(*args, **kwargs):
        raise RuntimeError("LiveKit client exploded")

    caller, alice = connected_call(centre)
    monkeypatch.setattr(service, "ring_target", broken)
    sent = len(centre.network.rest_log)
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "102"},
                                  headers=api_headers(centre.app))
    centre.network.run_pending()
    assert response.status_code == 409 and response.get_json() == {"error": "the transfer could not be started"}
    # Nothing was committed, so nothing was sent to Twilio: the caller never left the room.
    assert centre.network.rest_log[sent:] == []
    assert in_room(caller, str(call_row(centre, caller.sid).id)) and in_room(alice, str(call_row(centre, caller.sid).id))
    with centre.db() as session:
        assert session.scalar(select(func.count()).select_from(Transfer)) == 0


def test_an_unexpected_failure_after_ringing_changes_nothing_and_rings_nobody(centre, monkeypatch, api_headers):
    from app.transfers import service

    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    caller, alice = connected_call(centre)
    monkeypatch.setattr(service, "after_target_rung", broken)
    sent = len(centre.network.rest_log)
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "102"},
                                  headers=api_headers(centre.app))
    centre.network.run_pending()
    assert response.status_code == 409 and response.get_json() == {"error": "the transfer could not be started"}
    # The dial is an effect of the step, carried out only once it is committed: rolled back, nothing rang.
    with centre.db() as session:
        assert session.scalar(select(func.count()).select_from(Transfer)) == 0
    assert centre.network.rest_log[sent:] == []
    assert in_room(caller, str(call_row(centre, caller.sid).id)) and agent_activity(centre, "102") == "idle"


def test_a_retried_menu_step_keeps_the_keys_the_agent_pressed(centre, monkeypatch):
    from app.transfers import service

    original = service.choose_target
    failures = []

    def fails_once(*args, **kwargs):
        if not failures:
            failures.append("once")
            raise RuntimeError("database hiccup")
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "choose_target", fails_once)
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    assert "something went wrong on our side" in alice.heard_text
    alice.music_ends()  # the retry carries Digits=2102
    assert "Calling Bob Okafor" in alice.heard_text
    assert transfer_row(centre).state == "dialing"


@pytest.mark.parametrize("queue", ["technical", "2"])
def test_the_api_takes_a_queue_by_name_or_by_its_code(centre, queue, api_headers):
    caller, alice = connected_call(centre)
    headers = api_headers(centre.app)
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"queue": queue}, headers=headers)
    assert response.status_code == 201 and response.get_json()["target_queue"] == "technical"
    unknown = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"queue": "sales"}, headers=headers)
    assert unknown.status_code == 409 and "no queue is named or numbered sales" in unknown.get_json()["error"]


def test_a_caller_requeued_by_an_api_request_rings_the_next_agent_at_once(centre, api_headers):
    # Requeueing is the transfer's, ringing is routing's: the request's edge
    # offers the call once the step is committed, whichever edge it was.
    caller, alice = connected_call(centre)
    headers = api_headers(centre.app)
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "102"}, headers=headers)
    assert response.status_code == 201, response.get_json()
    centre.network.run_pending()
    alice.hangup()  # A leaves while B still rings
    transfer_id = response.get_json()["id"]
    assert centre.client.post(f"/api/transfers/{transfer_id}/cancel", headers=headers).status_code == 200
    centre.network.run_pending()
    # The summary is written by a thread of its own, whenever the LLM answers: not part of the request.
    timeline = [e for e in centre.timeline(caller.sid) if not e.startswith("summary_")]
    # Offered at once, not at the caller's next hold-loop turn: Bob, whose
    # ring the cancel ended, is free once Twilio confirms his leg is over.
    after = timeline[timeline.index("call_requeued") + 1:]
    assert after[:2] == ["agent_free_after_leg_over", "agent_ringing"]
    assert len(centre.ringing()) == 1 and centre.ringing()[0].to != ALICE


def test_facts_the_llm_invents_are_never_spoken_to_the_target(centre):
    centre.llm.mode = "invent"
    caller, alice, bob = consulting(centre)
    assert "Transfer from Alice Moreno" in bob.heard_text and "duplicate charge" in bob.heard_text
    assert "Maria" not in bob.heard_text and "500" not in bob.heard_text
    assert "summary_sentences_dropped" in centre.timeline(caller.sid)
    assert transfer_row(centre).summary_source == "llm"


def test_swap_and_three_way_from_the_api(centre, api_headers):
    caller, alice, bob = consulting(centre)
    headers = api_headers(centre.app)
    transfer_id = transfer_row(centre).id
    call_id = str(call_row(centre, caller.sid).id)
    consult = transfer_row(centre).consult_room.split("_", 1)[1]

    swapped = centre.client.post(f"/api/transfers/{transfer_id}/swap", headers=headers)
    centre.network.run_pending()
    assert swapped.status_code == 200 and swapped.get_json()["state"] == "consulting"
    assert in_room(alice, call_id) and in_room(caller, call_id) and bob.waiting_on.tag == "Play"
    back = centre.client.post(f"/api/transfers/{transfer_id}/swap", headers=headers)
    centre.network.run_pending()
    assert back.status_code == 200 and caller.waiting_on.tag == "Play"
    assert in_room(alice, consult) and in_room(bob, consult)

    together = centre.client.post(f"/api/transfers/{transfer_id}/three-way", headers=headers)
    centre.network.run_pending()
    assert together.status_code == 200 and together.get_json()["state"] == "completed"
    assert all(in_room(leg, call_id) for leg in (caller, alice, bob))
    assert "Three-way call" in alice.heard_text
    again = centre.client.post(f"/api/transfers/{transfer_id}/swap", headers=headers)
    assert again.status_code == 409 and again.get_json() == {"error": "swap needs the target on the line"}


def test_two_quick_moves_of_one_leg_are_never_taken_for_a_star(centre, api_headers, signed_post):
    """B is moved twice before Twilio fetches the first move: the <Dial> the first move's answer starts, ended by
    the second move, is stale, not a `*` (found by the race tests: a transfer nobody asked for, the caller held)."""
    from app.telephony import urls

    caller, alice, bob = consulting(centre)
    transfer_id = transfer_row(centre).id
    swapped = centre.client.post(f"/api/transfers/{transfer_id}/swap", headers=api_headers(centre.app))
    assert swapped.status_code == 200  # Alice is with the caller; Bob is sent to music (not fetched yet)
    with centre.db() as session:
        alice_leg = session.scalar(select(Leg.id).where(Leg.twilio_call_sid == alice.sid))
    # Alice hangs up before Twilio fetched Bob's first move: Bob is moved again, into the caller's room.
    left = signed_post(centre.client, f"{urls.AGENT_STATUS}?leg={alice_leg}",
                       {"CallSid": alice.sid, "CallStatus": "completed", "From": alice.from_, "To": alice.to})
    assert left.status_code == 200
    centre.network.run_pending()
    with centre.db() as session:
        assert session.scalar(select(func.count()).select_from(Transfer)) == 1  # no transfer opened by itself
    call_id = str(call_row(centre, caller.sid).id)
    assert in_room(bob, call_id) and in_room(caller, call_id)
    assert "Transfer menu" not in bob.heard_text
