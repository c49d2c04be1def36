"""Calling from the website: a visitor's browser takes a token from /call/token and calls the TwiML App; the
Twilio stand-in checks the token as Twilio does and asks /twilio/voice with From=client:<identity>, and from
there the visitor is a caller like any other (docs/web-callers.md)."""

from __future__ import annotations

from dataclasses import replace

import jwt
import pytest
from sqlalchemy import select

from app.models import Event, WebCaller
from app.sandbox.captcha_server import CaptchaStandIn
from app.sandbox.twilio_network import AccessTokenRefused
from tests.transfer_helpers import (
    ALICE,
    BOB,
    agent_activity,
    call_row,
    hears_summary,
    in_room,
    longest_wait_turn,
    transfer_row,
)

SHOP = "https://shop.example"


@pytest.fixture
def web(centre):
    centre.enable_web_calls(origins=(SHOP,))
    return centre


def _visitor(centre, identity: str) -> WebCaller:
    with centre.db() as session:
        visitor = session.scalar(select(WebCaller).where(WebCaller.identity == identity))
        session.expunge(visitor)
        return visitor


def _events(centre, sid: str, name: str) -> list[dict]:
    call_id = call_row(centre, sid).id
    with centre.db() as session:
        return [e.detail for e in session.scalars(select(Event).where(Event.call_id == call_id, Event.name == name))]


def test_a_web_caller_goes_through_the_ivr_an_agent_and_a_warm_transfer_with_a_summary(web):
    caller = web.web_call(name="Ann Lee", reason="Charged twice for my internet bill")
    first = web.network.sent("twiml")[0]
    # What Twilio sends for a Voice SDK client's call: the App's Voice URL, From and Caller client:<identity>.
    assert first.url.endswith("/twilio/voice") and first.params["Direction"] == "inbound"
    assert first.params["From"].startswith("client:web_") and first.params["Caller"] == first.params["From"]
    assert first.params["To"] == ""
    # The same IVR as a phone caller: the page's keypad answers it.
    assert "tell us why you are calling" in caller.heard_text
    caller.press("1")
    alice = web.agent_phone(ALICE)
    web.network.answer(alice.sid)
    assert "Call from the website, for billing" in alice.heard_text  # never the identity's digits
    assert "The caller said: Charged twice for my internet bill" in alice.heard_text
    alice.press("1")
    assert in_room(caller, str(call_row(web, caller.sid).id))
    caller.transcribe("my card number is 4111 1111 1111 1111", track="inbound_track")
    alice.transcribe("I see the duplicate charge, let me get billing to refund it", track="inbound_track")

    alice.press_star()
    alice.press("2102#")
    assert caller.waiting_on.tag == "Play"  # hold music, as for any caller
    bob = web.agent_phone(BOB)
    web.network.answer(bob.sid)
    hears_summary(web, bob)
    assert "Here is the summary." in bob.heard_text and "4111" not in bob.heard_text
    bob.press("1")
    alice.press_star()
    alice.press("2")
    web.network.run_pending()
    call = call_row(web, caller.sid)
    assert in_room(caller, str(call.id)) and in_room(bob, str(call.id))
    transfer = transfer_row(web)
    assert transfer.state == "completed" and transfer.summary_source == "llm"
    assert agent_activity(web, "102") == "on_call"

    assert call.from_number.startswith("client:web_") and call.ivr_reason == "Charged twice for my internet bill"
    timeline = web.timeline(caller.sid)
    assert timeline[:2] == ["call_received", "web_caller"] and "transfer_completed" in timeline
    (named,) = _events(web, caller.sid, "web_caller")
    assert named == {"visitor_name": "Ann Lee", "reason": "Charged twice for my internet bill"}
    assert _visitor(web, call.from_number[len("client:"):]).call_id == call.id


def test_the_token_is_short_lived_bound_to_one_new_identity_and_checked_by_twilio(web):
    settings = web.app.config["SETTINGS"]
    answer = web.web_token().get_json()
    claims = jwt.decode(answer["token"], settings.twilio_api_key_secret, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims["iss"] == settings.twilio_api_key_sid and claims["sub"] == settings.twilio_account_sid
    assert claims["grants"] == {"identity": answer["identity"],
                                "voice": {"outgoing": {"application_sid": settings.twilio_twiml_app_sid}}}
    issued = int(web.clock.now().timestamp())
    assert claims["exp"] - issued == settings.web_call_token_ttl_seconds == answer["expires_in"] == 300
    assert "nbf" not in claims  # a service clock ahead of Twilio's cannot make it "not valid yet"
    assert web.web_token().get_json()["identity"] != answer["identity"]  # a new visitor each time

    tampered = jwt.encode({**claims, "grants": {**claims["grants"], "identity": "someone_else"}}, "a-guessed-secret-of-32-characters!",
                          algorithm="HS256")
    with pytest.raises(AccessTokenRefused) as refused:
        web.network.client_call(tampered)
    assert refused.value.code == 20101
    web.network.advance(301)
    with pytest.raises(AccessTokenRefused) as refused:
        web.network.client_call(answer["token"])
    assert refused.value.code == 20104
    assert not web.network.sent("twiml")  # Twilio asked nothing of the service for either


def test_a_visitor_flooding_the_token_endpoint_is_told_when_to_come_back(web):
    web.app.config["SETTINGS"] = replace(web.app.config["SETTINGS"], web_call_tokens_per_address=3)
    web.app.extensions.pop("web_call_limit", None)
    assert [web.web_token(address="198.51.100.9").status_code for _ in range(3)] == [200, 200, 200]
    refused = web.web_token(address="198.51.100.9")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many calls from your address" in refused.get_json()["error"]
    assert web.web_token(address="198.51.100.10").status_code == 200  # another address is not affected
    with web.db() as session:
        assert len(session.scalars(select(WebCaller)).all()) == 4  # the refused one recorded nothing


def test_an_ipv6_client_is_counted_by_its_64_not_by_each_address(web):
    # A host may take any address of the /64 it is given: one count for the whole network.
    web.app.config["SETTINGS"] = replace(web.app.config["SETTINGS"], web_call_tokens_per_address=2)
    web.app.extensions.pop("web_call_limit", None)
    own = ("2001:db8:7:1::1", "2001:db8:7:1:ffff:abcd:1:2")
    assert [web.web_token(address=address).status_code for address in own] == [200, 200]
    assert web.web_token(address="2001:db8:7:1:9::9").status_code == 429
    assert web.web_token(address="2001:db8:7:2::1").status_code == 200  # the next /64 is another subscriber's


def test_an_ipv6_network_moving_through_its_64s_is_held_by_its_56(web):
    # A home or office given a /56 holds 256 /64s: each is a new client to the /64's counter, so the /56 is
    # counted too, with eight times one client's allowance.
    web.app.config["SETTINGS"] = replace(web.app.config["SETTINGS"], web_call_tokens_per_address=2)
    web.app.extensions.pop("web_call_limit", None)
    one_each = [f"2001:db8:7:{n:x}::1" for n in range(16)]  # 16 /64s of 2001:db8:7::/56
    assert {web.web_token(address=address).status_code for address in one_each} == {200}
    refused = web.web_token(address="2001:db8:7:ff::1")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert web.web_token(address="2001:db8:7:100::1").status_code == 200  # the next /56
    assert web.web_token(address="203.0.113.50").status_code == 200  # IPv4 has no such network


def test_only_the_service_and_the_listed_sites_get_a_token_and_cors_names_only_them(web):
    refused = web.web_token(origin="https://evil.example")
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    no_origin = web.client.post("/call/token", json={}, base_url=web.public_base_url)
    assert no_origin.status_code == 403
    listed = web.web_token(origin=SHOP)
    assert listed.status_code == 200 and listed.headers["Access-Control-Allow-Origin"] == SHOP
    assert listed.headers["Cache-Control"] == "no-store"
    own = web.web_token()
    assert own.status_code == 200 and "Access-Control-Allow-Origin" not in own.headers
    preflight = web.client.options("/call/token", headers={"Origin": SHOP}, base_url=web.public_base_url)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == SHOP
    assert web.client.options("/call/token", headers={"Origin": "https://evil.example"},
                              base_url=web.public_base_url).status_code == 403


def test_the_visitors_name_and_reason_are_stored_clean(web):
    answer = web.web_token(name="Ann\x01\x1b[31m Lee 4111 1111 1111 1111", reason="  my\x07 card\r\nis 4111-1111-1111-1111 ")
    visitor = _visitor(web, answer.get_json()["identity"])
    assert visitor.name == "Ann[31m Lee [card number removed]"
    assert visitor.reason == "my card is [card number removed]"
    assert web.web_token(name="x" * 2001).status_code == 400
    assert web.web_token(name="a" * 500).status_code == 200  # cut, once cleaned, to what is kept


def test_the_token_is_never_logged(web, capsys):
    token = web.web_token().get_json()["token"]
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err


def test_a_web_caller_is_not_offered_a_callback_they_have_no_number_for(web):
    web.app.config["SETTINGS"] = replace(web.app.config["SETTINGS"], outbound_call_allow=("+1",))
    with web.db() as session:
        from app.models import Agent

        for agent in session.scalars(select(Agent)):
            agent.presence = "offline"
    caller = web.web_call()
    caller.press("1")
    web.network.advance(longest_wait_turn(web) + 1)  # seen at the first hold turn past the longest wait
    assert "All of our agents are still busy. To leave a message, press 1. To keep holding" in caller.heard_text
    assert "call you back" not in caller.heard_text
    caller.press("2")
    assert caller.live and _events(web, caller.sid, "callback_not_possible")


def test_with_web_calling_off_the_page_says_so_and_no_token_is_given(centre):
    page = centre.client.get("/call", base_url=centre.public_base_url)
    assert page.status_code == 503
    assert b"TWILIO_API_KEY_SID, TWILIO_API_KEY_SECRET, TWILIO_TWIML_APP_SID missing" in page.data
    refused = centre.web_token()
    assert refused.status_code == 503 and "not set up" in refused.get_json()["error"]


def test_the_page_may_be_framed_by_the_listed_sites_and_reaches_twilio(web):
    page = web.client.get("/call", base_url=web.public_base_url)
    assert page.status_code == 200 and b'id="call-button"' in page.data
    policy = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {SHOP}" in policy and "wss://*.twilio.com" in policy
    assert "X-Frame-Options" not in page.headers
    # Every other page keeps the base policy.
    assert web.client.get("/login").headers["X-Frame-Options"] == "DENY"
    snippet = web.client.get("/call/embed.js", base_url=web.public_base_url)
    assert snippet.mimetype == "text/javascript" and f'"{web.public_base_url}/call"'.encode() in snippet.data


@pytest.fixture
def captcha(web):
    """Turnstile in front of the token (WEB_CALL_CAPTCHA=turnstile), its siteverify the stand-in's."""
    with CaptchaStandIn() as provider:
        web.app.config["SETTINGS"] = replace(
            web.app.config["SETTINGS"], web_call_captcha="turnstile", web_call_captcha_site_key="0x4AAA-site-key",
            web_call_captcha_secret=provider.secret, web_call_captcha_verify_url=provider.verify_url)
        yield provider


def _ask(web, captcha_answer: str | None, address: str = "203.0.113.8"):
    body = {"name": "Ann"} | ({"captcha": captcha_answer} if captcha_answer is not None else {})
    return web.client.post("/call/token", json=body, base_url=web.public_base_url,
                           headers={"Origin": web.public_base_url}, environ_base={"REMOTE_ADDR": address})


def test_with_a_captcha_only_a_visitor_the_provider_passes_gets_a_token_and_an_answer_is_good_once(web, captcha,
                                                                                                     caplog):
    assert _ask(web, None).status_code == 403  # no answer: the provider is not even asked
    assert captcha.verified == []
    refused = _ask(web, "made-up")
    assert refused.status_code == 403 and "CAPTCHA" in refused.get_json()["error"]
    answer = captcha.issue()
    assert _ask(web, answer).status_code == 200
    # Spent: the same answer again is refused, as the provider refuses a second siteverify of one token.
    assert _ask(web, answer).status_code == 403
    assert [(a["secret"], a["response"], a["remoteip"]) for a in captcha.verified] == [
        (captcha.secret, "made-up", "203.0.113.8"), (captcha.secret, answer, "203.0.113.8"),
        (captcha.secret, answer, "203.0.113.8")]
    # Why, in the provider's own words; the answer itself never reaches the log.
    refusals = [r.msg["error_codes"] for r in caplog.records
                if isinstance(r.msg, dict) and r.msg.get("event") == "web_call_captcha_refused"]
    assert refusals == [["invalid-input-response"], ["timeout-or-duplicate"]]
    assert answer not in caplog.text


def test_an_answer_older_than_five_minutes_is_refused(web):
    now = [1000.0]
    with CaptchaStandIn(now=lambda: now[0]) as provider:
        web.app.config["SETTINGS"] = replace(
            web.app.config["SETTINGS"], web_call_captcha="hcaptcha", web_call_captcha_site_key="site-key",
            web_call_captcha_secret=provider.secret, web_call_captcha_verify_url=provider.verify_url)
        fresh, stale = provider.issue(), provider.issue()
        now[0] += 301
        assert _ask(web, stale).status_code == 403
        now[0] -= 301
        assert _ask(web, fresh).status_code == 200


def test_a_captcha_provider_that_cannot_be_reached_lets_nobody_through(web, captcha):
    answer = captcha.issue()
    captcha.stop()
    assert _ask(web, answer).status_code == 403


def test_the_call_page_shows_the_providers_widget_and_allows_it_on_that_page_only(web, captcha):
    page = web.client.get("/call", base_url=web.public_base_url)
    html = page.get_data(as_text=True)
    assert '<div class="cf-turnstile web-call-check" data-sitekey="0x4AAA-site-key"></div>' in html
    assert '<script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer></script>' in html
    assert 'data-captcha-field="cf-turnstile-response"' in html and 'data-captcha-object="turnstile"' in html
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self' https://challenges.cloudflare.com"
    assert policy["frame-src"] == "https://challenges.cloudflare.com"
    assert "wss://*.twilio.com" in policy["connect-src"]
    assert "challenges.cloudflare.com" not in web.client.get("/login").headers["Content-Security-Policy"]


@pytest.mark.parametrize("name", ["hcaptcha", "recaptcha"])
def test_each_provider_has_its_own_widget_and_policy(web, name):
    from app.gateways.captcha import PROVIDERS

    provider = PROVIDERS[name]
    web.app.config["SETTINGS"] = replace(web.app.config["SETTINGS"], web_call_captcha=name,
                                         web_call_captcha_site_key="site-key", web_call_captcha_secret="secret")
    page = web.client.get("/call", base_url=web.public_base_url)
    html = page.get_data(as_text=True)
    assert f'class="{provider.container_class} web-call-check"' in html and provider.script_url in html
    policy = page.headers["Content-Security-Policy"]
    for directive, sources in provider.policy.items():
        assert all(source in policy.split(directive.replace("_", "-"), 1)[1].split(";")[0] for source in sources)


def test_every_captcha_choice_but_none_names_a_provider():
    from app.gateways.captcha import PROVIDERS
    from config import WEB_CALL_CAPTCHAS

    assert set(WEB_CALL_CAPTCHAS) == {*PROVIDERS, "none"}


def test_production_asks_for_a_captcha_choice_before_web_calls_are_on(web):
    settings = replace(web.app.config["SETTINGS"], app_env="production")
    assert settings.web_call_missing() == ["WEB_CALL_CAPTCHA"]
    web.app.config["SETTINGS"] = settings
    page = web.client.get("/call", base_url=web.public_base_url)
    assert page.status_code == 503 and b"WEB_CALL_CAPTCHA missing" in page.data
    assert web.web_token().status_code == 503
    # Said outright: no CAPTCHA, and the page shows no widget.
    web.app.config["SETTINGS"] = replace(settings, web_call_captcha="none")
    page = web.client.get("/call", base_url=web.public_base_url)
    assert page.status_code == 200 and b"data-captcha-field=\"\"" in page.data
    assert web.web_token().status_code == 200


def test_a_web_caller_is_shown_as_a_website_visitor_never_by_their_identity(web):
    from app.auth.service import create_user
    from app.supervisor.board import board_snapshot
    from tests.test_supervisor_pages import PASSWORD, signed_in

    caller = web.web_call(name="Ann Lee", reason="Charged twice for my internet bill")
    caller.press("1")
    identity = call_row(web, caller.sid).from_number
    with web.db() as session:
        (row,) = board_snapshot(session, web.app.config["SETTINGS"])["calls"]
        create_user(session, "sam", PASSWORD, "supervisor")
    assert row["caller"] == "website visitor"
    sam = signed_in(web, "sam")
    for page in ("/board", "/calls"):
        html = sam.get(page).get_data(as_text=True)
        assert "website visitor" in html and identity not in html, page


def test_a_token_places_one_call(web, caplog):
    """Twilio lets an access token place calls until it expires; the service takes one call per visitor's
    token, so the endpoint's limit counts calls, not tokens. A second call on it is hung up, nothing stored."""
    from sqlalchemy import func

    from app.models import Call

    token = web.web_token(name="Ann").get_json()["token"]
    first = web.network.client_call(token)
    assert "tell us why you are calling" in first.heard_text
    again = web.network.client_call(token)  # a script replaying the token, the first call still up
    assert not again.live and again.heard_text == ""
    first.hangup()
    later = web.network.client_call(token)  # and once the first is over
    assert not later.live
    with web.db() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 1
    assert sum(1 for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "web_caller_token_reused") == 2
