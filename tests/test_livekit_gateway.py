import json
import os
import threading
import time
import urllib.error
import urllib.request

import jwt
import pytest
from livekit import api

from app.gateways.livekit import (
    InvalidLiveKitWebhook,
    LiveKitError,
    LiveKitGateway,
    api_url,
)
from app.sandbox.livekit_server import LiveKitStandIn, sign_webhook, webhook_body

KEY = "APIswitchboard"
SECRET = "s3cret-that-is-long-enough-for-hs256-signing"


@pytest.fixture
def livekit():
    with LiveKitStandIn(KEY, SECRET) as server:
        yield server


@pytest.fixture
def gateway(livekit):
    with LiveKitGateway(livekit.url, KEY, SECRET, timeout_seconds=2.0) as gw:
        yield gw


def twirp_post(url, method, message, token, service="RoomService"):
    request = urllib.request.Request(
        f"{url}/twirp/livekit.{service}/{method}",
        data=message.SerializeToString(),
        headers={"Content-Type": "application/protobuf", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def test_api_url_maps_websocket_schemes():
    assert api_url("wss://lk.example.com/") == "https://lk.example.com"
    assert api_url("ws://127.0.0.1:7880") == "http://127.0.0.1:7880"
    assert api_url("https://lk.example.com") == "https://lk.example.com"
    with pytest.raises(ValueError):
        api_url("lk.example.com")


def test_ensure_room_sends_timeouts_and_is_idempotent(livekit, gateway):
    room = gateway.ensure_room("call_CA1", empty_timeout_s=900, departure_timeout_s=600, metadata='{"call":"CA1"}')
    again = gateway.ensure_room("call_CA1", empty_timeout_s=900, departure_timeout_s=600)

    assert room.name == "call_CA1" and room.sid.startswith("RM_")
    assert (room.empty_timeout_s, room.departure_timeout_s, room.metadata) == (900, 600, '{"call":"CA1"}')
    assert again.sid == room.sid
    sent = livekit.calls("CreateRoom")[0]
    assert sent.content_type == "application/protobuf"
    assert sent.body == {
        "name": "call_CA1",
        "empty_timeout": 900,
        "departure_timeout": 600,
        "metadata": '{"call":"CA1"}',
    }
    assert sent.claims["iss"] == KEY and sent.claims["video"]["roomCreate"] is True


def test_list_and_delete_rooms(livekit, gateway):
    gateway.ensure_room("a", 60, 20)
    gateway.ensure_room("b", 60, 20)

    assert sorted(r.name for r in gateway.list_rooms()) == ["a", "b"]
    assert [r.name for r in gateway.list_rooms(["b"])] == ["b"]
    assert livekit.calls("ListRooms")[1].body == {"names": ["b"]}
    assert gateway.delete_room("a") is True
    assert gateway.delete_room("a") is False
    assert list(livekit.rooms) == ["b"]


def test_participants_round_trip(livekit, gateway):
    livekit.add_participant("call_CA1", "sip_caller", kind="sip", attributes={"sip.twilio.callSid": "CA1"})
    livekit.add_participant("call_CA1", "agent-7", name="Ana")

    people = {p.identity: p for p in gateway.list_participants("call_CA1")}

    assert people["sip_caller"].kind == "sip"
    assert people["sip_caller"].attributes == {"sip.twilio.callSid": "CA1"}
    assert people["agent-7"].name == "Ana" and people["agent-7"].kind == "standard"
    assert people["agent-7"].state == "active"
    assert livekit.calls("ListParticipants")[0].claims["video"]["room"] == "call_CA1"
    assert gateway.remove_participant("call_CA1", "agent-7") is True
    assert gateway.remove_participant("call_CA1", "agent-7") is False
    assert [p.identity for p in gateway.list_participants("call_CA1")] == ["sip_caller"]


def test_move_participant_is_false_where_unimplemented(livekit, gateway):
    livekit.add_participant("call_CA1", "agent-7")
    gateway.ensure_room("consult_T1", 60, 20)

    assert gateway.move_participant("call_CA1", "agent-7", "consult_T1") is False
    moved = livekit.calls("MoveParticipant")[0]
    assert moved.status == 501
    assert moved.claims["video"]["destinationRoom"] == "consult_T1"

    livekit.support_move = True
    assert gateway.move_participant("call_CA1", "agent-7", "consult_T1") is True
    assert [p.identity for p in gateway.list_participants("consult_T1")] == ["agent-7"]


def test_sip_provisioning_round_trip(livekit, gateway):
    trunk = gateway.create_inbound_trunk("switchboard", "twilio", "pw-1", ["54.172.60.0/30"])
    updated = gateway.update_inbound_trunk(trunk.trunk_id, auth_password="pw-2", allowed_addresses=["54.244.51.0/30"])
    rule = gateway.create_callee_dispatch_rule("switchboard", "call", [trunk.trunk_id], empty_timeout_s=900)

    assert trunk.trunk_id.startswith("ST_") and trunk.allowed_addresses == ("54.172.60.0/30",)
    assert updated.allowed_addresses == ("54.244.51.0/30",)
    assert livekit.trunks[trunk.trunk_id].auth_password == "pw-2"
    assert livekit.calls("UpdateSIPInboundTrunk")[0].body == {
        "sip_trunk_id": trunk.trunk_id,
        "update": {"allowed_addresses": {"set": ["54.244.51.0/30"]}, "auth_password": "pw-2"},
    }
    assert rule.rule_id.startswith("SDR_")
    assert (rule.kind, rule.room_prefix, rule.trunk_ids, rule.empty_timeout_s) == ("callee", "call", (trunk.trunk_id,), 900)
    assert livekit.calls("CreateSIPDispatchRule")[0].body["dispatch_rule"]["rule"] == {
        "dispatch_rule_callee": {"room_prefix": "call"}
    }
    assert livekit.calls("CreateSIPDispatchRule")[0].claims["sip"]["admin"] is True
    assert gateway.list_inbound_trunks() == [updated]
    assert gateway.list_dispatch_rules() == [rule]
    assert gateway.delete_dispatch_rule(rule.rule_id) is True
    assert gateway.delete_dispatch_rule(rule.rule_id) is False
    assert gateway.delete_inbound_trunk(trunk.trunk_id) is True
    assert gateway.list_inbound_trunks() == [] and gateway.list_dispatch_rules() == []


def test_token_without_the_grant_is_refused(livekit):
    # A room_admin grant for another room must not reach this room's participants.
    token = (
        api.AccessToken(KEY, SECRET)
        .with_grants(api.VideoGrants(room_admin=True, room="other"))
        .to_jwt()
    )
    status, content_type, body = twirp_post(
        livekit.url, "ListParticipants", api.ListParticipantsRequest(room="call_CA1"), token
    )
    # livekit-server reports missing grants as unauthenticated, not permission_denied.
    assert (status, content_type) == (401, "application/json")
    assert json.loads(body) == {"code": "unauthenticated", "msg": "permissions denied"}

    list_only = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_list=True)).to_jwt()
    status, _, _ = twirp_post(livekit.url, "CreateRoom", api.CreateRoomRequest(name="x"), list_only)
    assert status == 401 and livekit.rooms == {}


def test_badly_signed_or_expired_token_is_refused(livekit):
    forged = api.AccessToken(KEY, "another-secret-of-decent-length-1234").with_grants(
        api.VideoGrants(room_list=True)
    ).to_jwt()
    expired = jwt.encode({"iss": KEY, "exp": int(time.time()) - 600, "video": {"roomList": True}}, SECRET, "HS256")

    for token in (forged, expired):
        status, content_type, body = twirp_post(livekit.url, "ListRooms", api.ListRoomsRequest(), token)
        assert status == 401 and content_type.startswith("text/plain")
        assert body.startswith(b"invalid token")


def test_wrong_secret_becomes_livekit_error_without_the_secret(livekit):
    wrong = "wrong-secret-that-must-never-be-logged-0000"
    with LiveKitGateway(livekit.url, KEY, wrong, timeout_seconds=2.0) as gw:
        with pytest.raises(LiveKitError) as caught:
            gw.list_rooms()
    assert caught.value.status == 401 and caught.value.method == "ListRooms"
    assert wrong not in str(caught.value) and wrong not in repr(gw)


def test_injected_failure_becomes_livekit_error_once(livekit, gateway):
    livekit.fail_next("CreateRoom", code="unavailable", status=503)

    with pytest.raises(LiveKitError) as caught:
        gateway.ensure_room("a", 60, 20)
    assert (caught.value.code, caught.value.status, caught.value.method) == ("unavailable", 503, "CreateRoom")
    # A self-hosted URL gets no region failover, so a 5xx is not replayed.
    assert len(livekit.calls("CreateRoom")) == 1
    assert gateway.ensure_room("a", 60, 20).name == "a"


def test_slow_server_times_out_quickly(livekit):
    livekit.delay_next("ListRooms", 5)
    with LiveKitGateway(livekit.url, KEY, SECRET, timeout_seconds=0.3) as gw:
        started = time.monotonic()
        with pytest.raises(LiveKitError) as caught:
            gw.list_rooms()
        elapsed = time.monotonic() - started
        assert caught.value.code == "deadline_exceeded"
        assert elapsed < 1.5
        assert gw.list_rooms() == []


def test_unreachable_server_becomes_livekit_error():
    with LiveKitStandIn(KEY, SECRET) as server:
        url = server.url
    with LiveKitGateway(url, KEY, SECRET, timeout_seconds=1.0) as gw:
        with pytest.raises(LiveKitError) as caught:
            gw.list_rooms()
    assert caught.value.code == "unavailable"


def test_webhook_signed_like_livekit_verifies(gateway):
    body = webhook_body(
        "participant_joined", "call_CA1", "sip_caller", {"sip.twilio.callSid": "CA1"}, participant_kind="sip"
    )
    event = gateway.verify_webhook(body, sign_webhook(body, KEY, SECRET))

    assert event.event == "participant_joined"
    assert event.room.name == "call_CA1"
    assert event.participant.identity == "sip_caller" and event.participant.kind == "sip"
    assert event.participant.attributes == {"sip.twilio.callSid": "CA1"}
    assert gateway.verify_webhook(body, "Bearer " + sign_webhook(body, KEY, SECRET)).event_id == event.event_id


@pytest.mark.parametrize("tamper", ["body", "secret", "missing"])
def test_tampered_webhook_is_rejected(gateway, tamper):
    body = webhook_body("room_finished", "call_CA1")
    header = sign_webhook(body, KEY, "another-secret-of-decent-length-1234" if tamper == "secret" else SECRET)
    if tamper == "body":
        body = body.replace("call_CA1", "call_CA2")
    if tamper == "missing":
        header = ""

    with pytest.raises(InvalidLiveKitWebhook):
        gateway.verify_webhook(body, header)


def test_browser_token_grants_one_room_for_the_ttl(gateway, livekit):
    token = gateway.browser_token("agent-7", "Ana", "consult_T1", ttl_seconds=900)

    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=KEY)
    assert claims["sub"] == "agent-7" and claims["name"] == "Ana"
    assert claims["exp"] - claims["nbf"] == 900
    # The least a voice console needs: join this room, publish its microphone, subscribe; no data messages.
    assert claims["video"] == {
        "roomJoin": True,
        "room": "consult_T1",
        "canPublish": True,
        "canSubscribe": True,
        "canPublishData": False,
        "canPublishSources": ["microphone"],
        "canUpdateOwnMetadata": False,
    }
    assert set(claims) == {"iss", "sub", "name", "nbf", "exp", "video"}
    assert livekit.requests == []


def test_close_stops_the_loop_thread(livekit):
    gw = LiveKitGateway(livekit.url, KEY, SECRET)
    gw.list_rooms()
    assert any(t.name == "livekit-gateway" for t in threading.enumerate())

    gw.close()
    gw.close()

    assert not any(t.name == "livekit-gateway" for t in threading.enumerate())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_gateway_recreates_its_loop_after_fork(livekit, gateway):
    gateway.ensure_room("before-fork", 60, 20)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            names = [r.name for r in gateway.list_rooms()]
            os.write(write_end, json.dumps(names).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        answer = reader.read()
    os.waitpid(pid, 0)

    assert json.loads(answer) == ["before-fork"]
    assert gateway.list_rooms()[0].name == "before-fork"


def _webhook_token(body, *, expires_in, not_before_in=-60):
    import base64
    import hashlib

    now = int(time.time())
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return jwt.encode({"iss": KEY, "sha256": digest, "nbf": now + not_before_in, "exp": now + expires_in},
                      SECRET, "HS256")


def test_a_webhook_token_past_its_expiry_is_refused_without_leeway(gateway):
    body = webhook_body("room_finished", "call_CA1")
    # livekit-api alone would let this pass: it allows a minute of leeway on exp.
    with pytest.raises(InvalidLiveKitWebhook, match="expired"):
        gateway.verify_webhook(body, _webhook_token(body, expires_in=-5))
    with pytest.raises(InvalidLiveKitWebhook):
        gateway.verify_webhook(body, _webhook_token(body, expires_in=-120))
    assert gateway.verify_webhook(body, _webhook_token(body, expires_in=5)).event == "room_finished"
    # A LiveKit clock a few seconds ahead of ours still gets through: nbf keeps its leeway.
    assert gateway.verify_webhook(body, _webhook_token(body, expires_in=300, not_before_in=5)).event == "room_finished"
