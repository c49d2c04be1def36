"""Every webhook path the service serves, and the absolute URLs Twilio is given for them.

Views route on these paths and domain code builds callback URLs from them, so
a URL in TwiML can never point at a route that does not exist.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Callable
from urllib.parse import quote_plus

VOICE = "/twilio/voice"
STATUS = "/twilio/status"
FALLBACK = "/twilio/fallback"
FALLBACK_RECORDED = "/twilio/fallback/recorded"
IVR = "/twilio/ivr"
TRANSCRIPTION = "/twilio/transcription"
CALLER_WAIT = "/twilio/caller/wait"
CALLER_OPTIONS = "/twilio/caller/options"
CALLER_VOICEMAIL = "/twilio/caller/voicemail"
CALLER_CONNECT = "/twilio/caller/connect"
CALLER_BRIDGE_ENDED = "/twilio/caller/bridge-ended"
CALLER_GOODBYE = "/twilio/caller/goodbye"
# An outbound call's customer leg (the call's caller leg, dialled by us).
CUSTOMER_ANSWER = "/twilio/customer/answer"
CUSTOMER_STATUS = "/twilio/customer/status"
CUSTOMER_FALLBACK = "/twilio/customer/fallback"
AGENT_ANSWER = "/twilio/agent/answer"
AGENT_WHISPER = "/twilio/agent/whisper"
AGENT_STATUS = "/twilio/agent/status"
AGENT_BRIDGE_ENDED = "/twilio/agent/bridge-ended"
AGENT_REJOIN = "/twilio/agent/rejoin"
AGENT_WRAP_UP = "/twilio/agent/wrap-up"
# An agent's own phone dialling a customer through the SIP domain: the domain's Voice URL and status callback.
AGENT_DIAL_OUT = "/twilio/agent/dial-out"
AGENT_DIAL_OUT_STATUS = "/twilio/agent/dial-out/status"
AGENT_FALLBACK = "/twilio/agent/fallback"
TRANSFER_MENU = "/twilio/transfer/menu"
TRANSFER_CONSULT_MENU = "/twilio/transfer/consult-menu"
TRANSFER_ANSWER = "/twilio/transfer/answer"
TRANSFER_INTRO = "/twilio/transfer/intro"
TRANSFER_WHISPER = "/twilio/transfer/whisper"
TRANSFER_SUMMARY_WAIT = "/twilio/transfer/summary-wait"
TRANSFER_STATUS = "/twilio/transfer/status"
TRANSFER_FALLBACK = "/twilio/transfer/fallback"
LIVEKIT_WEBHOOK = "/livekit/webhook"
# The service's own audio files (app/static/audio/), served to Twilio with a long max-age (web/media_cache.py).
AUDIO_PREFIX = "/static/audio/"
# The service's own hold music, served to Twilio.
HOLD_MUSIC = AUDIO_PREFIX + "hold.wav"
HOLD_MUSIC_FILE = Path(__file__).resolve().parents[1] / "static" / "audio" / "hold.wav"


@cache
def own_clip_version() -> str:
    """A short hash of the own hold clip's bytes: its URL changes whenever the file does."""
    return hashlib.sha256(HOLD_MUSIC_FILE.read_bytes()).hexdigest()[:12]


def _for_call(path: str) -> Callable[[WebhookUrls, int], str]:
    """The URL builder of a webhook that names only the call: PATH?call=CALL_ID."""
    def url(self: WebhookUrls, call_id: int) -> str:
        return self.url(path, call=call_id)
    return url


def _for_leg(path: str) -> Callable[[WebhookUrls, int], str]:
    """The URL builder of a webhook that names only the leg: PATH?leg=LEG_ID."""
    def url(self: WebhookUrls, leg_id: int) -> str:
        return self.url(path, leg=leg_id)
    return url


def _pair(key: str, value: object) -> str:
    # urlencode's `key=value`, without its quoting where nothing needs it: the keys are Python names, and most
    # values are ids (an int's digits, or True and False, are what quote_plus would give). Every TwiML answer
    # names a few such URLs.
    if isinstance(value, int):
        return f"{key}={value}"
    return f"{key}={quote_plus(str(value))}"


class WebhookUrls:
    """Absolute webhook URLs under the public base URL Twilio sees."""

    def __init__(self, public_base_url: str):
        self.base = public_base_url.rstrip("/")

    def url(self, path: str, **params: object) -> str:
        """The absolute URL of PATH with query PARAMS (None values left out), as urlencode writes it."""
        query = "&".join(_pair(key, value) for key, value in params.items() if value is not None)
        return f"{self.base}{path}" + (f"?{query}" if query else "")

    def hold_music(self, configured: str = "") -> str:
        """HOLD_MUSIC_URL if one is set, else the service's own clip."""
        return configured or self.url(HOLD_MUSIC, v=own_clip_version())

    def ivr(self, call_id: int, attempt: int) -> str:
        return self.url(IVR, call=call_id, attempt=attempt)

    def transcription(self, call_id: int, leg_id: int | None = None) -> str:
        return self.url(TRANSCRIPTION, call=call_id, leg=leg_id)

    # The webhooks whose URL names only the call, or only the leg.
    caller_wait = _for_call(CALLER_WAIT)
    caller_options = _for_call(CALLER_OPTIONS)
    caller_voicemail = _for_call(CALLER_VOICEMAIL)
    caller_connect = _for_call(CALLER_CONNECT)
    caller_goodbye = _for_call(CALLER_GOODBYE)
    customer_answer = _for_leg(CUSTOMER_ANSWER)
    customer_status = _for_leg(CUSTOMER_STATUS)
    customer_fallback = _for_leg(CUSTOMER_FALLBACK)
    agent_answer = _for_leg(AGENT_ANSWER)
    agent_whisper = _for_leg(AGENT_WHISPER)
    agent_status = _for_leg(AGENT_STATUS)
    agent_fallback = _for_leg(AGENT_FALLBACK)
    agent_wrap_up = _for_leg(AGENT_WRAP_UP)
    transfer_answer = _for_leg(TRANSFER_ANSWER)
    transfer_intro = _for_leg(TRANSFER_INTRO)
    transfer_whisper = _for_leg(TRANSFER_WHISPER)
    transfer_summary_wait = _for_leg(TRANSFER_SUMMARY_WAIT)
    transfer_fallback = _for_leg(TRANSFER_FALLBACK)
    transfer_status = _for_leg(TRANSFER_STATUS)

    def caller_bridge_ended(self, call_id: int, placement: int) -> str:
        return self.url(CALLER_BRIDGE_ENDED, call=call_id, v=placement)

    def agent_bridge_ended(self, leg_id: int, placement: int) -> str:
        return self.url(AGENT_BRIDGE_ENDED, leg=leg_id, v=placement)

    def agent_rejoin(self, leg_id: int, say: str | None = None) -> str:
        return self.url(AGENT_REJOIN, leg=leg_id, say=say or None)

    def transfer_menu(self, transfer_id: int, leg_id: int, placement: int, attempt: int) -> str:
        return self.url(TRANSFER_MENU, transfer=transfer_id, leg=leg_id, v=placement, attempt=attempt)

    def transfer_consult_menu(self, transfer_id: int, leg_id: int, placement: int) -> str:
        return self.url(TRANSFER_CONSULT_MENU, transfer=transfer_id, leg=leg_id, v=placement)
