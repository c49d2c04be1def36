"""The Twilio call simulator, driven against a small toy webhook app."""

import json
import threading
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server

from app.sandbox.signing import signed_headers, twilio_signature
from app.sandbox.twilio_network import (
    TwilioNetwork,
    TwimlError,
    flask_client_transport,
    http_transport,
)

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "toy-auth-token"
BASE = "https://switchboard.test"
NUMBER = "+15550001111"
CALLER = "+15559990000"

ROUTES = {
    "/voice": """<?xml version="1.0" encoding="UTF-8"?><Response>
        <Say voice="Polly.Amy" language="en-GB">Welcome to the toy line.</Say>
        <Gather input="dtmf speech" numDigits="1" action="/menu">
            <Say>Press 1 for sales.</Say><Play>https://cdn.test/beep.mp3</Play>
        </Gather>
        <Say>We did not get that.</Say></Response>""",
    "/dial-noaction": """<Response><Dial><Number>+15551112222</Number></Dial>
        <Say>The dial is over.</Say></Response>""",
    "/redirect": "<Response><Say>One moment.</Say><Redirect>/hold</Redirect></Response>",
    "/hold": '<Response><Play loop="0">https://cdn.test/hold.mp3</Play></Response>',
    "/empty-gather": """<Response><Gather action="/menu" actionOnEmptyResult="true">
        <Say>Anything?</Say></Gather></Response>""",
    "/transcribed": """<Response><Start><Transcription statusCallbackUrl="/transcripts"
        track="inbound_track"/></Start><Pause length="1"/>
        <Play loop="0">https://cdn.test/hold.mp3</Play></Response>""",
    "/record": '<Response><Say>Leave a message.</Say><Record action="/recorded"/></Response>',
    "/recorded": "<Response><Say>Thanks.</Say><Hangup/></Response>",
    "/agent": '<Response><Gather numDigits="1" action="/agent-choice"><Say>Call for you.</Say></Gather></Response>',
    "/agent-choice": "<Response><Say>Connecting.</Say><Hangup/></Response>",
    "/bad-xml": "<Response><Say>unclosed</Response>",
    "/unknown": "<Response><Dance/></Response>",
}


def make_toy_app(received):
    app = Flask("toy")
    validator = RequestValidator(AUTH_TOKEN)

    def checked():
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(request.url, request.form, signature):
            return False
        received.append({
            "path": request.path, "form": request.form.to_dict(),
            "token": request.headers.get("I-Twilio-Idempotency-Token"),
            "body": request.get_data(),
        })
        return True

    def twiml(text, mimetype="text/xml"):
        return Response(text, mimetype=mimetype)

    @app.post("/<path:name>")
    def fixed(name):
        if not checked():
            return Response("bad signature", status=403)
        path = "/" + name
        if path in ROUTES:
            return twiml(ROUTES[path])
        if path == "/menu":
            choice = request.form.get("Digits") or request.form.get("SpeechResult") or "nothing"
            return twiml(f"""<Response><Say>You chose {choice}.</Say>
                <Dial action="/dial-done" hangupOnStar="true" timeout="20">
                <Sip username="agent" password="secret">sip:room-1@sip.test;transport=tcp</Sip>
                </Dial><Say>Never heard.</Say></Response>""")
        if path == "/dial-done":
            status = request.form["DialCallStatus"]
            if status == "completed":
                return twiml("<Response><Say>Goodbye.</Say><Hangup/></Response>")
            return twiml(f"<Response><Say>Sorry, {status}.</Say><Redirect>/hold</Redirect></Response>")
        if path == "/star":
            network = app.config["NETWORK"]
            caller = request.args["caller"]
            status, _ = network.rest_update_call(caller, {"Url": BASE + "/hold"})
            app.config["SEEN_DURING_REQUEST"] = (status, network.call(caller).waiting_on.tag)
            return twiml('<Response><Gather numDigits="1"><Say>Transfer menu.</Say></Gather></Response>')
        if path == "/html":
            return twiml("<Response/>", mimetype="text/html")
        return Response("", status=204)

    return app


@pytest.fixture
def received():
    return []


@pytest.fixture
def toy(received):
    return make_toy_app(received)


@pytest.fixture
def network(toy):
    client = toy.test_client()
    network = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, flask_client_transport(client, BASE))
    toy.config["NETWORK"] = network
    network.add_number(NUMBER, voice_url=BASE + "/voice", status_callback=BASE + "/status")
    return network


def forms(received, path):
    return [r["form"] for r in received if r["path"] == path]


def test_signing_matches_twilio_validator():
    params = {"CallSid": "CA1", "Digits": "1"}
    url = BASE + "/menu?x=1"
    headers = signed_headers(AUTH_TOKEN, url, params)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["X-Twilio-Signature"] == twilio_signature(AUTH_TOKEN, url, params)
    assert RequestValidator(AUTH_TOKEN).validate(url, params, headers["X-Twilio-Signature"])


def test_incoming_call_is_signed_and_waits_on_gather(network, received):
    call = network.incoming_call(CALLER, NUMBER)

    first = received[0]
    assert first["path"] == "/voice"
    assert first["token"]
    assert first["form"] == {
        "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call.sid,
        "CallStatus": "ringing", "Direction": "inbound", "From": CALLER, "To": NUMBER,
        "Caller": CALLER, "Called": NUMBER, "CallToken": call.call_token,
    }
    assert call.call_token
    assert call.heard == ["Welcome to the toy line.", "Press 1 for sales."]
    assert (call.heard[0].voice, call.heard[0].language) == ("Polly.Amy", "en-GB")
    assert call.played == ["https://cdn.test/beep.mp3"]
    assert call.waiting_on.tag == "Gather"
    assert call.status == "in-progress"
    assert "<Gather" in call.twiml_log[0]


def test_digits_go_to_the_gather_action_and_reach_a_dial(network, received):
    call = network.incoming_call(CALLER, NUMBER).press("17#")

    menu = forms(received, "/menu")[0]
    assert menu["Digits"] == "1"
    assert menu["CallStatus"] == "in-progress"
    assert call.heard[-1] == "You chose 1."
    assert call.waiting_on.tag == "Dial"
    [sip] = call.dialed
    assert (sip.kind, sip.target) == ("Sip", "sip:room-1@sip.test;transport=tcp")
    assert (sip.username, sip.password) == ("agent", "secret")


def test_speech_goes_to_the_gather_action(network, received):
    network.incoming_call(CALLER, NUMBER).speak("sales please", confidence=0.75)

    menu = forms(received, "/menu")[0]
    assert (menu["SpeechResult"], menu["Confidence"]) == ("sales please", "0.75")
    assert "Digits" not in menu


def test_silence_falls_through_and_the_number_status_callback_follows(network, received):
    call = network.incoming_call(CALLER, NUMBER).silence()

    assert call.heard[-1] == "We did not get that."
    assert call.status == "completed" and call.waiting_on is None
    [status] = forms(received, "/status")
    assert status["CallStatus"] == "completed"
    # The <Gather>'s nested <Play> (a file the simulator cannot fetch, taken
    # as 30 s) and then its 5 s timeout passed on the virtual clock.
    assert status["CallDuration"] == "35"


def test_silence_with_action_on_empty_result_posts_the_action(network, received):
    call = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/empty-gather").silence()

    assert call.heard[-1] == "You chose nothing."
    assert "Digits" not in forms(received, "/menu")[0]


@pytest.mark.parametrize("status", ["completed", "busy", "no-answer", "failed", "canceled"])
def test_dial_action_gets_each_status(network, received, status):
    call = network.incoming_call(CALLER, NUMBER).press("1")
    dial_sid = call.dial_call_sid
    call.dial_ends(status, duration=42)

    done = forms(received, "/dial-done")[0]
    assert done["DialCallStatus"] == status
    assert done["DialCallSid"] == dial_sid
    if status == "completed":
        assert done["DialCallDuration"] == "42" and done["DialBridged"] == "true"
        assert call.heard[-1] == "Goodbye." and call.status == "completed"
    else:
        assert "DialCallDuration" not in done and done["DialBridged"] == "false"
        assert call.heard[-1] == f"Sorry, {status}."
        assert call.waiting_on.tag == "Play" and call.played[-1] == "https://cdn.test/hold.mp3"
    assert call.dialed == []


def test_dial_without_action_continues_with_the_next_verb(network):
    call = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/dial-noaction")
    assert call.dialed[0].kind == "Number"

    call.dial_ends("no-answer")

    assert call.heard == ["The dial is over."]
    assert call.status == "completed"


def test_hangup_on_star_requests_the_dial_action(network, received):
    call = network.incoming_call(CALLER, NUMBER).press("1").press_star()

    done = forms(received, "/dial-done")[0]
    assert done["DialCallStatus"] == "completed"
    assert call.heard[-1] == "Goodbye."


def test_star_needs_hangup_on_star(network):
    call = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/dial-noaction")
    with pytest.raises(TwimlError, match="hangupOnStar"):
        call.press_star()


def test_redirect_fetches_the_new_document(network):
    call = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/redirect")

    assert call.heard == ["One moment."]
    assert call.waiting_on.tag == "Play" and call.waiting_on.get("loop") == "0"
    assert len(call.twiml_log) == 2


def test_caller_hanging_up_in_a_dial_requests_the_action_then_the_status(network, received):
    call = network.incoming_call(CALLER, NUMBER).press("1")
    heard = list(call.heard)

    call.hangup(duration=30)

    assert [r["path"] for r in received][-2:] == ["/dial-done", "/status"]
    assert forms(received, "/dial-done")[0]["CallStatus"] == "completed"
    assert forms(received, "/status")[0]["CallDuration"] == "30"
    assert call.heard == heard
    with pytest.raises(TwimlError):
        call.press("1")


def test_rest_created_call_is_asynchronous_until_answered(network, received):
    form = MultiDict([
        ("To", "sip:agent@sip.test"), ("From", NUMBER), ("Url", BASE + "/agent"),
        ("StatusCallback", BASE + "/status"), ("Timeout", "25"),
        *[("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered", "completed")],
    ])
    status, resource = network.rest_create_call(form)

    assert status == 201 and resource["status"] == "queued"
    assert received == []
    call = network.call(resource["sid"])
    assert call.timeout == 25 and call.direction == "outbound-api"

    network.answer(call.sid)

    statuses = [f["CallStatus"] for f in forms(received, "/status")]
    assert statuses == ["initiated", "ringing", "in-progress"]
    agent = forms(received, "/agent")[0]
    assert (agent["Direction"], agent["CallStatus"]) == ("outbound-api", "in-progress")
    assert call.heard == ["Call for you."]

    call.press("1")
    assert call.status == "completed"
    assert forms(received, "/status")[-1]["CallStatus"] == "completed"


def test_rest_created_call_that_rings_out(network, received):
    _, resource = network.rest_create_call({
        "To": "sip:agent@sip.test", "From": NUMBER, "Url": BASE + "/agent",
        "StatusCallback": BASE + "/status",
    })

    network.ring_out(resource["sid"], "busy")

    # Without StatusCallbackEvent only the final status is sent.
    assert [f["CallStatus"] for f in forms(received, "/status")] == ["busy"]
    assert network.rest_get_call(resource["sid"])[1]["status"] == "busy"


def test_rest_redirect_is_queued_and_requests_the_dial_action_first(network, received):
    call = network.incoming_call(CALLER, NUMBER).press("1")
    count = len(received)

    status, _ = network.rest_update_call(call.sid, {"Url": BASE + "/hold"})

    assert status == 200 and len(received) == count and call.waiting_on.tag == "Dial"
    network.run_pending()
    assert [r["path"] for r in received[count:]] == ["/dial-done", "/hold"]
    assert call.waiting_on.tag == "Play"
    assert call.heard[-1] == "You chose 1."


def test_rest_redirect_made_during_a_webhook_lands_after_it(network, toy, received):
    caller = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/dial-noaction")

    agent = network.incoming_call(
        "+15552223333", NUMBER, voice_url=f"{BASE}/star?caller={caller.sid}")

    # While /star was being answered the caller was still in its <Dial>.
    assert toy.config["SEEN_DURING_REQUEST"] == (200, "Dial")
    assert caller.waiting_on.tag == "Play"
    assert agent.heard == ["Transfer menu."]


def test_rest_status_updates(network, received):
    call = network.incoming_call(CALLER, NUMBER)

    assert network.rest_update_call(call.sid, {"Status": "canceled"})[1]["status"] == "in-progress"
    status, resource = network.rest_update_call(call.sid, {"Status": "completed"})
    assert (status, resource["status"]) == (200, "completed")
    network.run_pending()
    assert forms(received, "/status")[-1]["CallStatus"] == "completed"

    status, error = network.rest_update_call(call.sid, {"Url": BASE + "/hold"})
    assert (status, error["code"]) == (400, 21220)

    _, queued = network.rest_create_call({"To": "+1555", "From": NUMBER, "Url": BASE + "/agent"})
    assert network.rest_update_call(queued["sid"], {"Status": "canceled"})[1]["status"] == "canceled"
    assert network.rest_get_call("CA404")[0] == 404


def test_replay_last_resends_the_same_bytes(network, received):
    network.incoming_call(CALLER, NUMBER).press("2")

    delivery = network.replay_last()

    assert delivery.status == 200
    original, replayed = received[-2], received[-1]
    assert replayed["path"] == "/menu"
    assert (replayed["token"], replayed["body"]) == (original["token"], original["body"])


def test_transcription_callbacks(network, received):
    call = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/transcribed")
    started = forms(received, "/transcripts")[0]
    assert started["TranscriptionEvent"] == "transcription-started"

    call.transcribe("my card is broken")

    content = forms(received, "/transcripts")[-1]
    assert content["TranscriptionEvent"] == "transcription-content"
    assert json.loads(content["TranscriptionData"]) == {
        "transcript": "my card is broken", "confidence": 0.9}
    assert (content["Track"], content["Final"], content["CallSid"]) == (
        "inbound_track", "true", call.sid)
    assert content["TranscriptionSid"] == started["TranscriptionSid"]
    assert int(content["SequenceId"]) > int(started["SequenceId"])
    with pytest.raises(TwimlError, match="outbound_track"):
        call.transcribe("hello", track="outbound_track")

    call.hangup()
    assert forms(received, "/transcripts")[-1]["TranscriptionEvent"] == "transcription-stopped"


def test_record_posts_the_recording(network, received):
    call = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/record")
    call.recording_done("https://api.twilio.com/rec/RE1", duration=7)

    recorded = forms(received, "/recorded")[0]
    assert (recorded["RecordingUrl"], recorded["RecordingDuration"]) == (
        "https://api.twilio.com/rec/RE1", "7")
    assert call.heard[-1] == "Thanks." and call.status == "completed"


@pytest.mark.parametrize("path, message", [
    ("/bad-xml", "invalid XML"), ("/html", "not text/xml"), ("/unknown", "unknown verb <Dance>"),
])
def test_bad_twiml_raises(network, path, message):
    with pytest.raises(TwimlError, match=message):
        network.incoming_call(CALLER, NUMBER, voice_url=BASE + path)


def test_wrong_token_is_refused_by_the_app(toy):
    network = TwilioNetwork(ACCOUNT_SID, "wrong", flask_client_transport(toy.test_client(), BASE))
    with pytest.raises(TwimlError, match="403"):
        network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/voice")


def test_numbers_list_and_update(network):
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json"
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    status, page = network.handle_rest("GET", path, query={"PhoneNumber": NUMBER}, auth=auth)
    [number] = page["incoming_phone_numbers"]
    assert (status, number["voice_url"]) == (200, BASE + "/voice")

    network.handle_rest("POST", path.replace(".json", f"/{number['sid']}.json"),
                        form={"VoiceUrl": BASE + "/new", "VoiceFallbackUrl": BASE + "/fb"},
                        auth=auth)

    assert network.number(NUMBER)["voice_url"] == BASE + "/new"
    assert network.number(NUMBER)["voice_fallback_url"] == BASE + "/fb"
    assert network.rest_log[-1].form["VoiceUrl"] == BASE + "/new"
    assert network.handle_rest("GET", path, auth=(ACCOUNT_SID, "nope"))[0] == 401
    assert network.handle_rest("GET", path)[0] == 401


def test_http_transport_over_loopback(toy):
    server = make_server("127.0.0.1", 0, toy, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        network = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, http_transport(timeout=5))
        call = network.incoming_call(CALLER, NUMBER, voice_url=base + "/voice").press("1")
        assert call.heard[-1] == "You chose 1."
        assert call.waiting_on.tag == "Dial"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_signatures_follow_twilios_documented_example():
    # twilio.com/docs/usage/security: the worked example, signed by our own implementation.
    url = "https://example.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
              "From": "+14158675310", "To": "+18005551212"}
    assert twilio_signature("12345", url, params) == "L/OH5YylLD5NRKLltdqwSvS0BnU="
    assert RequestValidator("12345").validate(url, params, twilio_signature("12345", url, params))


def test_a_dial_to_sip_nobody_answers_gives_up_after_its_timeout_and_the_buffer(network, received):
    from livekit.protocol import sip

    from app.sandbox.livekit_server import LiveKitStandIn

    with LiveKitStandIn("APIkey", "a-secret-long-enough-for-hs256-signing", clock=network.clock) as livekit:
        livekit.trunks["ST_1"] = sip.SIPInboundTrunkInfo(sip_trunk_id="ST_1", auth_username="agent",
                                                         auth_password="secret")
        livekit.dispatch_rules["SDR_1"] = sip.SIPDispatchRuleInfo(
            sip_dispatch_rule_id="SDR_1", trunk_ids=["ST_1"],
            rule=sip.SIPDispatchRule(dispatch_rule_callee=sip.SIPDispatchRuleCallee(room_prefix="call")))
        network.sip_endpoints["sip.test"] = livekit
        call = network.incoming_call(CALLER, NUMBER).press("1")  # <Dial timeout="20"> into an empty room
        assert set(livekit.participants["call_room-1"]) == {f"sip_{CALLER}"}
        assert not call.bridged
        call.press_star()  # nobody to hang up on yet: ignored
        assert call.ignored_keys == ["*"] and call.waiting_on.tag == "Dial"
        call.wait(24)
        assert call.waiting_on.tag == "Dial"
        call.wait(1)  # 20 s + Twilio's five-second buffer
        done = forms(received, "/dial-done")[0]
        assert (done["DialCallStatus"], done["DialSipResponseCode"], done["DialBridged"]) == ("no-answer", "487", "false")
        assert livekit.participants["call_room-1"] == {}


def test_calls_create_waits_its_turn_at_one_call_per_second(network):
    form = {"To": "sip:a@x.test", "From": NUMBER, "Url": BASE + "/agent"}
    _, first = network.rest_create_call(form)
    _, second = network.rest_create_call(form)
    assert (first["queue_time"], second["queue_time"]) == ("0", "1000")
    later = network.call(second["sid"])
    network.answer(later.sid)  # picking up means it rang: Twilio placed it a second later
    assert (later.answered_at - network.call(first["sid"]).created_at).total_seconds() == 1.0


def test_callbacks_fired_together_arrive_in_a_seeded_order(toy):
    import random

    orders = []
    for seed in (1, 1, 2, 3, 4):
        seen = []
        network = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, flask_client_transport(toy.test_client(), BASE))
        network.shuffle = random.Random(seed)
        for name in "abcdef":
            network.in_turn(lambda name=name: seen.append(name))
        network.run_pending()
        orders.append("".join(seen))
    assert orders[0] == orders[1]  # the same seed, the same order
    assert sorted(orders[0]) == list("abcdef") and len(set(orders)) > 1


def test_a_webhook_slower_than_twilios_limit_goes_to_the_fallback(toy, received):
    import time

    @toy.post("/slow")
    def slow():
        time.sleep(0.3)
        return Response("<Response><Say>Too late.</Say></Response>", mimetype="text/xml")

    @toy.post("/fallback")
    def fallback():
        received.append({"path": "/fallback", "form": request.form.to_dict()})
        return Response("<Response><Say>Fallback here.</Say><Hangup/></Response>", mimetype="text/xml")

    network = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, flask_client_transport(toy.test_client(), BASE))
    network.webhook_timeout = 0.2  # Twilio's is 15 s; the rule is the same
    network.add_number(NUMBER, voice_url=BASE + "/slow", voice_fallback_url=BASE + "/fallback")
    call = network.incoming_call(CALLER, NUMBER)
    assert call.heard == ["Fallback here."]
    [fallback_form] = [r["form"] for r in received if r["path"] == "/fallback"]
    assert fallback_form["ErrorCode"] == "11205" and fallback_form["ErrorUrl"] == BASE + "/slow"


def test_a_play_lasts_as_long_as_its_audio(toy):
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1), clip.setsampwidth(2), clip.setframerate(8000)
        clip.writeframes(b"\0\0" * 8000 * 4)  # four seconds

    @toy.post("/music")
    def music():
        return Response(f"<Response><Play>{BASE}/clip.wav</Play><Say>After the music.</Say></Response>",
                        mimetype="text/xml")

    network = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, flask_client_transport(toy.test_client(), BASE),
                            media_fetcher=lambda url: buffer.getvalue() if url.endswith("clip.wav") else None)
    call = network.incoming_call(CALLER, NUMBER, voice_url=BASE + "/music")
    call.wait(3.9)
    assert call.waiting_on.tag == "Play"
    call.wait(0.1)
    assert call.heard[-1] == "After the music."


def test_calls_list_pages_through_the_calls_of_one_status_newest_first(network):
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    calls = [network.incoming_call(CALLER, NUMBER) for _ in range(3)]
    network.ring_out(network.rest_create_call({"To": "sip:agent@sip.test", "From": NUMBER,
                                               "Url": BASE + "/agent"})[1]["sid"], "busy")
    status, first = network.handle_rest("GET", path, query={"Status": "in-progress", "PageSize": "2"}, auth=auth)

    assert status == 200 and [c["sid"] for c in first["calls"]] == [calls[2].sid, calls[1].sid]
    assert (first["page"], first["page_size"], first["start"], first["end"]) == (0, 2, 0, 1)
    assert first["previous_page_uri"] is None and first["uri"] == first["first_page_uri"]
    next_uri = urlsplit(first["next_page_uri"])
    assert next_uri.path == path
    status, second = network.handle_rest("GET", next_uri.path, query=parse_qsl(next_uri.query), auth=auth)
    assert [c["sid"] for c in second["calls"]] == [calls[0].sid]
    assert (second["page"], second["start"], second["end"], second["next_page_uri"]) == (1, 2, 2, None)
    previous = urlsplit(second["previous_page_uri"])
    back = network.handle_rest("GET", previous.path, query=parse_qsl(previous.query), auth=auth)[1]
    assert [c["sid"] for c in back["calls"]] == [calls[2].sid, calls[1].sid]
    busy = network.handle_rest("GET", path, query={"Status": "busy"}, auth=auth)[1]
    assert [c["status"] for c in busy["calls"]] == ["busy"]
    assert network.handle_rest("GET", path, query={"PageSize": "1001"}, auth=auth)[1]["code"] == 20007
