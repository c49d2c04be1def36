"""Every Twilio webhook is signed, idempotent, answers valid TwiML, and never drops the caller."""

import xml.etree.ElementTree as ET
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from app.models import Call, Event, WebhookDelivery
from app.sandbox import scenarios
from app.sandbox.livekit_server import sign_webhook, webhook_body
from app.sandbox.signing import signed_headers
from app.telephony import urls
from tests.conftest import (
    LIVEKIT_API_KEY,
    LIVEKIT_API_SECRET,
    PUBLIC_BASE_URL,
    TWILIO_AUTH_TOKEN,
)
from tests.transfer_helpers import accepts

VOICE_FORM = {"CallSid": "CA" + "a" * 32, "From": "+15551230099", "To": "+15550100000", "CallStatus": "ringing"}
TWIML_PATHS = [
    urls.FALLBACK_RECORDED, urls.VOICE, urls.IVR, urls.CALLER_WAIT, urls.CALLER_OPTIONS, urls.CALLER_VOICEMAIL, urls.CALLER_CONNECT,
    urls.CALLER_BRIDGE_ENDED, urls.CALLER_GOODBYE, urls.AGENT_ANSWER, urls.AGENT_WHISPER, urls.AGENT_BRIDGE_ENDED,
    urls.AGENT_REJOIN, urls.TRANSFER_MENU, urls.TRANSFER_CONSULT_MENU, urls.TRANSFER_ANSWER, urls.TRANSFER_INTRO,
    urls.TRANSFER_WHISPER, urls.TRANSFER_SUMMARY_WAIT,
    urls.FALLBACK,
]
CALLBACK_PATHS = [urls.STATUS, urls.TRANSCRIPTION, urls.AGENT_STATUS, urls.TRANSFER_STATUS]


def count(centre, model):
    with centre.db() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("path", TWIML_PATHS + CALLBACK_PATHS)
def test_unsigned_or_wrongly_signed_webhooks_get_403_and_change_nothing(centre, path, signed_post):
    before = count(centre, Event)
    unsigned = centre.client.post(path, data=VOICE_FORM)
    wrong = signed_post(centre.client, path, VOICE_FORM, token="not-the-token")
    assert unsigned.status_code == 403 and wrong.status_code == 403
    assert count(centre, Event) == before and count(centre, Call) == 0


def test_signature_covers_the_query_string(centre):
    caller = centre.dial()
    call_id = centre.timeline(caller.sid) and 1
    form = {"CallSid": caller.sid, "Digits": "1"}
    signed_for_other_call = signed_headers(TWILIO_AUTH_TOKEN, f"{PUBLIC_BASE_URL}{urls.IVR}?call={call_id + 1}", form)
    response = centre.client.post(f"{urls.IVR}?call={call_id}", data=form, headers=signed_for_other_call)
    assert response.status_code == 403


def test_a_replayed_delivery_gets_the_same_answer_and_changes_nothing(centre):
    caller = centre.dial()
    caller.press("1")
    first = centre.network.deliveries[-1]
    events = count(centre, Event)
    rest_calls = len(centre.network.rest_log)
    again = centre.network.replay_last()
    assert again.body == first.body
    assert count(centre, Event) == events
    assert len(centre.network.rest_log) == rest_calls  # no second agent was dialled
    assert count(centre, WebhookDelivery) >= 2


def test_repeated_status_callbacks_change_nothing(centre):
    caller = centre.dial()
    caller.press("1")
    caller.hangup()
    status = [d for d in centre.network.deliveries if d.kind == "status"][-1]
    events = count(centre, Event)
    centre.network.replay_last()
    # A repeat without Twilio's idempotency header is recognised by its content.
    headers = {k: v for k, v in status.headers.items() if k != "I-Twilio-Idempotency-Token"}
    response = centre.client.post(status.url.removeprefix(PUBLIC_BASE_URL), data=status.params, headers=headers)
    assert response.status_code == 200
    assert count(centre, Event) == events


def test_out_of_order_status_callbacks_do_not_reopen_a_call(centre, signed_post):
    caller = centre.dial()
    caller.press("1")
    caller.hangup()
    late = {**VOICE_FORM, "CallSid": caller.sid, "CallStatus": "in-progress", "SequenceNumber": "1"}
    assert signed_post(centre.client, urls.STATUS, late).status_code == 200
    with centre.db() as session:
        assert session.scalar(select(Call.status)) == "abandoned"


@pytest.mark.parametrize("form", [{}, {"CallSid": "garbage"}, {"From": "<Hangup/>"}])
def test_a_malformed_form_still_gets_twiml_that_keeps_the_caller_on_the_line(centre, form, signed_post):
    response = signed_post(centre.client, urls.VOICE, form)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    assert root.find("Hangup") is None
    assert root.find("Play") is not None and root.find("Redirect") is not None
    assert "try again" in root.find("Say").text


def test_an_unknown_call_in_a_step_gets_safe_twiml(centre, signed_post):
    response = signed_post(centre.client, f"{urls.CALLER_WAIT}?call=999", VOICE_FORM)
    root = ET.fromstring(response.data)
    assert response.mimetype == "text/xml" and root.find("Redirect").text.endswith("/twilio/caller/wait?call=999&retry=1")


def test_a_failing_step_keeps_the_caller_on_the_line(centre, monkeypatch):
    from app.calls import service

    def broken(*args, **kwargs):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(service, "handle_ivr_input", broken)
    caller = centre.dial()
    caller.press("1")
    assert "something went wrong on our side" in caller.heard_text
    assert caller.live and caller.waiting_on.tag == "Play"


def test_fallback_url_apologises_and_retries(centre, signed_post):
    response = signed_post(centre.client, urls.FALLBACK, {**VOICE_FORM, "ErrorCode": "11200"})
    root = ET.fromstring(response.data)
    assert root.find("Redirect").text == PUBLIC_BASE_URL + urls.VOICE
    assert root.find("Play") is not None


def test_every_twiml_of_a_whole_call_is_valid_xml_served_as_text_xml(centre):
    from tests.transfer_helpers import BOB, connected_call

    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    alice.press_star()
    alice.press("2")
    caller.hangup()
    twiml = [d for d in centre.network.deliveries if d.kind == "twiml"]
    assert len(twiml) >= 12
    for delivery in twiml:
        assert delivery.content_type.startswith("text/xml")
        assert ET.fromstring(delivery.body).tag == "Response"


def _livekit_events(centre, name):
    from app.models import Event

    with centre.db() as session:
        return [e.detail for e in session.scalars(select(Event).where(Event.name == name).order_by(Event.id))]


def test_livekit_webhook_is_verified_and_recorded_once(centre):
    from app.models import Leg
    from tests.transfer_helpers import connected_call

    caller, alice = connected_call(centre)
    with centre.db() as session:
        room = session.scalar(select(Call.room_name))
        caller_leg = session.scalar(select(Leg.id).where(Leg.twilio_call_sid == caller.sid))
    # LiveKit's own webhooks for both SIP legs were matched to their legs by identity.
    joined = _livekit_events(centre, "livekit_participant_joined")
    assert {(e["identity"], e["role"]) for e in joined if e["room"] == room} == {
        (f"sip_leg-{caller_leg}", "caller"), (f"sip_leg-{caller_leg + 1}", "agent")}
    left_before = len(_livekit_events(centre, "livekit_participant_left"))
    body = webhook_body("participant_left", room, participant_identity=f"sip_leg-{caller_leg}",
                        participant_kind="sip", event_id="EV_1")
    good = {"Authorization": sign_webhook(body, LIVEKIT_API_KEY, LIVEKIT_API_SECRET),
            "Content-Type": "application/webhook+json"}
    assert centre.client.post(urls.LIVEKIT_WEBHOOK, data=body, headers=good).status_code == 200
    assert centre.client.post(urls.LIVEKIT_WEBHOOK, data=body, headers=good).get_json()["repeated"] is True
    forged = {"Authorization": sign_webhook(body, LIVEKIT_API_KEY, "a-wrong-secret-that-is-long-enough-0123"), "Content-Type": "application/json"}
    assert centre.client.post(urls.LIVEKIT_WEBHOOK, data=body, headers=forged).status_code == 403
    tampered = body.replace(f"sip_leg-{caller_leg}", "someone_else")
    assert centre.client.post(urls.LIVEKIT_WEBHOOK, data=tampered, headers=good).status_code == 403
    assert centre.client.post(urls.LIVEKIT_WEBHOOK, data=body).status_code == 403
    left = _livekit_events(centre, "livekit_participant_left")
    assert len(left) == left_before + 1 and left[-1]["leg_id"] == caller_leg


@contextmanager
def _statements_sent(centre):
    """The statements the app's engine sends meanwhile, in order (a list, read and cleared as the test goes)."""
    from sqlalchemy import event as db_event

    sent: list[str] = []
    engine = centre.app.extensions["db_engine"]
    listener = lambda _conn, _cursor, statement, *_args: sent.append(statement)  # noqa: E731
    db_event.listen(engine, "before_cursor_execute", listener)
    try:
        yield sent
    finally:
        db_event.remove(engine, "before_cursor_execute", listener)


def _empty_twiml(answer) -> bool:
    """A 200 with an empty <Response/>: what a callback that changes nothing is answered."""
    root = ET.fromstring(answer.data)
    return answer.status_code == 200 and root.tag == "Response" and not len(root)


def _post_livekit(centre, body):
    headers = {"Authorization": sign_webhook(body, LIVEKIT_API_KEY, LIVEKIT_API_SECRET),
               "Content-Type": "application/webhook+json"}
    return centre.client.post(urls.LIVEKIT_WEBHOOK, data=body, headers=headers)


def test_a_livekit_event_is_known_by_its_id_or_else_by_its_body(centre):
    import json

    from tests.transfer_helpers import connected_call

    caller, _alice = connected_call(centre)
    with centre.db() as session:
        room = session.scalar(select(Call.room_name))
    before = len(_livekit_events(centre, "livekit_room_started"))
    first = webhook_body("room_started", room, event_id="EV_again", created_at=1_800_000_000)
    assert _post_livekit(centre, first).get_json() == {"status": "ok"}
    # The same event sent again (LiveKit retrying it) is known by its id, whatever else of the body differs.
    resent = webhook_body("room_started", room, event_id="EV_again", created_at=1_800_000_007)
    assert resent != first and _post_livekit(centre, resent).get_json()["repeated"] is True
    # A body without an id (an older server's) is known by its SHA-256: its replay changes nothing.
    bare = json.loads(webhook_body("room_started", room))
    del bare["id"]
    anonymous = json.dumps(bare)
    assert _post_livekit(centre, anonymous).get_json() == {"status": "ok"}
    assert _post_livekit(centre, anonymous).get_json()["repeated"] is True
    assert len(_livekit_events(centre, "livekit_room_started")) == before + 2
    with centre.db() as session:
        keys = set(session.scalars(select(WebhookDelivery.delivery_key).where(WebhookDelivery.source == "livekit")))
    assert "EV_again" in keys and sum(key.startswith("sha256:") for key in keys) == 1


def test_a_phone_legs_room_event_is_told_without_locking_its_call_and_a_browsers_locks_it(centre):
    from app.models import Leg
    from tests.transfer_helpers import connected_call

    caller, _alice = connected_call(centre)
    with centre.db() as session:
        room = session.scalar(select(Call.room_name))
        leg = session.scalar(select(Leg).where(Leg.twilio_call_sid == caller.sid))
        leg_id, placement = leg.id, leg.placement
    with _statements_sent(centre) as sent:
        left = webhook_body("participant_left", room, participant_identity=f"sip_leg-{leg_id}",
                            participant_kind="sip")
        assert _post_livekit(centre, left).status_code == 200
        phone = list(sent)
        sent.clear()
        browser = webhook_body("participant_joined", room, participant_identity="agent-999")
        assert _post_livekit(centre, browser).status_code == 200
    # The phone leg's departure waits for no step of its call: no row is locked, on either database.
    assert not any(" FOR " in statement for statement in phone), phone
    told = _livekit_events(centre, "livekit_participant_left")[-1]
    assert told["leg_id"] == leg_id and told["role"] == "caller" and told["placement"] == placement
    assert told["identity"] == f"sip_leg-{leg_id}" and told["room"] == room
    # A browser agent's arrival may lead to a step (one with no leg here is refused and removed): it locks the
    # call first, on PostgreSQL (SQLite's write lock serialises every step).
    if centre.app.extensions["db_engine"].dialect.name == "postgresql":
        assert any("FOR NO KEY UPDATE" in statement for statement in sent), sent
    refused = _livekit_events(centre, "livekit_participant_refused")
    assert refused and refused[-1]["identity"] == "agent-999"


def test_a_livekit_event_the_service_does_not_act_on_sends_no_statement(centre):
    caller = centre.dial()
    caller.press("1")
    with centre.db() as session:
        room = session.scalar(select(Call.room_name))
        deliveries = session.scalar(select(func.count(WebhookDelivery.id)))
    body = webhook_body("track_published", room, participant_identity="sip_leg-1", participant_kind="sip",
                        event_id="EV_track")
    with _statements_sent(centre) as sent:
        answer = _post_livekit(centre, body)
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok", "acted_on": False}
    assert sent == []
    with centre.db() as session:
        assert session.scalar(select(func.count(WebhookDelivery.id))) == deliveries


def test_a_transcription_event_that_changes_nothing_is_answered_without_a_statement(centre, signed_post):
    import json

    from app.models import Leg, Utterance
    from tests.transfer_helpers import connected_call

    caller, alice = connected_call(centre)
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
        call_id, sid_before = call.id, call.transcription_sid
        agent_leg = session.scalar(select(Leg.id).where(Leg.twilio_call_sid == alice.sid))
        utterances = session.scalar(select(func.count(Utterance.id)))
    caller_url = f"{urls.TRANSCRIPTION}?call={call_id}"
    agent_url = f"{caller_url}&leg={agent_leg}"
    words = json.dumps({"transcript": "my card number is"})
    nothing_kept = [
        (caller_url, {"CallSid": caller.sid, "TranscriptionEvent": "transcription-stopped", "TranscriptionSid": "GT1"}),
        (agent_url, {"CallSid": alice.sid, "TranscriptionEvent": "transcription-started", "TranscriptionSid": "GT2"}),
        (caller_url, {"CallSid": caller.sid, "TranscriptionEvent": "transcription-content", "Final": "false",
                      "Track": "inbound_track", "TranscriptionData": words}),
        (caller_url, {"CallSid": caller.sid, "TranscriptionEvent": "transcription-content", "Final": "true",
                      "Track": "outbound_track", "TranscriptionData": words}),
    ]
    with _statements_sent(centre) as sent:
        answers = [signed_post(centre.client, url, form) for url, form in nothing_kept]
        quiet = list(sent)
        kept = signed_post(centre.client, caller_url, {
            "CallSid": caller.sid, "TranscriptionEvent": "transcription-started", "TranscriptionSid": "GT3"})
    assert all(_empty_twiml(answer) for answer in answers)
    assert quiet == []  # no claim, no lock, no read
    # The caller's transcription starting is kept (a card pause stops it by this SID): the whole way.
    assert kept.status_code == 200
    with centre.db() as session:
        assert session.scalar(select(Call.transcription_sid).where(Call.id == call_id)) == "GT3" != sid_before
        assert session.scalar(select(func.count(Utterance.id))) == utterances
    # A chunk whose data is not JSON still goes the whole way, and is refused in words.
    refused = signed_post(centre.client, caller_url, {
        "CallSid": caller.sid, "TranscriptionEvent": "transcription-content", "Track": "inbound_track",
        "TranscriptionData": "{not json"})
    assert refused.status_code == 400 and "TranscriptionData is not JSON" in refused.get_data(as_text=True)


def test_a_status_before_the_end_of_a_known_leg_is_answered_after_one_unlocked_read(centre, signed_post):
    from app.models import Leg
    from tests.transfer_helpers import connected_call

    caller, alice = connected_call(centre)
    with centre.db() as session:
        leg = session.scalar(select(Leg).where(Leg.twilio_call_sid == alice.sid))
        leg_id, status, deliveries = leg.id, leg.status, session.scalar(select(func.count(WebhookDelivery.id)))
    url = f"{urls.AGENT_STATUS}?leg={leg_id}"
    with _statements_sent(centre) as sent:
        answers = [signed_post(centre.client, url, {"CallSid": alice.sid, "CallStatus": progress})
                   for progress in ("initiated", "ringing", "in-progress")]
        quiet = [statement for statement in sent if not statement.startswith(("BEGIN", "COMMIT"))]
        sent.clear()
        # Another leg's CallSid goes the whole way, and is refused as ever.
        stranger = signed_post(centre.client, url, {"CallSid": caller.sid, "CallStatus": "ringing"})
    assert all(_empty_twiml(answer) for answer in answers)
    assert len(quiet) == 3 and not any(" FOR " in statement for statement in quiet), quiet  # one read each
    assert stranger.status_code == 400 and any(" FOR " in statement for statement in sent) == (
        centre.app.extensions["db_engine"].dialect.name == "postgresql")
    with centre.db() as session:
        assert session.scalar(select(Leg.status).where(Leg.id == leg_id)) == status
        assert session.scalar(select(func.count(WebhookDelivery.id))) == deliveries  # nothing claimed


def test_stored_answers_keep_no_sip_password_and_replays_still_carry_it(centre):
    from tests.transfer_helpers import connected_call

    caller, alice = connected_call(centre)
    with centre.db() as session:
        bodies = list(session.scalars(select(WebhookDelivery.body)))
    assert any("{{LIVEKIT_SIP_PASSWORD}}" in body for body in bodies)
    assert not any("sip-trunk-password-123" in body for body in bodies)
    connect = next(d for d in centre.network.deliveries if "/twilio/caller/connect" in d.url)
    again = centre.client.post(connect.url.removeprefix(PUBLIC_BASE_URL), data=connect.params, headers=connect.headers)
    assert again.get_data(as_text=True) == connect.body and 'password="sip-trunk-password-123"' in connect.body


def test_old_deliveries_are_pruned(centre, runner):
    from datetime import timedelta

    caller = centre.dial()
    caller.press("1")
    with centre.db() as session:
        for row in session.scalars(select(WebhookDelivery)):
            row.created_at = row.created_at - timedelta(hours=49)
    before = count(centre, WebhookDelivery)
    result = centre.app.test_cli_runner().invoke(args=["db", "prune"])
    assert result.exit_code == 0 and f"removed {before} webhook deliveries" in result.output
    assert count(centre, WebhookDelivery) == 0


def test_a_repeat_that_arrives_while_the_first_is_running_waits_for_its_answer(centre, signed_post):
    import threading
    import time

    caller = centre.dial()
    token = "retry-of-a-slow-delivery"
    with centre.db() as session:
        session.add(WebhookDelivery(source="twilio", delivery_key=token, endpoint=urls.IVR,
                                    status_code=0, content_type="", body=""))

    def first_delivery_finishes():
        time.sleep(0.3)
        with centre.db() as session:
            row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.delivery_key == token))
            row.status_code, row.content_type, row.body = 200, "text/xml", "<Response><Pause/></Response>"

    finisher = threading.Thread(target=first_delivery_finishes)
    finisher.start()
    form = {"CallSid": caller.sid, "Digits": "1"}
    response = signed_post(centre.client, f"{urls.IVR}?call=1&attempt=1", form,
                           headers={"I-Twilio-Idempotency-Token": token})
    finisher.join()
    assert response.get_data(as_text=True) == "<Response><Pause/></Response>"
    assert centre.ringing() == []  # the repeat did not dial an agent a second time


def test_a_failed_step_forgets_its_claim_so_the_retry_runs_it(centre, monkeypatch):
    from app.calls import service

    original = service.handle_ivr_input
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "handle_ivr_input", fails_once)
    caller = centre.dial()
    caller.press("1")
    assert "something went wrong" in caller.heard_text
    centre.network.replay_last()  # Twilio retries the same delivery
    assert len(calls) == 2 and len(centre.ringing()) == 1


def test_a_step_that_keeps_failing_ends_in_a_message_not_silence(centre, monkeypatch):
    from app.calls import service

    def broken(*args, **kwargs):
        raise RuntimeError("the queue table is corrupt")

    monkeypatch.setattr(service, "handle_ivr_input", broken)
    caller = centre.dial()
    caller.press("1")
    for _ in range(3):
        assert caller.waiting_on.tag == "Play"
        caller.music_ends()  # the retry fails again
    assert caller.waiting_on.tag == "Record"
    assert "Please leave a message after the tone" in caller.heard_text
    caller.recording_done("https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE999")
    assert "We have your message" in caller.heard_text and not caller.live
    assert "last_resort_message" in centre.timeline(caller.sid)
    with centre.db() as session:
        assert session.scalar(select(Call.voicemail_url)).endswith("RE999")


def test_while_rotating_the_previous_auth_token_still_signs(make_app, centre_settings, signed_post):
    from dataclasses import replace

    app = make_app(replace(centre_settings, twilio_auth_token="the-new-token-0123456789",
                           twilio_previous_auth_token=TWILIO_AUTH_TOKEN))
    client = app.test_client()
    assert signed_post(client, urls.VOICE, VOICE_FORM).status_code == 200  # signed with the old token
    assert signed_post(client, urls.VOICE, VOICE_FORM, token="the-new-token-0123456789").status_code == 200
    assert signed_post(client, urls.VOICE, VOICE_FORM, token="some-other-token-000").status_code == 403


def test_a_retried_step_carries_the_callers_speech_sealed_never_in_the_url(centre, monkeypatch):
    from app.calls import service

    original, failures = service.handle_ivr_input, []

    def fails_twice(*args, **kwargs):
        if len(failures) < 2:
            failures.append("once")
            raise RuntimeError("database hiccup")
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "handle_ivr_input", fails_twice)
    caller = centre.dial()
    caller.speak("my bill on card 4111 1111 1111 1111 was charged twice")
    caller.music_ends()  # the first retry fails too: its own retry must still carry the words
    caller.music_ends()
    fetched = [d.url for d in centre.network.sent()]
    retries = [url for url in fetched if "retry=" in url]
    assert len(retries) == 2 and all("carry=" in url for url in retries)
    assert not any("4111" in url or "charged" in url or "SpeechResult" in url for url in fetched)
    with centre.db() as session:
        assert session.scalar(select(Call.ivr_reason)).endswith("was charged twice")  # the words arrived
    assert centre.agent_phone(scenarios.ALICE).live  # and the call went to billing


def test_a_sealed_input_that_was_altered_is_refused(centre, signed_post):
    from app.voice.guard import seal_input

    caller = centre.dial()
    with centre.app.test_request_context():
        token = seal_input({"Digits": "1"})
    good = signed_post(centre.client, f"{urls.IVR}?call=1&attempt=1&carry={token}&retry=1",
                       {**VOICE_FORM, "CallSid": caller.sid, "CallStatus": "in-progress"})
    assert ET.fromstring(good.data).find("Gather") is None  # the sealed key 1 chose billing
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    again = centre.dial("+15551230077")
    response = signed_post(centre.client, f"{urls.IVR}?call=2&attempt=1&carry={forged}&retry=1",
                           {**VOICE_FORM, "CallSid": again.sid, "CallStatus": "in-progress"})
    assert response.status_code == 200 and ET.fromstring(response.data).find("Gather") is not None  # asked again


@pytest.mark.parametrize("query", ["call=99999999999999999999999", "call=-1", "leg=1e9", "leg=4294967296",
                                   "call=1&transfer=99999999999999999999&leg=1"])
def test_ids_beyond_the_databases_integers_get_harmless_twiml(centre, signed_post, query):
    for path in (urls.CALLER_WAIT, urls.AGENT_REJOIN, urls.TRANSFER_MENU):
        response = signed_post(centre.client, f"{path}?{query}", VOICE_FORM)
        assert response.status_code == 200 and response.mimetype == "text/xml"
        assert ET.fromstring(response.data).find("Hangup") is None


def test_a_callsid_that_is_not_twilios_shape_is_no_callsid(centre, signed_post):
    long_sid = "CA" + "f" * 200
    response = signed_post(centre.client, urls.VOICE, {**VOICE_FORM, "CallSid": long_sid})
    assert response.status_code == 200 and ET.fromstring(response.data).find("Redirect") is not None
    status = signed_post(centre.client, urls.STATUS, {**VOICE_FORM, "CallSid": long_sid, "CallStatus": "completed"})
    assert status.status_code == 400  # a callback with no usable CallSid: refused in words, nothing stored
    with centre.db() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 0


def test_an_expired_livekit_token_is_refused_and_a_replay_without_an_event_id_is_handled_once(centre):
    import base64
    import hashlib
    import json
    import time

    import jwt

    from app.models import Leg
    from tests.transfer_helpers import connected_call

    caller, alice = connected_call(centre)
    with centre.db() as session:
        room = session.scalar(select(Call.room_name))
        agent_leg = session.scalar(select(Leg.id).where(Leg.twilio_call_sid == alice.sid))
    event = json.loads(webhook_body("participant_left", room, participant_identity=f"sip_leg-{agent_leg}",
                                    participant_kind="sip"))
    del event["id"]  # an event without an id: only its body tells a replay
    body = json.dumps(event)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    now = int(time.time())
    expired = jwt.encode({"iss": LIVEKIT_API_KEY, "sha256": digest, "nbf": now - 300, "exp": now - 5},
                         LIVEKIT_API_SECRET, "HS256")
    before = len(_livekit_events(centre, "livekit_participant_left"))

    refused = centre.client.post(urls.LIVEKIT_WEBHOOK, data=body, headers={"Authorization": expired})
    assert refused.status_code == 403 and len(_livekit_events(centre, "livekit_participant_left")) == before

    signed = {"Authorization": sign_webhook(body, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)}
    first = centre.client.post(urls.LIVEKIT_WEBHOOK, data=body, headers=signed)
    again = centre.client.post(urls.LIVEKIT_WEBHOOK, data=body,
                               headers={"Authorization": sign_webhook(body, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)})
    assert first.get_json() == {"status": "ok"} and again.get_json() == {"status": "ok", "repeated": True}
    assert len(_livekit_events(centre, "livekit_participant_left")) == before + 1


@pytest.mark.parametrize("verstat, attestation", [
    ("TN-Validation-Passed-A", "A"), ("TN-Validation-Passed-B", "B"), ("TN-Validation-Passed-C-Passthrough", "C"),
    ("TN-Validation-Passed-A-Diverted", "A"), ("TN-Validation-Failed-A", "failed"), ("TN-Validation-Failed", "failed"),
    ("NULL", "failed"), ("No-TN-Validation", None), ("", None), ("  TN-Validation-Passed-A ", "A"),
    ("TN-Validation-Passed-A; drop table", "failed"),
])
def test_twilios_stir_verstat_is_read_as_the_carriers_attestation(verstat, attestation):
    """Twilio's values (twilio.com/docs/voice/trusted-calling-with-shakenstir): only a verified signature gives a
    level; anything Twilio could not verify, or an unknown word, is "failed"; no PASSporT, nothing."""
    from app.telephony.outcomes import caller_attestation

    assert caller_attestation(verstat) == attestation
