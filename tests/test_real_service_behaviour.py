"""Whole calls on stand-ins that behave as Twilio and LiveKit do, where kinder stand-ins once hid defects.

Each test names the behaviour of the real service it depends on; the
stand-ins cite their sources (docs/stand-ins.md). Every agent leg is placed
from the company number, as in production.
"""

from sqlalchemy import select

from app.models import Event, Queue, Transfer
from app.telephony.urls import WebhookUrls
from tests.transfer_helpers import (
    ALICE,
    BOB,
    HOLD_TURN_SECONDS,
    accepts,
    call_row,
    connected_call,
    consulting,
    in_room,
    transfer_row,
)


def identities(centre, room):
    return set(centre.livekit.participants.get(room, {}))


def duplicate_identity_kicks(centre):
    return [w for w in centre.livekit.webhooks if "DUPLICATE_IDENTITY" in w["body"]]


def events(centre, name):
    with centre.db() as session:
        return [e.detail for e in session.scalars(select(Event).where(Event.name == name).order_by(Event.id))]


def test_agents_from_one_company_number_consult_swap_and_talk_three_way(centre):
    # LiveKit names a SIP participant sip_<From user> and replaces one whose
    # identity is already in the room: each leg dials with its own caller ID.
    caller, alice, bob = consulting(centre)
    call_id = call_row(centre, caller.sid).id
    transfer = transfer_row(centre)
    assert alice.from_ == bob.from_ == centre.number  # both agent calls come from the company number
    assert in_room(alice, f"{call_id}-consult-{transfer.id}") and in_room(bob, f"{call_id}-consult-{transfer.id}")
    assert identities(centre, transfer.consult_room) == {"sip_leg-2", "sip_leg-3"}

    alice.press_star()
    alice.press("4")  # swap: A back with the caller, B holds
    assert in_room(alice, str(call_id)) and in_room(caller, str(call_id)) and bob.waiting_on.tag == "Play"
    alice.press_star()
    alice.press("4")  # swap again: A with B, the caller holds
    assert in_room(alice, f"{call_id}-consult-{transfer.id}") and in_room(bob, f"{call_id}-consult-{transfer.id}")

    alice.press_star()
    alice.press("3")  # three-way
    room = f"call_{call_id}"
    assert all(in_room(leg, str(call_id)) for leg in (caller, alice, bob))
    assert identities(centre, room) == {"sip_leg-1", "sip_leg-2", "sip_leg-3"}
    alice.hangup()
    assert in_room(caller, str(call_id)) and in_room(bob, str(call_id))
    assert identities(centre, room) == {"sip_leg-1", "sip_leg-3"}
    assert transfer_row(centre).state == "completed" and call_row(centre, caller.sid).status == "connected"
    assert duplicate_identity_kicks(centre) == []
    assert "Transfer options" in alice.heard_text and alice.heard_text.count("Transfer options") == 3


def test_a_consult_completes_with_every_leg_answered_by_livekit(centre):
    caller, alice, bob = consulting(centre)
    call_id = call_row(centre, caller.sid).id
    alice.press_star()
    alice.press("2")
    assert not alice.live and in_room(caller, str(call_id)) and in_room(bob, str(call_id))
    assert identities(centre, f"call_{call_id}") == {"sip_leg-1", "sip_leg-3"}
    assert duplicate_identity_kicks(centre) == []


def test_a_waits_on_music_through_a_long_ring_and_whisper(centre):
    # LiveKit keeps a SIP call ringing until it can subscribe to a track;
    # Twilio's <Dial> gives up after its timeout (30 s + 5 s). A never waits
    # alone in the consult room, however long B takes.
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    bob = centre.agent_phone(BOB)
    bob.wait(24)  # B's phone rings for 24 s
    assert alice.waiting_on.tag in ("Gather", "Play") and alice.live
    centre.network.answer(bob.sid)
    bob.wait(6).press("1")  # asks for the summary
    bob.wait(7).press("9")  # hears the summary again
    bob.wait(7).press("1")
    transfer = transfer_row(centre)
    assert transfer.state == "consulting"
    assert in_room(alice, f"{call_row(centre, caller.sid).id}-consult-{transfer.id}")
    assert "Transfer options" not in alice.heard_text
    assert "Bob Okafor accepted" in alice.heard_text


def test_livekit_closing_the_room_is_not_taken_for_a_star(centre):
    # `*` and a far-end drop both reach the Dial action as DialCallStatus=completed.
    caller, alice = connected_call(centre)
    call = call_row(centre, caller.sid)
    centre.livekit.close_room(call.room_name)
    centre.network.run_pending()
    assert "Transfer menu" not in alice.heard_text and "We lost the connection" in alice.heard_text
    assert "we lost the connection. Reconnecting you now" in caller.heard_text
    with centre.db() as session:
        assert session.scalars(select(Transfer)).all() == []
    alice.music_ends()  # A's short wait, then A dials the room again
    assert in_room(caller, str(call.id)) and in_room(alice, str(call.id))
    assert call_row(centre, caller.sid).status == "connected"
    assert events(centre, "agent_bridge_dropped")


def test_a_star_still_opens_the_menu_when_the_caller_is_in_the_room(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    # The caller stays in the room until a target is keyed.
    assert "Transfer menu" in alice.heard_text and caller.waiting_on.tag == "Dial"
    alice.press("2102#")
    assert caller.waiting_on.tag == "Play"


def test_livekit_dropping_the_agents_leg_with_the_caller_present_never_holds_the_caller(centre):
    # LiveKit ends A's SIP participant itself (removed, a node stopping): its
    # participant_left, with the reason, comes before the SIP bridge's BYE,
    # so the Dial action that follows is known for a drop, not a `*`.
    caller, alice = connected_call(centre)
    call = call_row(centre, caller.sid)
    centre.livekit.drop_participant(call.room_name, "sip_leg-2", "PARTICIPANT_REMOVED")
    centre.network.run_pending()
    assert "Transfer menu" not in alice.heard_text and "We lost the connection" in alice.heard_text
    (dropped,) = events(centre, "agent_bridge_dropped")
    assert dropped["reason"] == "participant_removed"
    assert caller.waiting_on.tag == "Dial" and "caller_on_hold" not in centre.timeline(caller.sid)
    alice.music_ends()  # A's short wait, then A dials the room again
    assert in_room(caller, str(call.id)) and in_room(alice, str(call.id))
    assert call_row(centre, caller.sid).status == "connected" and not centre.llm.requests


def test_a_drop_read_as_a_star_costs_the_caller_nothing(centre):
    # The SIP bridge ending A's call itself (its media timed out) looks to
    # LiveKit like A leaving, and to Twilio like `*`: A gets the menu. The
    # caller is never put on hold and no summary of them is asked for.
    caller, alice = connected_call(centre)
    call = call_row(centre, caller.sid)
    centre.livekit.leave(call.room_name, "sip_leg-2")
    centre.network.run_pending()
    assert "Transfer menu" in alice.heard_text
    alice.press("#")  # nothing keyed: back to the caller
    assert in_room(caller, str(call.id)) and in_room(alice, str(call.id))
    assert "caller_on_hold" not in centre.timeline(caller.sid) and not centre.llm.requests
    assert transfer_row(centre).state == "cancelled"


def test_a_redirect_that_fails_once_is_retried(centre):
    caller, alice = connected_call(centre)
    centre.network.fail_next(f"Calls/{caller.sid}.json")  # the redirect to hold music fails once
    alice.press_star()
    alice.press("2102#")
    assert caller.live and caller.waiting_on.tag == "Play"  # the retry moved the caller to hold
    assert "leg_redirect_failed" not in centre.timeline(caller.sid)
    to_hold = [r for r in centre.network.rest_log
               if r.path.endswith(f"Calls/{caller.sid}.json") and "/twilio/caller/wait" in r.form.get("Url", "")]
    assert len(to_hold) == 2  # the same request, sent again


def test_a_redirect_that_keeps_failing_takes_the_caller_out_of_the_room_and_the_next_webhook_holds_them(centre):
    caller, alice = connected_call(centre)
    call = call_row(centre, caller.sid)
    for _ in range(2):  # the redirect to hold music and its retry both fail
        centre.network.fail_next(f"Calls/{caller.sid}.json")
    alice.press_star()
    alice.press("2102#")
    timeline = centre.timeline(caller.sid)
    assert "leg_redirect_failed" in timeline and "leg_taken_out_of_rooms" in timeline
    centre.network.run_pending()
    # LiveKit removed the caller's SIP participant, their <Dial> ended, and
    # the stale Dial action answered with where the database says they are.
    assert caller.live and caller.waiting_on.tag == "Play"  # held, not alone in the room, not hung up
    assert "sip_leg-1" not in centre.livekit.participants.get(call.room_name, {})
    alice.press("1")  # A returns
    assert in_room(caller, str(call.id)) and in_room(alice, str(call.id))


def test_livekit_participants_are_matched_to_legs_by_identity(centre):
    caller, alice = connected_call(centre)
    room = call_row(centre, caller.sid).room_name
    people = centre.livekit.participants[room]
    # sip.twilio.callSid names the dialled child leg, never the parent call.
    assert people["sip_leg-1"].attributes["sip.twilio.callSid"] == caller.dial_call_sid != caller.sid
    joined = [e for e in events(centre, "livekit_participant_joined") if e["room"] == room]
    assert {(e["identity"], e["leg_id"], e["role"]) for e in joined} == {
        ("sip_leg-1", 1, "caller"), ("sip_leg-2", 2, "agent")}


def test_the_numbers_fallback_url_resumes_the_call_and_never_greets_again(centre):
    caller = centre.dial()
    caller.speak("I was charged twice for my internet bill")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    centre.network.fail_next_webhook("/twilio/caller/connect")  # a proxy answers 502
    alice.press("1")
    assert any(d.url.startswith(centre.public_base_url + "/twilio/fallback") for d in centre.network.sent("twiml"))
    assert in_room(caller, str(call_row(centre, caller.sid).id))
    assert caller.heard_text.count("Thanks for calling") == 1
    assert len(caller.transcriptions) == 1
    assert events(centre, "twilio_fallback")[0]["error_code"] == "11200"


def test_an_agent_calls_fallback_url_carries_the_whisper_on(centre):
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.fail_next_webhook("/twilio/agent/answer")
    centre.network.answer(alice.sid)
    assert "Call from" in alice.heard_text and alice.waiting_on.tag == "Gather"
    alice.press("1")
    assert in_room(caller, str(call_row(centre, caller.sid).id))


def test_queue_codes_of_two_digits_can_be_pressed(centre):
    with centre.db() as session:
        session.scalar(select(Queue).where(Queue.name == "technical")).dtmf_code = "21"
    caller = centre.dial()
    caller.press("21")
    with centre.db() as session:
        assert call_row(centre, caller.sid).queue_id == session.scalar(
            select(Queue.id).where(Queue.name == "technical"))


def test_hold_music_is_the_services_own_short_clip_and_timers_follow_the_clock(centre):
    from app.models import Agent

    with centre.db() as session:
        for agent in session.scalars(select(Agent)):
            agent.presence = "away"
    caller = centre.dial()
    caller.press("1")
    assert caller.played[0] == WebhookUrls(centre.public_base_url).hold_music()
    # Measured from the file Twilio fetches: as long as the clip in the repository, within the 20 to 30 s asked of
    # any hold clip.
    seconds = centre.network.audio_seconds[caller.played[0]]
    assert seconds == HOLD_TURN_SECONDS and 20 <= seconds <= 30
    caller.wait(59)
    assert "To leave a message" not in caller.heard_text
    caller.wait(seconds)  # past MAX_QUEUE_WAIT_SECONDS (60) within one clip
    assert "To leave a message, press 1" in caller.heard_text


def test_a_second_trunk_without_numbers_makes_livekit_refuse_the_call(centre):
    from livekit.protocol import sip

    # A state LiveKit's own validation refuses to create, but finds all the same.
    centre.livekit.trunks["ST_legacy"] = sip.SIPInboundTrunkInfo(sip_trunk_id="ST_legacy", name="legacy")
    caller = centre.dial()
    caller.press("1")
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    dial_results = [d.params.get("DialSipResponseCode") for d in centre.network.sent("twiml")
                    if "DialCallStatus" in d.params]
    assert "503" in dial_results


def test_a_can_go_back_to_the_caller_while_b_still_rings(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    bob = centre.agent_phone(BOB)
    alice.press("1")  # on the music: back to the caller
    assert "Returning you to your caller" in alice.heard_text
    call_id = call_row(centre, caller.sid).id
    assert in_room(alice, str(call_id)) and in_room(caller, str(call_id))
    assert not bob.live and transfer_row(centre).state == "cancelled"


def test_a_target_calls_fallback_url_carries_the_whisper_on(centre):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    bob = centre.agent_phone(BOB)
    centre.network.fail_next_webhook("/twilio/transfer/answer")
    centre.network.answer(bob.sid)
    # The greeting again, from the fallback: nothing of the caller before a key.
    assert bob.heard_text == "Transfer from Alice Moreno. Press 1 to hear the summary, or 2 to decline."
    assert bob.waiting_on.tag == "Gather"
    accepts(centre, bob)
    assert "Here is the summary." in bob.heard_text
    assert transfer_row(centre).state == "consulting"
