"""The LiveKit stand-in's SIP side, against what livekit/sip and livekit-server do (docs/stand-ins.md)."""

import pytest
from google.protobuf.duration_pb2 import Duration
from livekit.protocol import room as proto_room
from livekit.protocol import sip

from app.gateways.livekit import LiveKitGateway
from app.sandbox.livekit_server import LiveKitStandIn, sign_webhook
from app.sandbox.livekit_sip import NO_RESPONSE, SipInvite, SipRejected

KEY, SECRET = "APIsiptest", "sip-test-secret-long-enough-for-hs256"
TWILIO_IP = "54.172.60.1"


class Leg:
    """The far end of one INVITE: what LiveKit told it."""

    def __init__(self):
        self.answered, self.ended = 0, []

    def answer(self):
        self.answered += 1

    def bye(self, reason):
        self.ended.append(reason)


@pytest.fixture
def livekit():
    with LiveKitStandIn(KEY, SECRET) as server:
        server.trunks["ST_1"] = sip.SIPInboundTrunkInfo(
            sip_trunk_id="ST_1", auth_username="switchboard", auth_password="pw", allowed_addresses=["54.172.60.0/23"])
        server.dispatch_rules["SDR_1"] = sip.SIPDispatchRuleInfo(
            sip_dispatch_rule_id="SDR_1", trunk_ids=["ST_1"],
            rule=sip.SIPDispatchRule(dispatch_rule_callee=sip.SIPDispatchRuleCallee(room_prefix="call")))
        yield server


def invite(livekit, from_user="+15550100000", to_user="7", **overrides):
    leg = Leg()
    values = dict(from_user=from_user, to_user=to_user, host="sip.test", source_ip=TWILIO_IP,
                  username="switchboard", password="pw", headers={"X-Twilio-CallSid": "CAchild"})
    values.update(overrides)
    call = livekit.sip_invite(SipInvite(**values), leg.answer, leg.bye)
    return call, leg


def test_identity_room_and_attributes_follow_the_dispatch_rule(livekit):
    call, _ = invite(livekit)
    assert (call.room, call.identity) == ("call_7", "sip_+15550100000")
    person = livekit.participants["call_7"]["sip_+15550100000"]
    assert person.name == "Phone +15550100000"
    assert person.attributes["sip.twilio.callSid"] == "CAchild"
    assert person.attributes["sip.phoneNumber"] == "+15550100000"
    assert person.attributes["sip.trunkPhoneNumber"] == "7" and person.attributes["sip.callStatus"] == "ringing"


def test_a_call_rings_until_it_can_subscribe_to_someone_else(livekit):
    first, a = invite(livekit, from_user="leg-1")
    assert first.state == "ringing" and a.answered == 0
    second, b = invite(livekit, from_user="leg-2")
    assert (a.answered, b.answered) == (1, 1) and first.state == second.state == "active"


def test_a_browser_publishing_audio_answers_a_ringing_call(livekit):
    call, leg = invite(livekit)
    livekit.add_participant("call_7", "agent-101")
    assert leg.answered == 1 and call.state == "active"


def test_the_same_identity_replaces_the_participant_and_ends_its_call(livekit):
    _, first = invite(livekit)
    _, second = invite(livekit)  # the same From: the same identity
    assert first.ended == ["DUPLICATE_IDENTITY"] and second.ended == []
    assert list(livekit.participants["call_7"]) == ["sip_+15550100000"]
    assert any("DUPLICATE_IDENTITY" in w["body"] for w in livekit.webhooks if w["event"] == "participant_left")


def test_nobody_publishing_rings_out_after_the_trunks_ringing_timeout(livekit):
    _, leg = invite(livekit)
    livekit.clock.advance(179)
    assert leg.ended == []
    livekit.clock.advance(1)  # livekit/sip's default: three minutes
    assert leg.ended and "call_7" in livekit.rooms  # the room outlives its last participant a while
    livekit.trunks["ST_1"].ringing_timeout.CopyFrom(Duration(seconds=20))
    _, short = invite(livekit, to_user="8")
    livekit.clock.advance(20)
    assert short.ended


def test_credentials_and_addresses_are_checked(livekit):
    with pytest.raises(SipRejected) as wrong:
        invite(livekit, password="nope")
    assert wrong.value.status == 401
    with pytest.raises(SipRejected) as missing:
        invite(livekit, username=None, password=None)
    assert missing.value.status == 407
    with pytest.raises(SipRejected) as elsewhere:
        invite(livekit, source_ip="203.0.113.9")  # no trunk matches; no rule for every trunk
    assert elsewhere.value.status == NO_RESPONSE


def test_two_default_trunks_refuse_every_call(livekit):
    livekit.trunks["ST_2"] = sip.SIPInboundTrunkInfo(sip_trunk_id="ST_2")
    with pytest.raises(SipRejected, match="Multiple default SIP Trunks matched") as refused:
        invite(livekit)
    assert refused.value.status == 503


def test_deleting_the_room_ends_its_sip_calls_and_is_reported_signed(livekit):
    _, a = invite(livekit, from_user="leg-1")
    _, b = invite(livekit, from_user="leg-2")
    gateway = LiveKitGateway(livekit.url, KEY, SECRET)
    try:
        gateway.delete_room("call_7")
        assert a.ended == b.ended == ["ROOM_DELETED"] and "call_7" not in livekit.rooms
        finished = [w for w in livekit.webhooks if w["event"] == "room_finished"][-1]
        event = gateway.verify_webhook(finished["body"], sign_webhook(finished["body"], KEY, SECRET))
        assert event.event == "room_finished" and event.room.name == "call_7"
    finally:
        gateway.close()


def test_removing_a_participant_ends_its_call_and_an_empty_room_closes_after_its_departure_timeout(livekit):
    _, a = invite(livekit, from_user="leg-1")
    invite(livekit, from_user="leg-2")
    livekit.leave("call_7", "sip_leg-2")
    livekit._remove(proto_room.RoomParticipantIdentity(room="call_7", identity="sip_leg-1"))
    assert a.ended == ["PARTICIPANT_REMOVED"]
    livekit.clock.advance(19)
    assert "call_7" in livekit.rooms
    livekit.clock.advance(1)  # livekit-server's default departure timeout: 20 s
    assert "call_7" not in livekit.rooms
