"""The public call page in Chromium with the real vendored Voice SDK (docs/web-callers.md).

The stand-in has no WebRTC and no Voice SDK signalling, so the SDK's connect cannot reach it. What this
shows: the page takes a token that decodes to the right grant and identity, the SDK's Device is created
with that token and its connect() is called; then the stand-in is handed the page's own token, as Twilio
would be, and the call reaches the IVR as that visitor.
"""

import re
from pathlib import Path

import jwt
import pytest

from tests.browser_support import SCREENSHOTS, new_page
from tests.transfer_helpers import call_row

pytestmark = pytest.mark.browser

VENDOR = Path(__file__).resolve().parent.parent / "app" / "static" / "vendor" / "twilio.min.js"
# Runs before the page's scripts: when the SDK assigns Twilio.Device, its connect() is wrapped to record the
# token the Device holds and the options it was given (then the SDK's own connect runs, and fails offline).
SPY = """
(() => {
  const twilio = {};
  let Device;
  window.connectsSeen = [];
  Object.defineProperty(twilio, "Device", {
    configurable: true,
    get() { return Device; },
    set(value) {
      Device = value;
      const connect = value.prototype.connect;
      value.prototype.connect = function (options) {
        window.connectsSeen.push({ token: this.token, options: options || null });
        return connect.apply(this, arguments);
      };
    },
  });
  window.Twilio = twilio;
})();
"""


def test_the_call_page_takes_a_token_and_calls_with_the_voice_sdk(browser, live_centre):
    assert VENDOR.exists(), "the Voice SDK is not built: run `npm ci && npm run build` (make test does)"
    centre = live_centre
    centre.enable_web_calls()
    settings = centre.app.config["SETTINGS"]
    page = new_page(browser, centre)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.context.route(re.compile(r"^(https|wss)://([^/]*\.)?twilio\.com/"), lambda route: route.abort())
    page.add_init_script(SPY)
    page.goto("/call")
    # The SDK comes from this service, never a CDN.
    assert f"{centre.url}/static/vendor/twilio.min.js" in requested
    assert page.evaluate("typeof window.Twilio.Device") == "function"
    assert page.is_hidden("#keypad") and page.is_hidden("#hang-up")  # until a call is under way
    page.fill("#visitor-name", "Ann Lee")
    page.fill("#visitor-reason", "My internet bill is wrong")
    page.screenshot(path=str(SCREENSHOTS / "web-call.png"))

    with page.expect_response(f"{centre.url}/call/token") as answered:
        page.click("#call-button")
    token = answered.value.json()["token"]
    page.wait_for_function("() => window.connectsSeen.length === 1")
    seen = page.evaluate("window.connectsSeen[0]")
    assert seen["token"] == token and seen["options"] == {"params": {}}
    identity = page.evaluate("window.switchboardCall.identity")
    claims = jwt.decode(token, settings.twilio_api_key_secret, algorithms=["HS256"],
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims["grants"] == {"identity": identity,
                                "voice": {"outgoing": {"application_sid": settings.twilio_twiml_app_sid}}}

    # What Twilio would do with that token: its Voice URL is asked as client:<identity>.
    caller = centre.network.client_call(token)
    assert "tell us why you are calling" in caller.heard_text
    call = call_row(centre, caller.sid)
    assert call.from_number == f"client:{identity}" and call.ivr_reason == "My internet bill is wrong"


def test_with_turnstile_the_visitor_passes_its_widget_before_the_page_asks_for_a_token(browser, live_centre):
    """The page as shipped with WEB_CALL_CAPTCHA=turnstile: the provider's script from the address it names (served
    here by the stand-in, app/sandbox/captcha_server.py), allowed by the page's own policy; the answer the widget
    gives is sent with the token request, verified once, and the widget asks afresh after it."""
    from dataclasses import replace

    from app.sandbox.captcha_server import CaptchaStandIn
    from app.gateways.captcha import PROVIDERS

    turnstile = PROVIDERS["turnstile"]
    centre = live_centre
    centre.enable_web_calls()
    with CaptchaStandIn() as provider:
        centre.app.config["SETTINGS"] = replace(
            centre.app.config["SETTINGS"], web_call_captcha="turnstile", web_call_captcha_site_key="0x4AAA-site-key",
            web_call_captcha_secret=provider.secret, web_call_captcha_verify_url=provider.verify_url)
        page = new_page(browser, centre)
        blocked = []
        page.on("console", lambda message: blocked.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.context.route(re.compile(r"^(https|wss)://([^/]*\.)?twilio\.com/"), lambda route: route.abort())
        page.context.route(turnstile.script_url, lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=provider.widget_script(turnstile)))
        tokens_asked = []
        page.on("request", lambda request: tokens_asked.append(request)
                if request.url.endswith("/call/token") else None)
        page.add_init_script(SPY)
        page.goto("/call")
        page.wait_for_selector(".cf-turnstile button.captcha-stand-in")
        assert blocked == []  # the policy let the provider's script run

        # Not passed yet: the page says so and asks for nothing.
        page.click("#call-button")
        assert "complete the check" in page.text_content("#call-status")
        assert tokens_asked == [] and page.is_enabled("#call-button")

        page.click(".cf-turnstile button.captcha-stand-in")
        answer = page.input_value("input[name=cf-turnstile-response]")
        assert answer.startswith("stand-in.")
        page.screenshot(path=str(SCREENSHOTS / "web-call-captcha.png"))
        with page.expect_response(f"{centre.url}/call/token") as answered:
            page.click("#call-button")
        assert answered.value.status == 200
        assert tokens_asked[0].post_data_json["captcha"] == answer
        assert [(asked["response"], asked["remoteip"]) for asked in provider.verified] == [(answer, "127.0.0.1")]
        page.wait_for_function("() => window.connectsSeen.length === 1")
        # Spent: the widget asks again.
        assert page.input_value("input[name=cf-turnstile-response]") == ""
        assert page.text_content(".cf-turnstile button.captcha-stand-in") == "I am human"
