"""Warm transfer scenarios, each a whole call through the service's webhooks."""

import json

from tests.transfer_helpers import ALICE, BOB, agent_activity, call_row, connected_call, in_room, transfer_row


def test_dtmf_warm_transfer_to_an_agent(centre):
    caller, alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id

    alice.press_star()
    assert "Transfer menu" in alice.heard_text
    assert caller.waiting_on.tag == "Play"  # on hold music from the moment * is pressed
    alice.press("2102#")
    assert "Calling Bob Okafor" in alice.heard_text
    transfer = transfer_row(centre)
    assert in_room(alice, f"{call_id}-consult-{transfer.id}")

    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    whisper = bob.heard_text
    assert "Transfer from Alice Moreno" in whisper
    assert "Press 1 to accept, 2 to decline" in whisper
    assert "4111" not in whisper
    bob.press("1")
    assert in_room(bob, f"{call_id}-consult-{transfer.id}")
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
