"""`flask provision` against the simulated Twilio REST API and the LiveKit stand-in."""

import pytest
import responses

from app.commands.provisioning import provision_command
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.twilio_network import TwilioNetwork
from app.telephony.sip import ROOM_DIAL_TIMEOUT_SECONDS
from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

KEY = "APIprovision"
SECRET = "provision-secret-long-enough-for-hs256-signing"
NUMBER = "+15550100000"
SIP_PASSWORD = "a-long-sip-password"
# Documentation ranges (RFC 5737), standing in for Twilio's published signalling ranges.
ADDRESSES = ("192.0.2.0/30", "198.51.100.0/30")
CHANGING = {
    "CreateSIPInboundTrunk", "UpdateSIPInboundTrunk", "DeleteSIPTrunk",
    "CreateSIPDispatchRule", "UpdateSIPDispatchRule", "DeleteSIPDispatchRule",
}
NUMBER_FORM = {
    "VoiceUrl": PUBLIC_BASE_URL + "/twilio/voice",
    "VoiceMethod": "POST",
    "StatusCallback": PUBLIC_BASE_URL + "/twilio/status",
    "StatusCallbackMethod": "POST",
    "VoiceFallbackUrl": PUBLIC_BASE_URL + "/twilio/fallback",
    "VoiceFallbackMethod": "POST",
}


def no_webhooks(url, params, headers):
    raise AssertionError(f"provisioning must not place calls ({url})")


@pytest.fixture
def livekit():
    with LiveKitStandIn(KEY, SECRET) as server:
        yield server


@pytest.fixture
def network():
    return TwilioNetwork(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, no_webhooks)


@pytest.fixture
def twilio_api(network):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        network.install(mock)
        yield mock


@pytest.fixture
def build(make_app, settings, livekit, twilio_api):
    def build_app(**changes):
        values = dict(
            livekit_url=livekit.url, livekit_api_key=KEY, livekit_api_secret=SECRET,
            livekit_sip_host="sip.example.livekit.cloud", livekit_sip_username="switchboard",
            livekit_sip_password=SIP_PASSWORD, livekit_allowed_addresses=ADDRESSES,
        )
        values.update(changes)
        return make_app(settings, **values)

    return build_app


@pytest.fixture
def app(build):
    return build()


def provision(app, *args):
    return app.test_cli_runner().invoke(provision_command, list(args))


def livekit_changes(livekit):
    return [(r.method, r.body) for r in livekit.requests if r.method in CHANGING]


def twilio_changes(network):
    return [r for r in network.rest_log if r.method != "GET"]


def only_trunk(livekit):
    (trunk,) = livekit.trunks.values()
    return trunk


def only_rule(livekit):
    (rule,) = livekit.dispatch_rules.values()
    return rule


def test_fresh_accounts_get_exactly_the_expected_requests(app, network, livekit):
    sid = network.add_number(NUMBER)

    result = provision(app)

    assert result.exit_code == 0, result.output
    (update,) = twilio_changes(network)
    assert (update.method, update.path) == (
        "POST", f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/IncomingPhoneNumbers/{sid}.json")
    assert update.form.to_dict() == NUMBER_FORM
    trunk_id = only_trunk(livekit).sip_trunk_id
    assert livekit_changes(livekit) == [
        ("CreateSIPInboundTrunk", {"trunk": {
            "name": "switchboard", "auth_username": "switchboard",
            "auth_password": SIP_PASSWORD, "allowed_addresses": list(ADDRESSES),
            "ringing_timeout": f"{ROOM_DIAL_TIMEOUT_SECONDS - 5}s",  # under the room <Dial>'s timeout
        }}),
        ("CreateSIPDispatchRule", {"dispatch_rule": {
            "name": "switchboard-callee", "trunk_ids": [trunk_id],
            "rule": {"dispatch_rule_callee": {"room_prefix": "call"}},
            "room_config": {"empty_timeout": 1800, "departure_timeout": 1800},
        }}),
    ]
    assert "done: update Twilio number +15550100000" in result.output
    assert "Applied 3 change(s)." in result.output


def test_second_run_changes_nothing_and_check_passes(app, network, livekit):
    network.add_number(NUMBER)
    assert provision(app).exit_code == 0
    twilio_before, livekit_before = len(twilio_changes(network)), len(livekit_changes(livekit))

    again = provision(app)
    check = provision(app, "--check")

    assert again.exit_code == 0 and "Up to date" in again.output
    assert (check.exit_code, check.output.strip()) == (0, "Up to date.")
    assert len(twilio_changes(network)) == twilio_before
    assert len(livekit_changes(livekit)) == livekit_before


def make_drift(network, livekit, sid):
    network.numbers[sid]["voice_url"] = "https://console.example.com/voice"
    only_rule(livekit).rule.dispatch_rule_callee.room_prefix = "other"
    addresses = only_trunk(livekit).allowed_addresses
    del addresses[:]
    addresses.append("203.0.113.7")


def test_drift_is_reported_planned_and_fixed(app, network, livekit):
    sid = network.add_number(NUMBER)
    assert provision(app).exit_code == 0
    old_rule_id = only_rule(livekit).sip_dispatch_rule_id
    make_drift(network, livekit, sid)
    twilio_before, livekit_before = len(twilio_changes(network)), len(livekit_changes(livekit))

    check = provision(app, "--check")
    dry = provision(app, "--dry-run")

    assert check.exit_code == 1
    assert "VoiceUrl is https://console.example.com/voice, should be " \
           f"{PUBLIC_BASE_URL}/twilio/voice" in check.output
    assert "room prefix is other, should be call" in check.output
    assert f"allowed address list is 203.0.113.7, should be {', '.join(ADDRESSES)}" in check.output
    assert "3 difference(s)" in check.output
    assert dry.exit_code == 0 and "dry run, nothing changed" in dry.output
    assert "replace LiveKit dispatch rule 'switchboard-callee'" in dry.output
    assert len(twilio_changes(network)) == twilio_before
    assert len(livekit_changes(livekit)) == livekit_before

    fixed = provision(app)

    assert fixed.exit_code == 0, fixed.output
    assert [r.form.to_dict() for r in twilio_changes(network)[twilio_before:]] == [NUMBER_FORM]
    trunk_id = only_trunk(livekit).sip_trunk_id
    assert livekit_changes(livekit)[livekit_before:] == [
        ("UpdateSIPInboundTrunk", {"sip_trunk_id": trunk_id, "update": {
            "allowed_addresses": {"set": list(ADDRESSES)},
        }}),
        ("DeleteSIPDispatchRule", {"sip_dispatch_rule_id": old_rule_id}),
        ("CreateSIPDispatchRule", {"dispatch_rule": {
            "name": "switchboard-callee", "trunk_ids": [trunk_id],
            "rule": {"dispatch_rule_callee": {"room_prefix": "call"}},
            "room_config": {"empty_timeout": 1800, "departure_timeout": 1800},
        }}),
    ]
    assert provision(app, "--check").exit_code == 0


def test_sip_password_is_only_set_when_asked(app, network, livekit):
    network.add_number(NUMBER)
    assert provision(app).exit_code == 0
    only_trunk(livekit).auth_password = "changed-in-the-console"
    before = len(livekit_changes(livekit))

    assert "Up to date" in provision(app, "--only", "livekit").output
    assert len(livekit_changes(livekit)) == before

    rotated = provision(app, "--only", "livekit", "--rotate-sip-password")

    assert rotated.exit_code == 0, rotated.output
    trunk = only_trunk(livekit)
    assert livekit_changes(livekit)[before:] == [
        ("UpdateSIPInboundTrunk", {"sip_trunk_id": trunk.sip_trunk_id, "update": {
            "auth_password": SIP_PASSWORD,
        }}),
    ]
    assert trunk.auth_password == SIP_PASSWORD


def test_trunk_with_numbers_is_replaced_and_the_rule_rebound(app, network, livekit):
    network.add_number(NUMBER)
    assert provision(app).exit_code == 0
    old_trunk = only_trunk(livekit)
    old_trunk_id, old_rule_id = old_trunk.sip_trunk_id, only_rule(livekit).sip_dispatch_rule_id
    old_trunk.numbers.append(NUMBER)
    before = len(livekit_changes(livekit))

    result = provision(app, "--only", "livekit")

    assert result.exit_code == 0, result.output
    new_trunk_id = only_trunk(livekit).sip_trunk_id
    assert [m for m, _ in livekit_changes(livekit)[before:]] == [
        "DeleteSIPDispatchRule", "DeleteSIPTrunk", "CreateSIPInboundTrunk", "CreateSIPDispatchRule",
    ]
    assert livekit_changes(livekit)[before][1] == {"sip_dispatch_rule_id": old_rule_id}
    assert livekit_changes(livekit)[before + 1][1] == {"sip_trunk_id": old_trunk_id}
    assert list(only_rule(livekit).trunk_ids) == [new_trunk_id] != [old_trunk_id]


def test_missing_settings_are_named(build, network, livekit):
    app = build(twilio_auth_token="", twilio_phone_number="", livekit_sip_username="",
                livekit_sip_password="")

    result = provision(app)

    assert result.exit_code == 2
    for name in ("TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER",
                 "LIVEKIT_SIP_USERNAME", "LIVEKIT_SIP_PASSWORD"):
        assert name in result.output
    assert network.rest_log == [] and livekit.requests == []


def test_unconfigured_livekit_is_named_unless_left_out(build, network, livekit):
    app = build(livekit_url="", livekit_api_key="", livekit_api_secret="")
    network.add_number(NUMBER)

    refused = provision(app)
    twilio_only = provision(app, "--only", "twilio")

    assert refused.exit_code == 2
    assert all(name in refused.output
               for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"))
    assert twilio_only.exit_code == 0, twilio_only.output
    assert [r.form.to_dict() for r in twilio_changes(network)] == [NUMBER_FORM]
    assert livekit.requests == []


def test_a_local_public_base_url_is_refused(build):
    result = provision(build(public_base_url="http://localhost:8000"), "--only", "twilio")

    assert result.exit_code == 2
    assert "PUBLIC_BASE_URL: http://localhost:8000 cannot be reached by Twilio" in result.output


def test_number_not_on_the_account_is_a_clear_error(app, network, livekit):
    network.add_number("+15550199999")

    result = provision(app)

    assert result.exit_code == 2
    assert ("TWILIO_PHONE_NUMBER: +15550100000 is not a phone number of this Twilio account"
            in result.output)
    assert twilio_changes(network) == [] and livekit_changes(livekit) == []


def test_empty_allowed_addresses_warn(build, network):
    network.add_number(NUMBER)

    result = provision(build(livekit_allowed_addresses=()), "--dry-run")

    assert result.exit_code == 0
    assert "warning: LIVEKIT_ALLOWED_ADDRESSES is empty" in result.stderr
    assert "allowed addresses any address" in result.output


def test_livekit_failure_stops_with_its_message(app, network, livekit):
    network.add_number(NUMBER)
    livekit.fail_next("CreateSIPInboundTrunk", code="permission_denied", status=403)

    result = provision(app)

    assert result.exit_code == 2
    assert "LiveKit CreateSIPInboundTrunk failed (permission_denied)" in result.output
    assert "done: update Twilio number" in result.output
    assert livekit.calls("CreateSIPDispatchRule") == []


def test_check_and_dry_run_together_are_a_usage_error(app):
    assert provision(app, "--check", "--dry-run").exit_code == 2


def test_a_trunk_without_the_ringing_timeout_is_rebuilt_with_it(app, network, livekit):
    network.add_number(NUMBER)
    assert provision(app).exit_code == 0
    [trunk] = livekit.trunks.values()
    trunk.ClearField("ringing_timeout")  # made by hand, or by an earlier release
    check = provision(app, "--check")
    assert check.exit_code != 0 and "ringing timeout is unset, should be 55s" in check.output
    assert provision(app).exit_code == 0
    [after] = livekit.trunks.values()
    assert after.sip_trunk_id == trunk.sip_trunk_id and after.ringing_timeout.seconds == ROOM_DIAL_TIMEOUT_SECONDS - 5
    assert sorted(after.allowed_addresses) == sorted(ADDRESSES) and after.auth_password == SIP_PASSWORD
    assert provision(app, "--check").exit_code == 0


def test_emptying_the_allowed_addresses_takes_effect(build, network, livekit):
    network.add_number(NUMBER)
    assert provision(build()).exit_code == 0
    [trunk] = livekit.trunks.values()
    assert sorted(trunk.allowed_addresses) == sorted(ADDRESSES)

    result = provision(build(livekit_allowed_addresses=()))
    assert result.exit_code == 0, result.output
    [after] = livekit.trunks.values()
    assert after.sip_trunk_id == trunk.sip_trunk_id and list(after.allowed_addresses) == []
    assert after.auth_username == "switchboard" and after.auth_password == SIP_PASSWORD
    assert provision(build(livekit_allowed_addresses=()), "--check").exit_code == 0


def test_an_empty_list_update_is_refused_as_livekit_refuses_it(livekit):
    from livekit.protocol import models, sip

    livekit.trunks["ST_x"] = sip.SIPInboundTrunkInfo(sip_trunk_id="ST_x", allowed_addresses=["192.0.2.1"])
    update = sip.SIPInboundTrunkUpdate()
    update.allowed_addresses.CopyFrom(models.ListUpdate())
    from app.sandbox.livekit_server import TwirpFailure

    with pytest.raises(TwirpFailure, match="unsupported list update operation"):
        livekit._update_trunk(sip.UpdateSIPInboundTrunkRequest(sip_trunk_id="ST_x", update=update))
    update.allowed_addresses.CopyFrom(models.ListUpdate(clear=True))
    livekit._update_trunk(sip.UpdateSIPInboundTrunkRequest(sip_trunk_id="ST_x", update=update))
    assert list(livekit.trunks["ST_x"].allowed_addresses) == []


def test_another_trunk_without_numbers_is_named_before_anything_changes(app, network, livekit):
    from livekit.protocol import sip

    network.add_number(NUMBER)
    # A trunk from an earlier set-up, as LiveKit keeps it.
    livekit.trunks["ST_old"] = sip.SIPInboundTrunkInfo(sip_trunk_id="ST_old", name="old-pbx")
    result = provision(app)
    assert result.exit_code != 0
    assert "ST_old (old-pbx)" in result.output and "no numbers" in result.output
    assert livekit_changes(livekit) == []


def test_livekit_refuses_a_second_trunk_without_numbers(livekit):
    from livekit.protocol import sip

    from app.sandbox.livekit_server import TwirpFailure

    livekit._create_trunk(sip.CreateSIPInboundTrunkRequest(trunk=sip.SIPInboundTrunkInfo(name="a")))
    with pytest.raises(TwirpFailure, match="Conflicting inbound SIP Trunks"):
        livekit._create_trunk(sip.CreateSIPInboundTrunkRequest(trunk=sip.SIPInboundTrunkInfo(name="b")))


def test_the_twiml_app_of_web_callers_is_created_then_found_by_name_and_the_api_key_made_only_when_asked(
        build, network):
    network.add_number(NUMBER)
    app = build(web_call_origins=("https://shop.example",))

    first = provision(app, "--only", "web")
    assert first.exit_code == 0, first.output
    assert "TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET are unset" in first.output
    [made] = network.applications.values()
    assert made["friendly_name"] == "switchboard-web-callers"
    assert made["voice_url"] == PUBLIC_BASE_URL + "/twilio/voice" and made["voice_method"] == "POST"
    assert made["status_callback"] == PUBLIC_BASE_URL + "/twilio/status"
    assert f"set TWILIO_TWIML_APP_SID={made['sid']}" in first.output
    assert network.api_keys == {}  # never made unasked: its secret would be shown once and lost

    keyed = provision(app, "--only", "web", "--create-api-key")
    [key] = network.api_keys.values()
    assert keyed.exit_code == 0, keyed.output
    assert f"TWILIO_API_KEY_SID={key['sid']} TWILIO_API_KEY_SECRET={key['secret']}" in keyed.output

    settled = build(web_call_origins=("https://shop.example",), twilio_twiml_app_sid=made["sid"],
                    twilio_api_key_sid=key["sid"], twilio_api_key_secret=key["secret"])
    again = provision(settled, "--only", "web")
    assert again.exit_code == 0 and "Up to date" in again.output, again.output
    assert len(network.applications) == 1 and len(network.api_keys) == 1
    twice = provision(settled, "--only", "web", "--create-api-key")
    assert twice.exit_code == 2 and "TWILIO_API_KEY_SID is already set" in twice.output

    made["voice_url"] = "https://old.example/voice"
    drift = provision(settled, "--only", "web", "--check")
    assert drift.exit_code == 1 and "VoiceUrl is https://old.example/voice" in drift.output


def test_web_calls_are_left_alone_when_no_setting_asks_for_them(app, network):
    network.add_number(NUMBER)
    result = provision(app)
    assert result.exit_code == 0, result.output
    assert network.applications == {} and not [r for r in network.rest_log if "Applications" in r.path]
