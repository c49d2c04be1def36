"""The Twilio gateway, through twilio-python, against the simulated Twilio."""

import logging
import time

import pytest
import requests
import responses

from app.gateways.http_settings import environment_read_once
from app.gateways.twilio import (
    BaseUrlHttpClient,
    NumberConfig,
    TwilioError,
    TwilioGateway,
)
from app.sandbox.twilio_network import TwilioNetwork
from app.sandbox.twilio_server import TwilioStandIn

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "gateway-secret-token"
BASE = "https://switchboard.test"
NUMBER = "+15550001111"
AGENT = "sip:alice@agents.sip.test"


class RecordingTransport:
    """Webhook transport: hold music for TwiML requests, an empty 204 for callbacks."""

    def __init__(self):
        self.sent = []

    def __call__(self, url, params, headers, answered=None):
        self.sent.append((url, params))
        if not url.endswith("/status"):
            return 200, "text/xml", '<Response><Play loop="0">https://cdn.test/m.mp3</Play></Response>'
        return 204, "text/plain", ""


@pytest.fixture
def transport():
    return RecordingTransport()


@pytest.fixture
def network(transport):
    network = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, transport)
    network.add_number(NUMBER, voice_url="https://old.test/voice")
    return network


@pytest.fixture
def mocked(network):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        network.install(rsps)
        yield rsps


@pytest.fixture
def gateway(mocked):
    gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, timeout_seconds=2)
    yield gateway
    gateway.close()


def place_agent_call(gateway):
    return gateway.create_call(AGENT, NUMBER, BASE + "/agent", BASE + "/status", 25)


def test_create_call_sends_the_expected_form(gateway, network):
    sid = place_agent_call(gateway)

    request = network.rest_log[-1]
    assert (request.method, request.path) == (
        "POST", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json")
    form = request.form
    assert (form["To"], form["From"], form["Url"]) == (AGENT, NUMBER, BASE + "/agent")
    assert (form["StatusCallback"], form["Timeout"]) == (BASE + "/status", "25")
    assert form.getlist("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
    assert network.call(sid).status == "queued"


def test_redirect_call(gateway, network):
    sid = place_agent_call(gateway)
    network.answer(sid)

    assert gateway.redirect_call(sid, BASE + "/hold") is True
    assert network.rest_log[-1].form["Url"] == BASE + "/hold"

    network.call(sid).hangup()
    assert gateway.redirect_call(sid, BASE + "/hold") is False


def test_end_call_cancels_a_ringing_call_with_one_request(gateway, network):
    sid = place_agent_call(gateway)
    before = len(network.rest_log)

    assert gateway.end_call(sid) is True

    assert [r.form["Status"] for r in network.rest_log[before:]] == ["canceled"]
    assert network.call(sid).status == "canceled"


def test_end_call_completes_an_answered_call(gateway, network):
    sid = place_agent_call(gateway)
    network.answer(sid)
    before = len(network.rest_log)

    assert gateway.end_call(sid) is True

    assert [r.form["Status"] for r in network.rest_log[before:]] == ["canceled", "completed"]
    assert network.call(sid).status == "completed"
    assert gateway.end_call(sid) is False


def test_find_and_update_number(gateway, network):
    config = gateway.find_number(NUMBER)
    assert config == NumberConfig(
        sid=config.sid, phone_number=NUMBER, voice_url="https://old.test/voice",
        voice_method="POST", status_callback=None, voice_fallback_url=None)
    assert gateway.find_number("+15557770000") is None

    updated = gateway.update_number(
        config.sid, BASE + "/voice", BASE + "/status", BASE + "/fallback")

    form = network.rest_log[-1].form
    assert (form["VoiceUrl"], form["VoiceMethod"]) == (BASE + "/voice", "POST")
    assert (form["StatusCallback"], form["VoiceFallbackUrl"]) == (BASE + "/status", BASE + "/fallback")
    assert updated.voice_url == BASE + "/voice"
    assert network.number(NUMBER)["voice_fallback_url"] == BASE + "/fallback"


def test_rest_errors_never_carry_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST,
                 f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CAboom.json",
                 json={"code": 20500, "message": f"internal error near {AUTH_TOKEN}",
                       "status": 500},
                 status=500)
        gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN)
        try:
            with pytest.raises(TwilioError) as raised:
                gateway.redirect_call("CAboom", BASE + "/hold")
        finally:
            gateway.close()
    assert (raised.value.status, raised.value.code) == (500, 20500)
    assert AUTH_TOKEN not in str(raised.value)
    assert AUTH_TOKEN not in caplog.text


def test_wrong_credentials_are_a_twilio_error(mocked):
    gateway = TwilioGateway(ACCOUNT_SID, "not-the-token")
    try:
        with pytest.raises(TwilioError) as raised:
            gateway.find_number(NUMBER)
        assert (raised.value.status, raised.value.code) == (401, 20003)
    finally:
        gateway.close()


@pytest.mark.parametrize("failure, words", [
    (requests.ConnectTimeout("slow"), "timed out"),
    (requests.ConnectionError("refused"), "could not reach Twilio"),
])
def test_network_failures_are_twilio_errors(failure, words):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json",
                 body=failure)
        gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN)
        try:
            with pytest.raises(TwilioError, match=words) as raised:
                place_agent_call(gateway)
            assert raised.value.status is None
        finally:
            gateway.close()


def test_base_url_rewrite():
    client = BaseUrlHttpClient("http://127.0.0.1:9999/twilio/")
    try:
        assert client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json?x=1") == \
            "http://127.0.0.1:9999/twilio/2010-04-01/Accounts/AC1/Calls.json?x=1"
        assert client.rewrite("https://example.com/a") == "https://example.com/a"
    finally:
        client.session.close()


def test_base_url_override_over_real_http(network, transport):
    with TwilioStandIn(network) as stand_in:
        gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, api_base_url=stand_in.url)
        try:
            sid = place_agent_call(gateway)
            assert gateway.find_number(NUMBER).phone_number == NUMBER
            deadline = time.monotonic() + 2
            while not transport.sent and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            gateway.close()

    assert [r.path.rsplit("/", 1)[-1] for r in network.rest_log] == [
        "Calls.json", "IncomingPhoneNumbers.json"]
    # The stand-in delivered the queued 'initiated' callback on its own.
    url, params = transport.sent[0]
    assert (url, params["CallSid"], params["CallStatus"]) == (BASE + "/status", sid, "initiated")
    assert network.errors == []


def test_the_environments_proxy_settings_are_read_once_per_origin(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "direct.test")
    session = environment_read_once(requests.Session())
    try:
        def proxies(url, own=None):
            return session.merge_environment_settings(url, own or {}, None, None, None)["proxies"].get("https")

        assert proxies("https://api.twilio.com/2010-04-01/Calls.json") == "http://proxy.test:3128"
        assert proxies("https://direct.test/a") is None
        # Read at the first request to an origin, then kept: the process's environment does not change.
        monkeypatch.setenv("HTTPS_PROXY", "http://other.test:3128")
        assert proxies("https://api.twilio.com/2010-04-01/Calls.json?x=1") == "http://proxy.test:3128"
        # What is handed out is a copy, and a request's own proxies are merged as requests merges them.
        session.merge_environment_settings("https://api.twilio.com/a", {}, None, None, None)["proxies"]["https"] = "x"
        assert proxies("https://api.twilio.com/b") == "http://proxy.test:3128"
        assert proxies("https://api.twilio.com/c", {"https": "http://mine.test:1"}) == "http://mine.test:1"
    finally:
        session.close()


def test_the_gateway_goes_through_the_environments_proxy(network, monkeypatch):
    with TwilioStandIn(network) as stand_in:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # nothing listens there
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, api_base_url=stand_in.url)
        try:
            with pytest.raises(TwilioError, match="could not reach Twilio: ProxyError"):
                place_agent_call(gateway)
        finally:
            gateway.close()
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, api_base_url=stand_in.url)
        try:
            assert place_agent_call(gateway).startswith("CA")
        finally:
            gateway.close()
        # No proxy for http, and NO_PROXY naming other hosts: requests' answer for the stand-in is {"no": ...}.
        monkeypatch.delenv("HTTP_PROXY")
        monkeypatch.setenv("NO_PROXY", "internal.example")
        reads = []
        read = requests.sessions.get_environ_proxies
        monkeypatch.setattr(requests.sessions, "get_environ_proxies", lambda *a, **k: reads.append(a) or read(*a, **k))
        gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, api_base_url=stand_in.url)
        try:
            assert place_agent_call(gateway).startswith("CA")
            assert place_agent_call(gateway).startswith("CA")
            assert gateway.find_number(NUMBER).phone_number == NUMBER
        finally:
            gateway.close()
    # Read at the first request to the stand-in only: twilio-python hands requests a proxies dict of its own,
    # which requests would fill in from the environment, making every later request look like one with proxies.
    assert len(reads) == 1
    assert [r.path.rsplit("/", 1)[-1] for r in network.rest_log] == ["Calls.json"] * 3 + ["IncomingPhoneNumbers.json"]


def test_stand_in_checks_basic_auth(network):
    with TwilioStandIn(network) as stand_in:
        gateway = TwilioGateway(ACCOUNT_SID, "wrong-token", api_base_url=stand_in.url)
        try:
            with pytest.raises(TwilioError) as raised:
                place_agent_call(gateway)
        finally:
            gateway.close()
    assert raised.value.status == 401
    assert network.calls == {}
