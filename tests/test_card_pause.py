"""The caller's transcription stops while a card number is read, and starts again: whole calls on the sandbox."""

import pytest
from sqlalchemy import select

from app.auth.service import create_user
from app.calls.card_pause import card_reason
from app.gateways.twilio import TwilioError
from app.jobs.setup import reconciler_of
from app.models import Call, Event, Utterance
from app.sandbox import scenarios
from app.sandbox.scenarios import BOB

PASSWORD = "a-long-test-password-1"
CARD_DIGITS = ("4111", "2222", "3333", "4444", "four one one one")


def connected(centre, conversation=()):
    return scenarios.connected_call(centre.network, centre.number, conversation=conversation)


def transcription_requests(centre, caller):
    prefix = f"/Calls/{caller.sid}/Transcriptions"
    return [r for r in centre.network.rest_log if r.method == "POST" and prefix in r.path]


def events(centre, caller, name):
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
        return [e.detail for e in session.scalars(select(Event).where(Event.call_id == call.id, Event.name == name))]


def live_sid(centre, caller) -> str:
    """The SID of the caller's first transcription (the greeting's), as Twilio knows it."""
    return centre.network.call(caller.sid).transcriptions[0]["sid"]


def stored_words(centre):
    with centre.db() as session:
        return [(u.speaker, u.text) for u in session.scalars(select(Utterance).order_by(Utterance.id))]


def assert_no_card_digits(text):
    for digits in CARD_DIGITS:
        assert digits not in text


def test_a_caller_reading_a_card_stops_their_transcription(centre, llm):
    caller, alice = connected(centre, (
        ("caller", "I was charged twice this month"),
        ("caller", "ok my card is 4111 2222"),
    ))
    # Twilio is asked to stop the caller's transcription by its SID (its transcription-started callback's).
    (stop,) = transcription_requests(centre, caller)
    assert stop.path.endswith(f"/Calls/{caller.sid}/Transcriptions/{live_sid(centre, caller)}.json")
    assert stop.form["Status"] == "stopped"
    (live,) = centre.network.call(caller.sid).transcriptions
    assert live["active"] is False

    # The rest of the number is spoken, and no callback carries it.
    caller.transcribe("3333 4444", track="inbound_track")
    assert live["unheard"] == ["3333 4444"]
    alice.transcribe("thank you, I see the duplicate charge", track="inbound_track")

    assert stored_words(centre) == [
        ("caller", "I was charged twice this month"),
        ("caller", "ok my card is [card number removed]"),
        ("agent", "thank you, I see the duplicate charge"),
    ]
    (paused,) = events(centre, caller, "transcription_paused")
    assert paused["reason"] == "card_digits" and paused["resume_at"]
    assert paused["transcription"] == live_sid(centre, caller) and paused["stopped_by"] == "sid"
    assert_no_card_digits(str(paused))
    deliveries = [d for d in centre.network.deliveries if d.kind == "transcription"]
    assert "transcription-stopped" in [d.params["TranscriptionEvent"] for d in deliveries]

    # Neither the summary's LLM request, the target's whisper nor the supervisor's page holds any of it.
    alice.press_star()
    alice.press("2102#")
    bob = centre.network.call(centre.network.last_call(to=BOB).sid)
    centre.network.answer(bob.sid)
    scenarios.hears_summary(centre.network, bob)
    assert llm.requests, "the summary was asked of the LLM"
    for request in llm.requests:
        assert_no_card_digits(request.raw_body)
    assert "duplicate charge" in bob.heard_text
    assert_no_card_digits(bob.heard_text)
    with centre.db() as session:
        create_user(session, "sam", PASSWORD, "supervisor")
    page = _signed_in(centre, "sam").get(f"/calls/{caller.sid}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "[card number removed]" in html
    assert_no_card_digits(html)


def test_an_agent_asking_for_the_card_stops_it_before_any_digit(centre):
    caller, _alice = connected(centre, (("agent", "could I take the long number on the front of your card"),))
    (stop,) = transcription_requests(centre, caller)
    assert stop.form["Status"] == "stopped"
    caller.transcribe("four one one one two two two two", track="inbound_track")
    assert stored_words(centre) == [("agent", "could I take the long number on the front of your card")]
    assert [e["reason"] for e in events(centre, caller, "transcription_paused")] == ["card_number_named"]


def test_the_reconciler_pass_starts_it_again_once_the_pause_is_over(centre):
    caller, _alice = connected(centre, (("caller", "it's 4111 2222 3333 4444"),))
    caller.wait(30)
    reconciler_of(centre.app).run_once()
    assert len(transcription_requests(centre, caller)) == 1  # not due yet: still stopped

    caller.wait(31)
    reconciler_of(centre.app).run_once()
    _stop, start = transcription_requests(centre, caller)
    assert start.path.endswith(f"/Calls/{caller.sid}/Transcriptions.json")
    # The same parameters as the greeting's <Transcription>.
    assert start.form["Name"].startswith("caller-") and start.form["Track"] == "inbound_track"
    callback = f"https://switchboard.example.com/twilio/transcription?call={_call_id(centre, caller)}"
    assert start.form["StatusCallbackUrl"] == callback
    assert start.form["LanguageCode"] == "en-US" and start.form["InboundTrackLabel"] == "caller"
    assert [t["active"] for t in centre.network.call(caller.sid).transcriptions] == [False, True]

    caller.transcribe("and it was the 49 dollar charge", track="inbound_track")
    assert stored_words(centre)[-1] == ("caller", "and it was the 49 dollar charge")
    (resumed,) = events(centre, caller, "transcription_resumed")
    assert resumed["transcription"].startswith("caller-")  # a fresh name: a name used twice is undocumented
    # A second pass finds nothing due: one transcription, started once.
    reconciler_of(centre.app).run_once()
    assert len(transcription_requests(centre, caller)) == 2


def test_a_start_twilio_fails_is_tried_again_at_the_next_pass(centre):
    caller, _alice = connected(centre, (("caller", "it's 4111 2222"),))
    caller.wait(61)
    centre.network.fail_next(f"Calls/{caller.sid}/Transcriptions.json", status=503, code=20503)
    reconciler_of(centre.app).run_once()
    (failed,) = events(centre, caller, "transcription_resume_failed")
    assert failed["will_retry"] is True and "20503" in failed["error"]
    reconciler_of(centre.app).run_once()
    (resumed,) = events(centre, caller, "transcription_resumed")
    assert resumed["transcription"].startswith("caller-")  # a fresh name: a name used twice is undocumented
    assert [t["active"] for t in centre.network.call(caller.sid).transcriptions] == [False, True]


def test_a_call_that_ended_while_paused_is_not_started_again(centre):
    caller, _alice = connected(centre, (("caller", "it's 4111 2222"),))
    caller.hangup()
    caller.wait(61)
    reconciler_of(centre.app).run_once()
    assert len(transcription_requests(centre, caller)) == 1
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
        assert (call.transcription_paused_at, call.transcription_resume_at) == (None, None)


def test_an_agents_words_after_the_due_time_start_it_again(centre):
    caller, alice = connected(centre, (("caller", "my card is 5500 0000"),))
    caller.wait(61)
    alice.transcribe("thanks, that went through", track="inbound_track")
    assert [r.path.rsplit("/", 1)[-1] for r in transcription_requests(centre, caller)] == [
        f"{live_sid(centre, caller)}.json", "Transcriptions.json"]
    caller.transcribe("great, thank you", track="inbound_track")
    assert stored_words(centre)[-1] == ("caller", "great, thank you")


def test_a_card_still_being_read_keeps_it_stopped_longer(centre):
    caller, alice = connected(centre, (("caller", "the card is 4111 2222"),))
    caller.wait(50)
    alice.transcribe("and the card number's last group please", track="inbound_track")
    caller.wait(20)
    reconciler_of(centre.app).run_once()
    assert len(transcription_requests(centre, caller)) == 1  # 70 s after the first stop, 20 s after the last ask
    caller.wait(41)
    reconciler_of(centre.app).run_once()
    assert len(transcription_requests(centre, caller)) == 2


def test_a_pause_twilio_refuses_is_a_named_fallback_and_the_redactor_still_works(centre):
    caller, _alice = connected(centre, (("caller", "I was charged twice"),))
    centre.network.fail_next(f"Calls/{caller.sid}/Transcriptions/{live_sid(centre, caller)}.json", status=404,
                             code=20404,
                             message="The requested resource was not found")
    caller.transcribe("my card is 4111 2222", track="inbound_track")
    caller.transcribe("3333 4444", track="inbound_track")  # still transcribed: the stop was refused

    (failed,) = events(centre, caller, "transcription_pause_failed")
    assert failed["reason"] == "card_digits" and failed["fallback"] == "redaction" and "20404" in failed["error"]
    assert_no_card_digits(str(failed))
    # The refused stop is forgotten; the next digits asked again, and that stop was applied.
    assert len(transcription_requests(centre, caller)) == 2
    assert [e["reason"] for e in events(centre, caller, "transcription_paused")] == ["card_digits"]
    # Both halves were redacted as one number read in two breaths.
    assert stored_words(centre)[-2:] == [("caller", "my card is [card number removed]"),
                                         ("caller", "[card number removed]")]


def test_a_stop_twilio_fails_twice_leaves_the_transcript_to_the_redactor(centre):
    caller, _alice = connected(centre, ())
    for _ in range(2):  # a 5xx is tried once more (stopping twice is harmless), then given up
        centre.network.fail_next(f"Calls/{caller.sid}/Transcriptions/{live_sid(centre, caller)}.json", status=500,
                                 code=20500)
    caller.transcribe("my card is 4111 2222 3333 4444", track="inbound_track")
    assert len(transcription_requests(centre, caller)) == 2
    caller.transcribe("and the expiry is next year", track="inbound_track")
    assert [e["fallback"] for e in events(centre, caller, "transcription_pause_failed")] == ["redaction"]
    assert events(centre, caller, "transcription_paused") == []
    assert stored_words(centre) == [("caller", "my card is [card number removed]"),
                                    ("caller", "and the expiry is next year")]
    assert centre.network.call(caller.sid).transcriptions[0]["active"] is True


@pytest.mark.parametrize("words", [
    "my order number is 123",
    "it was 49 dollars twice",
    "they charged me $1,249.99",
    "I have been a customer since 2019",
    "I paid on 12/03/2024",
    "call me back on +44 7700 900123",
    "ring 07700 900123 after six",
    "I was charged twice on my card",
])
def test_ordinary_numbers_pause_nothing(centre, words):
    caller, _alice = connected(centre, (("caller", words),))
    assert transcription_requests(centre, caller) == []
    assert events(centre, caller, "transcription_paused") == []
    assert stored_words(centre) == [("caller", words)]
    assert centre.network.call(caller.sid).transcriptions[0]["active"] is True


def test_a_pause_of_zero_seconds_never_stops_it_and_the_redactor_still_removes_the_card(centre):
    from dataclasses import replace

    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], transcription_card_pause_seconds=0)
    caller, _alice = connected(centre, (("caller", "my card is 4111 1111 1111 1111"),))
    assert transcription_requests(centre, caller) == []
    assert events(centre, caller, "transcription_paused") == []
    assert stored_words(centre) == [("caller", "my card is [card number removed]")]


@pytest.mark.parametrize(("speaker", "words", "reason"), [
    ("caller", "it's 4111", "card_digits"),
    ("caller", "four one one one", "card_digits"),
    ("caller", "forty one eleven", "card_digits"),
    ("caller", "5500-0000", "card_digits"),
    ("agent", "what is the card number please", "card_number_named"),
    ("agent", "read me the sixteen digit number", "card_number_named"),
    ("caller", "my card details are", "card_number_named"),
    ("agent", "your order 4111 is on its way", None),  # an agent's digits never pause: only the caller's card
    ("caller", "order 123", None),
    ("caller", "one moment, I have two kids", None),
])
def test_what_counts_as_a_card_being_read(speaker, words, reason):
    assert card_reason(speaker, words) == reason


def test_sandbox_transcriptions_resource_errors(centre):
    caller, _alice = connected(centre, ())
    rest = centre.network
    status, body = rest.handle_rest("POST", rest._path(f"Calls/{caller.sid}/Transcriptions/nobody.json"),
                                    form={"Status": "stopped"}, auth=rest._auth)
    assert (status, body["code"]) == (404, 20404)
    status, body = rest.handle_rest("POST", rest._path("Calls/CA" + "0" * 32 + "/Transcriptions.json"),
                                    form={"Name": "caller"}, auth=rest._auth)
    assert (status, body["code"]) == (404, 20404)
    status, body = rest.handle_rest("POST", rest._path(f"Calls/{caller.sid}/Transcriptions.json"),
                                    form={"Name": "caller", "Track": "inbound_track"}, auth=rest._auth)
    assert status == 400  # the greeting's "caller" transcription is still live
    sid = caller.transcriptions[0]["sid"]
    status, body = rest.handle_rest("POST", rest._path(f"Calls/{caller.sid}/Transcriptions/{sid}.json"),
                                    form={"Status": "stopped"}, auth=rest._auth)
    assert (status, body["status"], body["name"]) == (200, "stopped", "caller")
    caller.hangup()
    status, body = rest.handle_rest("POST", rest._path(f"Calls/{caller.sid}/Transcriptions.json"),
                                    form={"Name": "caller"}, auth=rest._auth)
    assert (status, body["code"]) == (400, 21220)


def test_the_gateway_speaks_the_transcriptions_resource(centre):
    caller, _alice = connected(centre, ())
    twilio = centre.app.extensions["gateways"].twilio
    twilio.stop_transcription(caller.sid, "caller")
    sid = twilio.start_transcription(caller.sid, name="caller", status_callback_url="https://example.com/t",
                                     language_code="en-GB", inbound_track_label="caller")
    assert sid.startswith("GT") and caller.transcriptions[-1]["language"] == "en-GB"
    with pytest.raises(TwilioError) as refused:
        twilio.stop_transcription(caller.sid, "nobody")
    assert (refused.value.status, refused.value.code) == (404, 20404)


def _call_id(centre, caller):
    with centre.db() as session:
        return session.scalar(select(Call.id).where(Call.call_sid == caller.sid))


def _signed_in(centre, username):
    import re

    client = centre.app.test_client()
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return client


def test_two_pauses_in_one_call_each_stop_the_live_transcription_by_its_sid(centre):
    caller, alice = connected(centre, (("caller", "my card is 4111 2222"),))
    caller.wait(61)
    alice.transcribe("thanks, that went through", track="inbound_track")  # due: started again, a fresh name
    first, second = centre.network.call(caller.sid).transcriptions
    assert second["name"].startswith("caller-") and second["active"] and not first["active"]
    caller.transcribe("and my other card is 5500 0000", track="inbound_track")
    stops = [r.path.rsplit("/", 1)[-1] for r in transcription_requests(centre, caller) if r.form.get("Status")]
    # Each stop named the transcription live at the time by the SID Twilio gave it.
    assert stops == [f"{first['sid']}.json", f"{second['sid']}.json"]
    assert not second["active"]
    assert [e["stopped_by"] for e in events(centre, caller, "transcription_paused")] == ["sid", "sid"]
