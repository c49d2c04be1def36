import json
import urllib.error
import urllib.request

import pytest
from google.protobuf import json_format
from livekit import api

from app.sandbox.livekit_server import LiveKitStandIn, webhook_body

KEY = "APIsandbox"
SECRET = "sandbox-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def livekit():
    with LiveKitStandIn(KEY, SECRET) as server:
        yield server


def post(url, path, body, content_type, token=None):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def sip_admin_token():
    return api.AccessToken(KEY, SECRET).with_sip_grants(api.SIPGrants(admin=True)).to_jwt()


def test_unknown_route_is_bad_route(livekit):
    status, body = post(livekit.url, "/twirp/livekit.RoomService/Nope", b"", "application/protobuf")
    assert status == 404 and json.loads(body)["code"] == "bad_route"


def test_json_bodies_are_accepted_like_twirp(livekit):
    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_create=True)).to_jwt()
    status, body = post(
        livekit.url,
        "/twirp/livekit.RoomService/CreateRoom",
        json.dumps({"name": "r", "emptyTimeout": 30}).encode(),
        "application/json",
        token,
    )
    assert status == 200
    assert json.loads(body)["emptyTimeout"] == 30
    assert json.loads(body)["departureTimeout"] == 20


def test_missing_token_has_no_grants(livekit):
    status, body = post(
        livekit.url, "/twirp/livekit.SIP/ListSIPInboundTrunk", b"", "application/protobuf"
    )
    assert status == 401 and json.loads(body)["code"] == "unauthenticated"
    assert livekit.requests[0].claims == {}


def test_dispatch_rule_update_and_legacy_create(livekit):
    token = sip_admin_token()
    trunk = api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(name="t"))
    status, body = post(livekit.url, "/twirp/livekit.SIP/CreateSIPInboundTrunk", trunk.SerializeToString(), "application/protobuf", token)
    trunk_id = api.SIPInboundTrunkInfo.FromString(body).sip_trunk_id
    legacy = api.CreateSIPDispatchRuleRequest(
        rule=api.SIPDispatchRule(dispatch_rule_callee=api.SIPDispatchRuleCallee(room_prefix="call")),
        trunk_ids=[trunk_id],
        name="old-style",
    )
    status, body = post(livekit.url, "/twirp/livekit.SIP/CreateSIPDispatchRule", legacy.SerializeToString(), "application/protobuf", token)
    rule = api.SIPDispatchRuleInfo.FromString(body)
    update = api.UpdateSIPDispatchRuleRequest(
        sip_dispatch_rule_id=rule.sip_dispatch_rule_id, update=api.SIPDispatchRuleUpdate(name="renamed")
    )
    status, body = post(livekit.url, "/twirp/livekit.SIP/UpdateSIPDispatchRule", update.SerializeToString(), "application/protobuf", token)

    assert status == 200
    assert api.SIPDispatchRuleInfo.FromString(body).name == "renamed"
    assert livekit.dispatch_rules[rule.sip_dispatch_rule_id].rule.dispatch_rule_callee.room_prefix == "call"


def test_webhook_body_is_a_livekit_webhook_event():
    body = webhook_body("participant_left", "call_CA1", "sip_caller", {"sip.callID": "x"}, participant_kind="sip")
    event = json_format.Parse(body, api.WebhookEvent())

    assert event.event == "participant_left" and event.room.name == "call_CA1"
    assert event.participant.kind == api.ParticipantInfo.SIP
    assert event.participant.state == api.ParticipantInfo.DISCONNECTED
    assert "createdAt" in json.loads(body)
