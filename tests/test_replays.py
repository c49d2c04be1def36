"""Replayed, late and misdirected signed webhooks change nothing: each is checked against where its leg is."""

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.models import Agent, WebhookDelivery
from app.telephony import urls
from tests.transfer_helpers import (
    ALICE,
    BOB,
    agent_activity,
    call_row,
    connected_call,
    in_room,
    transfer_row,
)


def _replay(centre, signed_post, path: str, *, with_token: bool, **changes):
    """Send again, signed as Twilio signs, the last webhook Twilio sent to PATH (with CHANGES to its form)."""
    delivery = [d for d in centre.network.sent() if urlsplit(d.url).path == path][-1]
    parts = urlsplit(delivery.url)
    headers = {"I-Twilio-Idempotency-Token": delivery.headers["I-Twilio-Idempotency-Token"]} if with_token else {}
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    return signed_post(centre.client, target, {**delivery.params, **changes}, headers=headers)


@pytest.mark.parametrize("with_token", [True, False])
def test_a_replayed_agent_answer_after_accepting_leaves_the_agent_on_the_call(centre, signed_post, with_token):
    caller, alice = connected_call(centre)
    response = _replay(centre, signed_post, urls.AGENT_ANSWER, with_token=with_token)
    assert response.status_code == 200 and ET.fromstring(response.data).find("Hangup") is None
    assert agent_activity(centre, "101") == "on_call" and call_row(centre, caller.sid).status == "connected"
    assert in_room(centre.network.call(caller.sid), str(call_row(centre, caller.sid).id))


@pytest.mark.parametrize("with_token", [True, False])
def test_a_replayed_whisper_key_changes_nothing(centre, signed_post, with_token):
    caller, alice = connected_call(centre)
    declined = _replay(centre, signed_post, urls.AGENT_WHISPER, with_token=with_token, Digits="2")
    assert declined.status_code == 200
    assert agent_activity(centre, "101") == "on_call" and call_row(centre, caller.sid).status == "connected"
    if not with_token:  # answered as where the leg is: Alice's <Dial> into the call's room
        dial = ET.fromstring(declined.data).find("Dial")
        assert dial is not None and dial.find("Sip").text.startswith(f"sip:{call_row(centre, caller.sid).id}@")


@pytest.mark.parametrize("with_token", [True, False])
def test_a_repeated_new_call_gets_the_first_answer_and_writes_nothing(centre, signed_post, caplog, with_token):
    # The new-call webhook claims no delivery: its call's CallSid, unique, is what makes a repeat a repeat
    # (app/voice/guard.py, ServesArrival).
    centre.dial()
    first = [d for d in centre.network.sent() if urlsplit(d.url).path == urls.VOICE][-1]
    before = _snapshot(centre)
    with centre.db() as session:
        remembered = session.scalar(select(func.count(WebhookDelivery.id)))
    again = _replay(centre, signed_post, urls.VOICE, with_token=with_token)
    assert again.status_code == 200 and again.get_data(as_text=True) == first.body
    assert _snapshot(centre) == before
    with centre.db() as session:
        assert session.scalar(select(func.count(WebhookDelivery.id))) == remembered
    assert any(getattr(record, "msg", None) and "webhook_repeated" in str(record.msg) for record in caplog.records)


def test_a_new_calls_repeat_that_arrives_while_the_first_is_stored_waits_for_it(centre, signed_post):
    """A repeat sent while the first delivery's transaction is still open waits for it at the call's INSERT, then
    answers with that call: one call, and no leg or event of the repeat's own."""
    import threading

    from app.models import Call, Event, Leg

    call_sid = "CA" + "5" * 32
    form = {"CallSid": call_sid, "AccountSid": centre.network.account_sid, "From": "+15551230042",
            "To": centre.number, "CallStatus": "ringing", "Direction": "inbound"}
    first = centre.db()
    running = first.__enter__()  # the first delivery, still running: its call's row written, not committed
    running.add(Call(call_sid=call_sid, from_number="+15551230042", to_number=centre.number, status="ivr"))
    running.flush()
    answered = {}
    repeat = threading.Thread(target=lambda: answered.update(response=signed_post(centre.client, urls.VOICE, form)))
    repeat.start()
    repeat.join(0.5)
    try:
        assert repeat.is_alive()  # waiting for the first's transaction
    finally:
        first.__exit__(None, None, None)  # the first commits
        repeat.join(10)
    response = answered["response"]
    assert response.status_code == 200 and "<Gather" in response.get_data(as_text=True)
    with centre.db() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == call_sid))
        assert session.scalar(select(func.count(Call.id))) == 1
        assert session.scalar(select(func.count(Leg.id))) == 0
        assert session.scalar(select(func.count(Event.id))) == 0
    assert f"call={call_id}" in response.get_data(as_text=True)


def test_late_caller_options_and_voicemail_do_not_end_a_connected_call(centre, signed_post):
    caller, alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id
    form = {"CallSid": caller.sid, "From": caller.from_, "To": centre.number, "CallStatus": "in-progress"}
    callback = signed_post(centre.client, f"{urls.CALLER_OPTIONS}?call={call_id}", {**form, "Digits": "2"})
    voicemail = signed_post(centre.client, f"{urls.CALLER_VOICEMAIL}?call={call_id}",
                            {**form, "RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingDuration": "4"})
    for response in (callback, voicemail):
        assert response.status_code == 200
        assert ET.fromstring(response.data).find("Dial") is not None  # back into the room, where the caller is
    call = call_row(centre, caller.sid)
    assert call.status == "connected" and call.voicemail_url is None
    assert agent_activity(centre, "101") == "on_call"


def test_a_whisper_key_before_the_target_answered_does_not_move_the_transfer_on(centre, signed_post):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    bob = centre.agent_phone(BOB)
    leg_id = transfer_row(centre).target_leg_id
    early = signed_post(centre.client, f"{urls.TRANSFER_WHISPER}?leg={leg_id}",
                        {"CallSid": bob.sid, "From": "+15550100000", "To": BOB, "CallStatus": "ringing",
                         "Digits": "1"})
    assert early.status_code == 200
    assert transfer_row(centre).state in ("dialing", "whispering")  # not accepted by a key nobody pressed
    # The greeting from its start, nothing of the caller: who transfers, and the offer of the summary.
    root = ET.fromstring(early.data)
    said = " ".join(say.text or "" for say in root.iter("Say"))
    assert said == "Transfer from Alice Moreno. Press 1 to hear the summary, or 2 to decline."
    assert urls.TRANSFER_INTRO in root.find("Gather").get("action")


def test_a_webhook_with_another_calls_callsid_is_refused_harmlessly(centre, signed_post):
    caller, alice = connected_call(centre)
    other = connected_call(centre, number="+15551230077")[0]
    response = _replay(centre, signed_post, urls.AGENT_WHISPER, with_token=False, CallSid=other.sid, Digits="2")
    assert response.status_code == 200 and ET.fromstring(response.data).find("Hangup") is None
    assert agent_activity(centre, "101") == "on_call"
    wrong_caller = signed_post(centre.client, f"{urls.CALLER_OPTIONS}?call={call_row(centre, caller.sid).id}",
                               {"CallSid": other.sid, "CallStatus": "in-progress", "Digits": "2"})
    assert wrong_caller.status_code == 200 and call_row(centre, caller.sid).status == "connected"
    assert centre.agent_phone(ALICE).live


def _status_deliveries(centre, path: str, sid: str):
    return [d for d in centre.network.sent() if urlsplit(d.url).path == path and d.params.get("CallSid") == sid]


def test_status_callbacks_arriving_out_of_order_never_bring_a_leg_back(centre, signed_post):
    """Twilio's callbacks carry SequenceNumber because they may arrive out of order; a final status is final."""
    caller, alice = connected_call(centre)
    alice.hangup()  # the caller is thanked and their call ends too
    earlier = [d for d in _status_deliveries(centre, urls.AGENT_STATUS, alice.sid)
               if d.params["CallStatus"] != "completed"]
    assert {d.params["CallStatus"] for d in earlier} >= {"ringing", "in-progress"}
    for delivery in reversed(earlier):  # the earlier callbacks, late and in reverse
        parts = urlsplit(delivery.url)
        assert signed_post(centre.client, f"{parts.path}?{parts.query}", delivery.params).status_code == 200
    late_caller = {**_status_deliveries(centre, urls.STATUS, caller.sid)[-1].params, "CallStatus": "in-progress"}
    assert signed_post(centre.client, urls.STATUS, late_caller).status_code == 200
    assert call_row(centre, caller.sid).status == "completed"
    assert agent_activity(centre, "101") == "idle"
    assert centre.timeline(caller.sid).count("call_ended") == 1


def test_an_old_legs_completed_callback_replayed_with_a_fresh_token_does_not_free_the_agent_from_a_new_call(
        centre, signed_post):
    first, alice = connected_call(centre)
    first.hangup()
    old = _status_deliveries(centre, urls.AGENT_STATUS, alice.sid)[-1]
    assert old.params["CallStatus"] == "completed"
    with centre.db() as session:
        session.scalar(select(Agent).where(Agent.extension == "102")).presence = "offline"  # Bob
    second, alice_again = connected_call(centre, number="+15551230099")
    assert agent_activity(centre, "101") == "on_call"
    parts = urlsplit(old.url)
    with centre.db() as session:
        remembered = session.scalar(select(func.count(WebhookDelivery.id)))
    replay = signed_post(centre.client, f"{parts.path}?{parts.query}", old.params,
                         headers={"I-Twilio-Idempotency-Token": "a-token-the-replayer-chose"})
    assert replay.status_code == 200
    with centre.db() as session:  # known by its signed body: a repeat, not a new delivery
        assert session.scalar(select(func.count(WebhookDelivery.id))) == remembered
    assert agent_activity(centre, "101") == "on_call" and call_row(centre, second.sid).status == "connected"


def _snapshot(centre) -> tuple:
    """What a replay must not change: every call's, leg's, transfer's and agent's state, the timeline, the
    transcript, the outbox, and what was asked of Twilio and LiveKit."""
    from app.models import Call, Event, Leg, OutboxEffect, Transfer, Utterance

    with centre.db() as session:
        return (
            session.execute(select(Call.id, Call.status, Call.agent_id).order_by(Call.id)).all(),
            session.execute(select(Leg.id, Leg.status, Leg.placement, Leg.room_name, Leg.twilio_call_sid)
                            .order_by(Leg.id)).all(),
            session.execute(select(Transfer.id, Transfer.state, Transfer.target_leg_id).order_by(Transfer.id)).all(),
            session.execute(select(Agent.extension, Agent.activity, Agent.presence).order_by(Agent.id)).all(),
            session.scalars(select(Event.name).order_by(Event.id)).all(),
            session.scalar(select(func.count()).select_from(Utterance)),
            session.scalar(select(func.count()).select_from(OutboxEffect)),
            len(centre.network.rest_log),
            len(centre.livekit.requests),
        )


class ReplayEverything:
    """At each step of a scenario, every webhook Twilio sent so far is sent again, signed, each under a fresh
    idempotency token (so none is known as a repeat by its token), and must change nothing."""

    def __init__(self, centre, signed_post):
        self.centre, self.signed_post = centre, signed_post
        self.steps = []

    def before(self, step: str, **_details) -> None:
        self.centre.network.run_pending()
        self.centre.settle_summaries()  # a summary written meanwhile is the LLM's doing, not a replay's
        before = _snapshot(self.centre)
        for number, delivery in enumerate(self.centre.network.sent()):
            parts = urlsplit(delivery.url)
            token = f"replay-{step}-{number}"
            response = self.signed_post(self.centre.client, f"{parts.path}?{parts.query}", dict(delivery.params),
                                        headers={"I-Twilio-Idempotency-Token": token})
            assert response.status_code < 500, (step, delivery.url)
        assert _snapshot(self.centre) == before, f"replaying the webhooks before {step!r} changed something"
        self.steps.append(step)

    def expect(self, *_args) -> None:
        pass


def test_replaying_every_webhook_of_a_warm_transfer_after_each_step_changes_nothing(centre, signed_post):
    from app.sandbox import scenarios

    narrator = ReplayEverything(centre, signed_post)
    caller, alice, bob = scenarios.consulting(centre.network, centre.number, narrator=narrator)
    for keys in ("4", "4", "1"):  # swap to the caller, swap back to Bob, then back to the caller for good
        narrator.before(f"consult menu {keys}")
        alice.press_star()
        alice.press(keys)
    narrator.before("the end")
    call_id = str(call_row(centre, caller.sid).id)
    assert in_room(caller, call_id) and in_room(alice, call_id) and not bob.live
    assert transfer_row(centre).state == "cancelled"
    assert len(narrator.steps) >= 8


@pytest.mark.parametrize("path", [urls.AGENT_ANSWER, urls.AGENT_WHISPER, urls.TRANSFER_WHISPER])
def test_a_webhook_naming_a_leg_of_another_role_changes_nothing_and_keeps_the_caller_on(centre, signed_post, caplog,
                                                                                         path):
    caller, alice = connected_call(centre)
    before = _snapshot(centre)
    with centre.db() as session:
        from app.models import Leg

        caller_leg = session.scalar(select(Leg.id).where(Leg.role == "caller"))
    # Found by the signed-form fuzzer: an agent's or a target's URL naming the caller's own leg.
    response = signed_post(centre.client, f"{path}?leg={caller_leg}", {"CallSid": caller.sid, "Digits": "1"})
    assert response.status_code == 200 and ET.fromstring(response.data).find("Redirect") is not None
    assert _snapshot(centre) == before
    events = [record.msg.get("event") for record in caplog.records if isinstance(record.msg, dict)]
    assert "webhook_malformed" in events and "webhook_failed" not in events
