"""A supervisor listens to, whispers into and barges into a live call, on the LiveKit stand-in's subscriptions."""
import re

import jwt
import pytest
from sqlalchemy import select

from app.auth.service import create_user
from app.models import Leg, LegRole
from tests.conftest import LIVEKIT_API_SECRET
from tests.test_console import make_browser_agent
from tests.transfer_helpers import call_row, connected_call

PASSWORD = "supervisor-password-1"


def signed_in(centre, username, role, page_of, **user):
    with centre.db() as session:
        create_user(session, username, PASSWORD, role, **user)
    client = centre.app.test_client()
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    assert client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}).status_code == 302
    page = client.get(page_of).get_data(as_text=True)
    client.csrf = re.search(r'data-csrf="([^"]+)"', page).group(1)
    return client


def post(centre, client, path, **fields):
    response = client.post(path, data={"csrf_token": client.csrf, **fields}, headers={"Accept": "application/json"})
    centre.network.run_pending()
    return response


def identities(centre, sid):
    with centre.db() as session:
        call = session.scalar(select(Leg).where(Leg.twilio_call_sid == sid)).call
        caller = next(leg for leg in call.legs if leg.role == LegRole.CALLER).livekit_identity
        agent = next(leg for leg in call.legs if leg.role == LegRole.AGENT and leg.status == "connected")
        return call.room_name, caller, agent.livekit_identity


def supervisor_events(centre, sid):
    from app.models import Call, Event

    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == sid))
        events = session.scalars(select(Event).where(Event.call_id == call.id).order_by(Event.id))
        return [(e.name, e.detail.get("by")) for e in events if e.name.startswith("supervisor_")]


def play_a_supervised_call(centre, caller_sid):
    """Sam listens, whispers, barges, goes back to listening and stops; what LiveKit served at each step."""
    sam = signed_in(centre, "sam", "supervisor", f"/calls/{caller_sid}")
    room, caller, agent = identities(centre, caller_sid)
    lk = centre.livekit

    granted = post(centre, sam, f"/calls/{caller_sid}/listen")
    assert granted.status_code == 200, granted.get_data(as_text=True)
    body = granted.get_json()
    assert body["room"] == room and body["agent_identity"] == agent and body["identity"] == "supervisor-sam"
    claims = jwt.decode(body["token"], LIVEKIT_API_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "supervisor-sam"
    assert claims["video"] == {"roomJoin": True, "room": room, "canPublish": False, "canSubscribe": True,
                               "canPublishData": False, "hidden": True}

    # Listen: the page joins with that token; it hears both, says nothing, and is not counted in the room.
    lk.join_with_token(body["token"])
    assert lk.subscribed(room, "supervisor-sam", caller) and lk.subscribed(room, "supervisor-sam", agent)
    with pytest.raises(PermissionError):
        lk.publish(room, "supervisor-sam")
    assert lk.rooms[room].num_participants == 2

    # Whisper: the page allows the agent alone, the server grants publishing, the page publishes.
    lk.set_subscription_permissions(room, "supervisor-sam", False, [agent])
    switched = post(centre, sam, f"/calls/{caller_sid}/listen/mode", mode="whisper")
    assert switched.status_code == 200 and switched.get_json() == {"mode": "whisper", "agent_identity": agent}
    update = lk.calls("UpdateParticipant")[-1].body
    assert update["identity"] == "supervisor-sam" and update["permission"]["can_publish"] is True
    assert update["permission"].get("hidden", False) is False
    lk.publish(room, "supervisor-sam")
    assert lk.subscribed(room, agent, "supervisor-sam")
    assert not lk.subscribed(room, caller, "supervisor-sam")

    # Barge: everyone may subscribe; the caller hears the supervisor now.
    lk.set_subscription_permissions(room, "supervisor-sam", True)
    assert post(centre, sam, f"/calls/{caller_sid}/listen/mode", mode="barge").status_code == 200
    assert lk.subscribed(room, caller, "supervisor-sam") and lk.subscribed(room, agent, "supervisor-sam")

    # Back to listening: LiveKit takes the microphone away.
    assert post(centre, sam, f"/calls/{caller_sid}/listen/mode", mode="listen").status_code == 200
    assert lk.participants[room]["supervisor-sam"].tracks == []
    assert not lk.subscribed(room, agent, "supervisor-sam")

    assert post(centre, sam, f"/calls/{caller_sid}/listen/stop").status_code == 200
    assert "supervisor-sam" not in lk.participants[room]
    assert supervisor_events(centre, caller_sid) == [
        ("supervisor_listening", "sam"), ("supervisor_whispering", "sam"), ("supervisor_barged_in", "sam"),
        ("supervisor_listening", "sam"), ("supervisor_stopped", "sam")]
    return room, caller, agent


def test_whisper_reaches_a_phone_agent_and_never_the_caller(centre):
    centre.load_roster()
    caller, _alice = connected_call(centre)
    play_a_supervised_call(centre, caller.sid)
    room, caller_identity, agent = identities(centre, caller.sid)
    assert agent.startswith("sip_")  # Alice answered on her softphone: her leg is a SIP participant too
    assert call_row(centre, caller.sid).status == "connected"


def test_whisper_reaches_a_browser_agent_and_never_the_caller(centre):
    centre.load_roster()
    make_browser_agent(centre, "101", "alice")
    caller = centre.dial()
    caller.speak("I was charged twice for my internet bill")
    from tests.test_console import sign_in as console_sign_in
    from tests.test_console import state

    console = console_sign_in(centre, "alice")
    offer = state(console)["offer"]
    post(centre, console, "/console/accept", leg_id=offer["leg_id"])
    call_id = call_row(centre, caller.sid).id
    centre.browser_joins(f"call_{call_id}", "agent-101")
    play_a_supervised_call(centre, caller.sid)


def test_the_caller_never_receives_a_whisper_at_any_moment(centre):
    centre.load_roster()
    caller, _alice = connected_call(centre)
    sam = signed_in(centre, "sam", "supervisor", f"/calls/{caller.sid}")
    room, caller_identity, agent = identities(centre, caller.sid)
    token = post(centre, sam, f"/calls/{caller.sid}/listen").get_json()["token"]
    centre.livekit.join_with_token(token)
    centre.livekit.set_subscription_permissions(room, "supervisor-sam", False, [agent])
    post(centre, sam, f"/calls/{caller.sid}/listen/mode", mode="whisper")
    centre.livekit.publish(room, "supervisor-sam")
    # Back to listening and whispering again: the caller's SIP participant asked for the track (it subscribes
    # to every audio track it is told of) and was never served it.
    post(centre, sam, f"/calls/{caller.sid}/listen/mode", mode="listen")
    post(centre, sam, f"/calls/{caller.sid}/listen/mode", mode="whisper")
    centre.livekit.publish(room, "supervisor-sam")
    assert any(key[1:3] == (caller_identity, "supervisor-sam") for key in centre.livekit.wanted)
    assert not centre.livekit.ever_subscribed_to(room, caller_identity, "supervisor-sam")
    assert centre.livekit.ever_subscribed_to(room, agent, "supervisor-sam")


def test_only_a_supervisor_may_listen_and_refusals_are_in_words(centre):
    centre.load_roster()
    caller, _alice = connected_call(centre)
    alice = signed_in(centre, "alice", "agent", f"/calls/{caller.sid}", agent_extension="101")
    refused = post(centre, alice, f"/calls/{caller.sid}/listen")
    assert refused.status_code == 403
    assert centre.livekit.calls("UpdateParticipant") == []

    sam = signed_in(centre, "sam", "supervisor", f"/calls/{caller.sid}")
    no_csrf = sam.post(f"/calls/{caller.sid}/listen", headers={"Accept": "application/json"})
    assert no_csrf.status_code == 400
    not_joined = post(centre, sam, f"/calls/{caller.sid}/listen/mode", mode="whisper")
    assert not_joined.status_code == 409 and "start listening first" in not_joined.get_json()["error"]
    bad_mode = post(centre, sam, f"/calls/{caller.sid}/listen/mode", mode="shout")
    assert bad_mode.status_code == 400 and "listen, whisper or barge" in bad_mode.get_json()["error"]
    assert post(centre, sam, "/calls/CAnothing/listen").status_code == 404
    caller.hangup()
    centre.network.run_pending()
    ended = post(centre, sam, f"/calls/{caller.sid}/listen")
    assert ended.status_code == 409 and "not live" in ended.get_json()["error"]
    assert supervisor_events(centre, caller.sid) == []
