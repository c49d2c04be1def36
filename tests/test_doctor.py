"""`flask doctor` against the stand-ins: it passes on a correct set-up and names each fault on a broken one."""

from dataclasses import replace

import pytest
import responses
from livekit.protocol import sip

from app.commands.provisioning import doctor_command, provision_command
from app.sandbox.twilio_network import TwilioNetwork
from tests.browser_support import LiveServer
from tests.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN


def no_webhooks(url, params, headers):
    raise AssertionError(f"the doctor must not place calls ({url})")


@pytest.fixture
def world(make_app, centre_settings):
    """The service served over HTTP at its PUBLIC_BASE_URL, Twilio's REST API simulated, LiveKit and the LLM on loopback."""
    server = LiveServer()
    settings = replace(centre_settings, public_base_url=server.url)
    app = make_app(settings)
    server.start(app)
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            rsps.add_passthru(server.url)
            rsps.add_passthru("http://127.0.0.1")
            network = TwilioNetwork(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, no_webhooks)
            network.install(rsps)
            network.add_number(settings.twilio_phone_number)
            yield app, settings, network
    finally:
        server.stop()


def provisioned(app, settings, network):
    """As `flask provision` leaves the accounts (its Twilio half refuses a loopback PUBLIC_BASE_URL, so set here)."""
    base = settings.public_base_url
    [number] = network.numbers.values()
    number.update(voice_url=base + "/twilio/voice", status_callback=base + "/twilio/status",
                  voice_fallback_url=base + "/twilio/fallback")
    result = app.test_cli_runner().invoke(provision_command, ["--only", "livekit"])
    assert result.exit_code == 0, result.output


def doctor(app):
    result = app.test_cli_runner().invoke(doctor_command, [])
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith(("ok", "FAIL"))}
    return result, lines


def test_a_correct_setup_passes_every_check(world):
    app, settings, network = world
    provisioned(app, settings, network)
    result, lines = doctor(app)
    assert result.exit_code == 0, result.output
    assert set(lines) == {"twilio", "public", "livekit", "hold", "llm", "transcription", "web"}
    assert "off:" in lines["web"]
    assert all(line.startswith("ok") for line in lines.values())
    assert "All checks passed." in result.output
    assert "openai gpt-4o-mini answered in" in lines["llm"] and "audio/" in lines["hold"]


def test_an_unprovisioned_account_names_the_number_and_livekit(world):
    app, settings, network = world
    result, lines = doctor(app)
    assert result.exit_code == 1
    assert lines["twilio"].startswith("FAIL") and "voice URL is unset" in lines["twilio"]
    assert lines["livekit"].startswith("FAIL") and "create LiveKit inbound trunk" in lines["livekit"]
    assert lines["public"].startswith("ok") and "plain http" in lines["public"]
    assert "2 check(s) failed: twilio number, livekit" in result.output


def test_a_service_that_does_not_accept_our_signature_is_named(world, make_app):
    app, settings, network = world
    provisioned(app, settings, network)
    other = make_app(replace(settings, twilio_auth_token="another-token-0123456789abcdef"))
    result, lines = doctor(other)
    assert lines["public"].startswith("FAIL") and "answered 403" in lines["public"]


def test_a_conflicting_trunk_an_unreachable_llm_and_hold_music_that_is_not_audio(world, make_app, llm, livekit):
    app, settings, network = world
    provisioned(app, settings, network)
    livekit.trunks["ST_old"] = sip.SIPInboundTrunkInfo(sip_trunk_id="ST_old", name="old-pbx")
    llm.mode = "error"
    broken = make_app(replace(settings, hold_music_url=settings.public_base_url + "/health"))
    result, lines = doctor(broken)
    assert result.exit_code == 1
    assert "ST_old (old-pbx)" in lines["livekit"]
    assert lines["llm"].startswith("FAIL") and "did not answer" in lines["llm"]
    assert lines["hold"].startswith("FAIL") and "not audio" in lines["hold"]


def test_refused_credentials_are_named_for_twilio_and_livekit(world, make_app):
    app, settings, network = world
    provisioned(app, settings, network)
    wrong = make_app(replace(settings, twilio_auth_token="a-wrong-twilio-token-0123456789",
                             livekit_api_secret="a-wrong-livekit-secret-0123456789abcdef"))
    result, lines = doctor(wrong)
    assert result.exit_code == 1
    assert lines["twilio"].startswith("FAIL") and "Twilio refused the request" in lines["twilio"]
    assert "20003" in lines["twilio"]
    assert lines["livekit"].startswith("FAIL") and "LiveKit refused the request" in lines["livekit"]
    assert "a-wrong" not in result.output


def test_web_calls_are_checked_once_any_of_their_settings_is_given(world, make_app):
    app, settings, network = world
    provisioned(app, settings, network)
    half = make_app(replace(settings, web_call_origins=("https://shop.example",)))
    result, lines = doctor(half)
    assert lines["web"].startswith("FAIL") and "TWILIO_API_KEY_SID, TWILIO_API_KEY_SECRET" in lines["web"]

    key_sid, secret = network.add_api_key()
    app_sid = network.add_application("switchboard-web-callers", settings.public_base_url + "/twilio/voice")
    ready = make_app(replace(settings, twilio_api_key_sid=key_sid, twilio_api_key_secret=secret,
                             twilio_twiml_app_sid=app_sid))
    result, lines = doctor(ready)
    assert lines["web"].startswith("ok") and app_sid in lines["web"], lines["web"]
    assert secret not in result.output

    network.applications[app_sid]["voice_url"] = "https://old.example/voice"
    result, lines = doctor(ready)
    assert lines["web"].startswith("FAIL") and "Voice URL is https://old.example/voice" in lines["web"]
    del network.api_keys[key_sid]
    network.applications[app_sid]["voice_url"] = settings.public_base_url + "/twilio/voice"
    result, lines = doctor(ready)
    assert lines["web"].startswith("FAIL") and "is not an API key of this account" in lines["web"]


def test_web_calls_name_their_captcha_and_the_doctor_asks_the_provider_for_its_secret(world, make_app):
    from app.sandbox.captcha_server import CaptchaStandIn

    app, settings, network = world
    provisioned(app, settings, network)
    key_sid, secret = network.add_api_key()
    app_sid = network.add_application("switchboard-web-callers", settings.public_base_url + "/twilio/voice")
    web = replace(settings, twilio_api_key_sid=key_sid, twilio_api_key_secret=secret, twilio_twiml_app_sid=app_sid)
    result, lines = doctor(make_app(web))
    assert lines["web"].startswith("ok") and "no CAPTCHA (production asks for WEB_CALL_CAPTCHA)" in lines["web"]
    with CaptchaStandIn() as provider:
        turnstile = replace(web, web_call_captcha="turnstile", web_call_captcha_site_key="site-key",
                            web_call_captcha_secret=provider.secret, web_call_captcha_verify_url=provider.verify_url)
        result, lines = doctor(make_app(turnstile))
        assert lines["web"].startswith("ok") and "CAPTCHA turnstile: it knows the secret" in lines["web"]
        assert provider.verified[-1]["secret"] == provider.secret
        result, lines = doctor(make_app(replace(turnstile, web_call_captcha_secret="a-wrong-captcha-secret")))
        assert lines["web"].startswith("FAIL")
        assert "refused WEB_CALL_CAPTCHA_SECRET (invalid-input-secret)" in lines["web"]
        assert "a-wrong-captcha-secret" not in result.output
    result, lines = doctor(make_app(turnstile))  # the provider is gone
    assert lines["web"].startswith("FAIL") and "did not answer (ConnectionError)" in lines["web"]
