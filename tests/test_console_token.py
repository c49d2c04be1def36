"""A browser agent gets a short-lived LiveKit token for the room of their own call only."""

import re

import jwt

from app.auth.service import create_user
from tests.conftest import LIVEKIT_API_SECRET
from tests.transfer_helpers import connected_call


def log_in(client, username, password):
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', page)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf.group(1)})
    assert response.status_code == 302, response.get_data(as_text=True)


def test_agent_token_grants_only_the_room_of_their_call(centre):
    with centre.db() as session:
        create_user(session, "alice", "alice-password-1", "agent", agent_extension="101")
        create_user(session, "bob", "bob-password-12", "agent", agent_extension="102")
    caller, alice = connected_call(centre)

    client = centre.app.test_client()
    log_in(client, "alice", "alice-password-1")
    response = client.get("/console/token")
    assert response.status_code == 200
    body = response.get_json()
    claims = jwt.decode(body["token"], LIVEKIT_API_SECRET, algorithms=["HS256"])
    assert body["room"] == "call_1" and body["identity"] == "agent-101" and body["expires_in"] == 60
    # Join this room, publish the microphone, subscribe: nothing more, no data messages.
    assert claims["video"] == {"room": "call_1", "roomJoin": True, "canPublish": True, "canSubscribe": True,
                               "canPublishData": False, "canPublishSources": ["microphone"],
                               "canUpdateOwnMetadata": False}
    assert claims["exp"] - claims["nbf"] <= 60

    other = centre.app.test_client()
    log_in(other, "bob", "bob-password-12")
    assert other.get("/console/token").status_code == 404  # Bob has no call

    caller.hangup()
    assert client.get("/console/token").status_code == 404


def test_token_needs_an_agent_login(centre):
    assert centre.client.get("/console/token").status_code == 302
    with centre.db() as session:
        create_user(session, "sue", "supervisor-pass-1", "supervisor")
    client = centre.app.test_client()
    log_in(client, "sue", "supervisor-pass-1")
    assert client.get("/console/token").status_code == 403
