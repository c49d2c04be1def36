from dataclasses import replace

"""Whole inbound calls, driven through the service's real webhooks by the Twilio simulator."""

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from app.models import Agent, Call, Leg, Utterance
from app.primitives.legs import UNCONFIRMED_DIAL_AFTER
from app.sandbox.twilio_network import TwimlError
from app.telephony.urls import WebhookUrls
from tests.transfer_helpers import turn_at_or_past

ALICE = "sip:alice@switchboard-demo.sip.twilio.com"
BOB = "sip:bob@switchboard-demo.sip.twilio.com"
CARMEN = "sip:carmen@switchboard-demo.sip.twilio.com"


def agent_state(centre, extension):
    with centre.db() as session:
        agent = session.scalar(select(Agent).where(Agent.extension == extension))
        return agent.presence, agent.activity, agent.missed_in_row


def call_row(centre, sid):
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == sid))
        session.expunge(call)
        return call


def test_billing_caller_reaches_the_billing_agent(centre):
    caller = centre.dial("+15551230001")
    assert "tell us why you are calling" in caller.heard_text
    assert "press 1 for billing, press 2 for technical" in caller.heard_text
    assert caller.waiting_on.tag == "Gather"
    caller.speak("I was charged twice on my bill")
    assert "Connecting you to billing" in caller.heard_text
    assert caller.waiting_on.tag == "Play"

    # The longest-idle billing agent's softphone rings, via REST with a ring timeout.
    create = [r for r in centre.network.rest_log if r.method == "POST" and r.path.endswith("/Calls.json")]
    assert len(create) == 1
    assert create[0].form["To"] == ALICE
    assert create[0].form["From"] == centre.number
    assert create[0].form["Timeout"] == "20"
    assert create[0].form["StatusCallback"].startswith("https://switchboard.example.com/twilio/agent/status?leg=")
    assert agent_state(centre, "101")[1] == "ringing"

    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    assert "Call from 1 5 5 5 1 2 3 0 0 0 1, for billing" in alice.heard_text
    assert "I was charged twice on my bill" in alice.heard_text
    alice.press("1")

    # Both legs are in the call's LiveKit room over SIP with the trunk's credentials.
    call = call_row(centre, caller.sid)
    assert call.status == "connected" and call.room_name == f"call_{call.id}"
    for leg in (alice, caller):
        sip = leg.dialed[0]
        assert sip.kind == "Sip"
        assert sip.target == f"sip:{call.id}@switchboard-test.sip.livekit.cloud;transport=tcp"
        assert sip.username == "switchboard" and sip.password == "sip-trunk-password-123"
    assert centre.network.call(alice.sid).waiting_on.get("hangupOnStar") == "true"
    assert [r.body["name"] for r in centre.livekit.requests if r.method == "CreateRoom"] == [call.room_name]
    assert agent_state(centre, "101") == ("available", "on_call", 0)

    # The caller hangs up: the agent's leg and the room are closed, the agent is free.
    caller.hangup()
    assert not alice.live
    assert "DeleteRoom" in [r.method for r in centre.livekit.requests]
    assert call_row(centre, caller.sid).status == "completed"
    assert agent_state(centre, "101") == ("available", "idle", 0)
    assert centre.timeline(caller.sid) == [
        "call_received",
        "ivr_completed",
        "call_queued",
        "agent_ringing",
        "agent_answered",
        "agent_accepted",
        "call_ended",
        "agent_free_after_leg_over",  # Twilio's completed callback for Alice's leg
    ]


def test_technical_caller_by_dtmf_reaches_a_technical_agent(centre):
    caller = centre.dial()
    caller.press("2")
    assert "Connecting you to technical" in caller.heard_text
    ringing = centre.ringing()
    assert [leg.to for leg in ringing] == [BOB]


def test_first_agent_does_not_answer_the_second_does(centre):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.ring_out(alice.sid, "no-answer")
    bob = centre.agent_phone(BOB)
    assert bob.status in ("queued", "ringing")
    centre.network.answer(bob.sid)
    bob.press("1")
    assert call_row(centre, caller.sid).status == "connected"
    assert agent_state(centre, "101") == ("available", "idle", 1)
    assert "agent_missed" in centre.timeline(caller.sid)


def test_agent_declines_in_the_whisper_and_the_next_agent_is_rung(centre):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("2")
    assert "Call declined" in alice.heard_text and not alice.live
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("1")
    assert call_row(centre, caller.sid).status == "connected"
    # A deliberate decline is not a missed call.
    assert agent_state(centre, "101") == ("available", "idle", 0)


def test_an_agent_who_misses_calls_in_a_row_is_set_away(centre):
    for number in ("+15551230011", "+15551230012", "+15551230013"):
        caller = centre.dial(number)
        caller.press("1")
        centre.network.ring_out(centre.agent_phone(ALICE).sid, "no-answer")
        caller.hangup()
    assert agent_state(centre, "101") == ("away", "idle", 3)


def test_the_hold_clip_is_served_for_twilio_to_keep(centre):
    url = WebhookUrls(centre.public_base_url).hold_music()
    with centre.client.get(url.removeprefix(centre.public_base_url)) as response:
        assert response.status_code == 200 and response.mimetype in ("audio/wav", "audio/x-wav")
        assert "max-age=31536000" in response.headers["Cache-Control"]
    # The URL carries the clip's hash, so a new clip is a new URL: no copy has to expire early.
    assert "?v=" in url


def test_a_hold_turn_answers_before_it_rings_the_next_agent(centre):
    with centre.db() as session:  # everyone busy
        for agent in session.scalars(select(Agent)):
            agent.activity = "on_call"
    caller = centre.dial()
    caller.press("1")
    assert centre.ringing() == []
    with centre.db() as session:  # Alice is free again, and no step of the service's noticed
        session.scalar(select(Agent).where(Agent.extension == "101")).activity = "idle"
    caller.music_ends()  # the hold turn offers the call to Alice
    turn = [d for d in centre.network.deliveries if "/twilio/caller/wait" in d.url][-1]
    dials = [i for i, r in enumerate(centre.network.rest_log)
             if r.method == "POST" and r.path.endswith("/Calls.json") and r.form.get("To") == ALICE]
    assert len(dials) == 1 and turn.rest_before_answer is not None
    # Twilio had the turn's TwiML (more music) before the service asked it to ring Alice.
    assert dials[0] >= turn.rest_before_answer and caller.waiting_on.tag == "Play"
    assert centre.network.last_call(to=ALICE).live


def test_all_agents_busy_music_then_voicemail(centre):
    with centre.db() as session:
        for agent in session.scalars(select(Agent)):
            agent.presence = "away"
    caller = centre.dial()
    caller.press("1")
    assert caller.played == [WebhookUrls(centre.public_base_url).hold_music()]
    assert centre.ringing() == []
    with centre.db() as session:  # time passes in the queue
        call = session.scalar(select(Call))
        call.queued_at = call.queued_at.replace(year=call.queued_at.year - 1)
    caller.music_ends()
    assert "To leave a message, press 1" in caller.heard_text
    caller.press("1")
    assert caller.waiting_on.tag == "Record"
    caller.recording_done("https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE123")
    assert "we have your message" in caller.heard_text and not caller.live
    call = call_row(centre, caller.sid)
    assert call.status == "voicemail"
    assert call.voicemail_url.endswith("/Recordings/RE123")
    assert centre.timeline(caller.sid)[-3:] == ["voicemail_started", "voicemail_recorded", "call_ended"]


def test_waiting_caller_is_rung_through_when_an_agent_becomes_free(centre):
    with centre.db() as session:
        for agent in session.scalars(select(Agent)):
            agent.presence = "away"
    caller = centre.dial()
    caller.press("1")
    assert centre.ringing() == []
    centre.app.test_cli_runner().invoke(args=["agents", "presence", "102", "available"])
    # Made available, Bob is offered the waiting caller at once, not at the caller's next hold turn.
    centre.network.run_pending()  # Twilio places the call the offer asked for
    assert [leg.to for leg in centre.ringing()] == [BOB]
    assert caller.waiting_on.tag == "Play"


def test_caller_hangs_up_while_an_agent_is_ringing(centre):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    caller.hangup()
    assert alice.status == "canceled"
    assert call_row(centre, caller.sid).status == "abandoned"
    assert agent_state(centre, "101") == ("available", "idle", 0)
    # A late answer by the agent hears that the caller is gone.
    with centre.db() as session:
        leg = session.scalar(select(Leg).where(Leg.twilio_call_sid == alice.sid))
        assert leg.status == "canceled"


def test_agent_hangs_up_and_the_caller_is_thanked(centre):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    alice.hangup()
    assert "The agent has ended the call" in caller.heard_text
    assert not caller.live
    assert call_row(centre, caller.sid).status == "completed"
    assert agent_state(centre, "101")[1] == "idle"


def test_ivr_asks_again_then_uses_the_default_queue(centre):
    caller = centre.dial()
    caller.speak("mumble mumble")
    assert "Sorry, I didn't catch that" in caller.heard_text
    caller.silence()
    call = call_row(centre, caller.sid)
    assert call.status == "ringing_agent"
    with centre.db() as session:
        assert session.get(Call, call.id).queue.name == "billing"
    assert "ivr_not_understood" in centre.timeline(caller.sid)


def test_transcription_is_kept_as_redacted_utterances(centre):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    caller.transcribe("my card is 4111 1111 1111 1111 and it was charged twice", track="inbound_track")
    alice.transcribe("let me look into that", track="inbound_track")  # the agent's own leg
    with centre.db() as session:
        rows = [(u.speaker, u.text) for u in session.scalars(select(Utterance).order_by(Utterance.id))]
    assert rows == [
        ("caller", "my card is [card number removed] and it was charged twice"),
        ("agent", "let me look into that"),
    ]


def test_our_own_prompts_never_reach_the_transcript(centre):
    # Twilio's outbound track is what the caller hears, every <Say> of ours
    # included (the simulator transcribes it): only inbound tracks are asked for.
    caller = centre.dial()
    caller.press("1")
    caller.music_ends()
    assert "Thanks for calling" in caller.heard_text and "Please hold" in caller.heard_text
    with centre.db() as session:
        assert session.scalars(select(Utterance)).all() == []
    with pytest.raises(TwimlError, match="outbound_track"):
        caller.transcribe("anything the caller hears", track="outbound_track")


def test_caller_words_that_look_like_twiml_are_escaped(centre):
    caller = centre.dial()
    caller.speak('billing </Say><Hangup/><Say> & "more"')
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    whisper = alice.twiml_log[-1]
    root = ET.fromstring(whisper)
    assert root.find(".//Hangup") is None
    assert '</Say><Hangup/><Say> & "more"' in root.find(".//Say").text
    assert "&lt;/Say&gt;&lt;Hangup/&gt;" in whisper


def test_waiting_caller_can_ask_for_a_callback(centre):
    # Offered only to a number outbound calls may dial (tests/test_callbacks.py has the callback itself).
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], outbound_call_allow=("+1555",))
    with centre.db() as session:
        for agent in session.scalars(select(Agent)):
            agent.presence = "away"
    caller = centre.dial("+15551239876")
    caller.press("2")
    with centre.db() as session:
        call = session.scalar(select(Call))
        call.queued_at = call.queued_at.replace(year=call.queued_at.year - 1)
    caller.music_ends()
    caller.press("2")
    assert "We will call you back" in caller.heard_text and not caller.live
    call = call_row(centre, caller.sid)
    assert call.status == "callback_requested" and call.from_number == "+15551239876"
    assert "callback_requested" in centre.timeline(caller.sid)


def test_livekit_failing_to_create_the_room_falls_back_to_the_dispatch_rule(centre):
    centre.livekit.fail_next("CreateRoom", "unavailable", 503)
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    assert call_row(centre, caller.sid).status == "connected"
    assert "room_create_failed_fallback_dispatch_rule" in centre.timeline(caller.sid)


def _age_agent_legs(centre, seconds):
    from datetime import timedelta

    with centre.db() as session:
        for leg in session.scalars(select(Leg).where(Leg.ended_at.is_not(None))):
            leg.ended_at = leg.ended_at - timedelta(seconds=seconds)


def test_agents_who_let_a_call_go_are_offered_it_again_after_a_while(centre):
    caller = centre.dial()
    caller.press("1")
    centre.network.ring_out(centre.agent_phone(ALICE).sid, "no-answer")
    centre.network.ring_out(centre.agent_phone(BOB).sid, "no-answer")
    assert centre.ringing() == [] and caller.waiting_on.tag == "Play"
    caller.music_ends()
    assert centre.ringing() == []  # both let it go seconds ago: nobody is rung again at once
    _age_agent_legs(centre, 31)
    caller.music_ends()
    assert [leg.to for leg in centre.ringing()] == [ALICE]


def test_an_agent_freed_by_another_call_takes_the_waiting_caller_at_once(centre):
    with centre.db() as session:
        for agent in session.scalars(select(Agent).where(Agent.extension != "101")):
            agent.presence = "away"
    first = centre.dial("+15551230001")
    first.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    second = centre.dial("+15551230002")
    second.press("1")
    assert centre.ringing() == []
    first.hangup()
    # No hold-music turn needed: the webhook that freed Alice offered her the waiting call.
    assert [leg.to for leg in centre.ringing()] == [ALICE]
    assert centre.agent_phone(ALICE).sid != alice.sid


def test_twilio_failing_to_move_the_caller_leaves_it_to_the_hold_loop(centre):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    for _ in range(2):  # the redirect and its retry
        centre.network.fail_next(f"Calls/{caller.sid}.json", status=503, code=20503, message="Service Unavailable")
    alice.press("1")
    assert "the caller hung up" not in alice.heard_text.lower()
    assert alice.waiting_on.tag == "Dial"
    assert "caller_connect_left_to_hold_loop" in centre.timeline(caller.sid)
    caller.music_ends()  # the next turn of the hold loop finds the call connected
    assert caller.waiting_on.tag == "Dial" and caller.dialed[0].target.startswith("sip:1@")


def test_a_failing_twilio_api_costs_a_webhook_at_most_two_dials(centre):
    caller = centre.dial()
    for _ in range(2):  # refused: Twilio placed nothing, so the next agent is dialled
        centre.network.fail_next("Calls.json", status=400, code=21210, message="Caller phone number not verified")
    caller.press("1")
    assert centre.timeline(caller.sid).count("agent_dial_failed") == 2
    assert centre.ringing() == [] and caller.waiting_on.tag == "Play"
    _age_agent_legs(centre, 31)
    caller.music_ends()
    assert len(centre.ringing()) == 1


def test_a_dial_whose_answer_was_lost_is_not_failed_but_adopted_by_its_first_webhook(centre):
    caller = centre.dial()
    # Twilio placed the call to Alice; its answer to calls.create never arrived.
    centre.network.fail_next("Calls.json", status=502, code=20500, message="Bad Gateway", applied=True)
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    assert "leg_dial_unconfirmed" in centre.timeline(caller.sid) and alice.live
    centre.network.answer(alice.sid)
    alice.press("1")
    assert call_row(centre, caller.sid).status == "connected"
    with centre.db() as session:
        assert session.scalar(select(Leg.twilio_call_sid).where(Leg.role == "agent")) == alice.sid


def test_a_dial_twilio_never_confirms_is_given_up_and_the_next_agent_rung(centre):
    caller = centre.dial()
    centre.network.fail_next("Calls.json", status=503, code=20503, message="Service Unavailable")  # not placed
    caller.press("1")
    assert centre.ringing() == [] and call_row(centre, caller.sid).status == "ringing_agent"
    # The caller's first hold turn at or past UNCONFIRMED_DIAL_AFTER gives the dial up.
    centre.network.advance(turn_at_or_past(UNCONFIRMED_DIAL_AFTER.total_seconds()) + 1)
    assert [call.to for call in centre.ringing()] == [BOB]
    assert "agent_dial_failed" in centre.timeline(caller.sid)
    assert agent_state(centre, "101") == ("available", "idle", 0)  # a lost dial is not Alice's miss


def test_a_step_reads_its_leg_after_taking_the_call_lock(centre):
    """A step that waited for another step of the same call sees what that step left, not a stale copy."""
    from app.primitives.legs import lock_leg
    from app.web.unit_of_work import telephony

    caller = centre.dial()
    caller.press("1")
    with centre.db() as session:
        leg_id = session.scalar(select(Leg.id).where(Leg.role == "agent"))
    with centre.app.test_request_context():
        t = telephony()
        stale = t.session.get(Leg, leg_id)
        assert stale.status == "dialing"
        t.session.commit()
        with centre.db() as other:  # meanwhile, another worker's step finished
            other.get(Leg, leg_id).status = "connected"
        assert lock_leg(t, leg_id).status == "connected"
        t.session.rollback()


@pytest.mark.parametrize(("setting", "queue_pressed", "transcribed"), [
    (("off",), "1", False),
    (("technical",), "1", False),
    (("technical",), "2", True),
])
def test_the_transcription_setting_decides_which_calls_are_transcribed(make_app, centre_settings, livekit, llm,
                                                                       setting, queue_pressed, transcribed):
    import responses

    from app.sandbox.call_centre import CallCentre
    from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

    app = make_app(centre_settings, transcription=setting)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        centre = CallCentre(app, PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, livekit=livekit, llm=llm)
        centre.network.install(rsps)
        centre.load_roster()
        try:
            caller = centre.dial()
            caller.press(queue_pressed)
            assert bool(caller.transcriptions) is transcribed
            agent = centre.network.last_call(to=BOB if queue_pressed == "2" else ALICE)
            centre.network.answer(agent.sid)
            assert bool(agent.transcriptions) is transcribed  # an agent's words follow the call's setting
        finally:
            centre.close()


@pytest.mark.parametrize("status, counts", [("busy", 0), ("failed", 0), ("no-answer", 1)])
def test_only_a_call_left_to_ring_out_counts_as_a_miss(centre, status, counts):
    caller = centre.dial()
    caller.press("1")
    centre.network.ring_out(centre.agent_phone(ALICE).sid, status)
    assert agent_state(centre, "101") == ("available", "idle", counts)  # a busy softphone is not a miss
    assert centre.agent_phone(BOB).live  # the next agent rings either way
