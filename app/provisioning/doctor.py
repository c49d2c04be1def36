"""`flask doctor`: a read-only pre-flight of the real accounts before the first real call.

Each check answers one question an operator has before going live, in one
line, and changes nothing anywhere: the Twilio number points here, Twilio
can reach this service at PUBLIC_BASE_URL with signatures that match, the
LiveKit trunk and dispatch rule are as `flask provision` would make them,
the hold music is audio, the LLM answers, what transcription does, and
whether calling from the website is off or ready (its TwiML App and API key).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from twilio.request_validator import RequestValidator

from app.gateways import captcha
from app.gateways.livekit import LiveKitError
from app.gateways.llm import LLMError
from app.gateways.twilio import TwilioError
from app.provisioning.plan import (
    FALLBACK_PATH,
    STATUS_PATH,
    VOICE_PATH,
    ProvisioningError,
    desired_state,
    make_plan,
)
from app.telephony.urls import STATUS, WebhookUrls
from config import Settings

# A status callback for a call the service never saw: it is answered and changes nothing.
PROBE_CALL_SID = "CA" + "0" * 32
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Check:
    """One answer of the pre-flight."""

    name: str
    ok: bool
    detail: str

    @property
    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name:<16} {self.detail}"


def run_checks(settings: Settings, twilio, livekit, llm) -> list[Check]:
    """Every check, in the order an operator would go through them."""
    return [
        twilio_number(settings, twilio),
        public_address(settings),
        livekit_setup(settings, livekit),
        hold_music(settings),
        llm_answers(settings, llm),
        transcription(settings),
        web_calls(settings, twilio),
    ]


def twilio_number(settings: Settings, twilio) -> Check:
    """The number's voice, status and fallback URLs point at this service."""
    name = "twilio number"
    if twilio is None:
        return Check(name, False, "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)")
    try:
        number = twilio.find_number(settings.twilio_phone_number)
    except TwilioError as error:
        return Check(name, False, f"Twilio refused the request: {error}")
    if number is None:
        return Check(name, False, f"{settings.twilio_phone_number} is not a number of this account")
    base = settings.public_base_url.rstrip("/")
    wanted = {"voice URL": (number.voice_url, base + VOICE_PATH),
              "status callback": (number.status_callback, base + STATUS_PATH),
              "fallback URL": (number.voice_fallback_url, base + FALLBACK_PATH)}
    wrong = [f"{what} is {actual or 'unset'}, should be {should}" for what, (actual, should) in wanted.items()
             if actual != should]
    if wrong:
        return Check(name, False, "; ".join(wrong) + " (flask provision sets them)")
    return Check(name, True, f"{number.phone_number}: voice, status and fallback URLs point at {base}")


def public_address(settings: Settings) -> Check:
    """A status callback signed as Twilio signs it, sent to PUBLIC_BASE_URL, reaches this service and is accepted."""
    name = "public address"
    if not settings.twilio_auth_token:
        return Check(name, False, "TWILIO_AUTH_TOKEN is not set: no webhook can be verified")
    url = WebhookUrls(settings.public_base_url).url(STATUS)
    form = {"CallSid": PROBE_CALL_SID, "CallStatus": "ringing", "AccountSid": settings.twilio_account_sid}
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(url, form)
    try:
        response = requests.post(url, data=form, headers={"X-Twilio-Signature": signature},
                                 timeout=HTTP_TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as error:
        return Check(name, False, f"{url} cannot be reached from here ({type(error).__name__})")
    if response.status_code == 403:
        return Check(name, False, f"{url} answered 403: the signature did not match, so PUBLIC_BASE_URL is not "
                                  "the address requests arrive at (check TRUSTED_PROXY_HOPS behind a proxy)")
    if response.status_code != 200:
        return Check(name, False, f"{url} answered HTTP {response.status_code}")
    note = "" if url.startswith("https://") else " (plain http: Twilio calls it, but use https in production)"
    return Check(name, True, f"{url} reaches this service and accepts Twilio's signature{note}")


def livekit_setup(settings: Settings, livekit) -> Check:
    """The LiveKit trunk and dispatch rule are as provisioning makes them, and no other default trunk conflicts."""
    name = "livekit"
    if livekit is None:
        return Check(name, False, "LiveKit is not configured (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)")
    try:
        plan = make_plan(desired_state(settings, ("livekit",)), None, livekit)
    except ProvisioningError as error:
        return Check(name, False, str(error).replace("\n", " "))
    except LiveKitError as error:
        return Check(name, False, f"LiveKit refused the request: {error}")
    if not plan.up_to_date:
        return Check(name, False, "; ".join(change.sentence for change in plan.changes) + " (flask provision)")
    return Check(name, True, "the inbound trunk and the callee dispatch rule are as flask provision makes them")


def hold_music(settings: Settings) -> Check:
    """The hold music answers with audio."""
    name = "hold music"
    url = WebhookUrls(settings.public_base_url).hold_music(settings.hold_music_url)
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        return Check(name, False, f"{url} cannot be fetched ({type(error).__name__})")
    kind = response.headers.get("Content-Type", "")
    if response.status_code != 200 or not kind.startswith("audio/"):
        return Check(name, False, f"{url} answered HTTP {response.status_code} with {kind or 'no type'}, not audio")
    return Check(name, True, f"{url} is {kind}, {len(response.content) // 1024} KiB")


def llm_answers(settings: Settings, llm) -> Check:
    """The LLM key works: one tiny request, its latency shown."""
    name = "llm"
    if llm is None:
        return Check(name, True, "LLM_PROVIDER=none: every summary is the fallback built without an LLM")
    started = time.monotonic()
    try:
        answer = llm.complete([
            {"role": "system", "content": 'Answer with the JSON object {"ok": true} and nothing else.'},
            {"role": "user", "content": "ping"},
        ])
    except LLMError as error:
        return Check(name, False, f"{settings.llm_provider} did not answer: {error}")
    elapsed = int((time.monotonic() - started) * 1000)
    return Check(name, True, f"{settings.llm_provider} {answer.model} answered in {elapsed} ms")


def transcription(settings: Settings) -> Check:
    """What real-time transcription does, and the PCI note."""
    if settings.transcription == ("off",):
        return Check("transcription", True, "off: no call is transcribed")
    scope = "every call" if settings.transcribes_every_call else "calls to " + ", ".join(settings.transcription)
    return Check("transcription", True, f"on for {scope} (Twilio AI/ML addendum; not for calls that take card "
                                        "numbers: see the README)")


def web_calls(settings: Settings, twilio) -> Check:
    """Calling from the website: off, or its settings complete, its TwiML App pointing here and its key there."""
    name = "web calls"
    if not settings.web_calls_wanted:
        return Check(name, True, "off: no TWILIO_API_KEY_SID, TWILIO_TWIML_APP_SID or WEB_CALL_ORIGINS "
                                 "(docs/web-callers.md)")
    missing = settings.web_call_missing()
    if missing:
        return Check(name, False, f"{', '.join(missing)} unset: the call page says calling is not set up")
    if twilio is None:
        return Check(name, False, "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)")
    try:
        app = twilio.fetch_application(settings.twilio_twiml_app_sid)
        key = twilio.api_key_exists(settings.twilio_api_key_sid)
    except TwilioError as error:
        return Check(name, False, f"Twilio refused the request: {error}")
    voice_url = settings.public_base_url.rstrip("/") + VOICE_PATH
    if app is None:
        return Check(name, False, f"TWILIO_TWIML_APP_SID {settings.twilio_twiml_app_sid} is not a TwiML App of "
                                  "this account (flask provision --only web creates one)")
    if app.voice_url != voice_url:
        return Check(name, False, f"the TwiML App's Voice URL is {app.voice_url or 'unset'}, should be {voice_url} "
                                  "(flask provision)")
    if not key:
        return Check(name, False, f"TWILIO_API_KEY_SID {settings.twilio_api_key_sid} is not an API key of this "
                                  "account (flask provision --create-api-key)")
    origins = ", ".join(settings.web_call_origins) or "only this service's own /call page"
    if captcha.provider(settings) is None:
        guard = ("no CAPTCHA (WEB_CALL_CAPTCHA=none)" if settings.web_call_captcha == "none"
                 else "no CAPTCHA (production asks for WEB_CALL_CAPTCHA)")
    else:
        known, words = captcha.secret_check(settings)
        if not known:
            return Check(name, False, f"the CAPTCHA provider {settings.web_call_captcha}: {words}")
        guard = f"CAPTCHA {settings.web_call_captcha}: {words}"
    return Check(name, True, f"TwiML App {app.sid} calls {voice_url}; API key {settings.twilio_api_key_sid} "
                             f"exists; tokens for {origins}; {guard}")
