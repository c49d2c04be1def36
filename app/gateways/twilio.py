"""Twilio REST gateway: the only module that speaks to Twilio's API."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.gateways.deadline import capped
from app.gateways.http_settings import environment_read_once

# Twilio's "Call is not in-progress. Cannot redirect." answer.
CALL_NOT_IN_PROGRESS = 21220
LIVE_BEFORE_ANSWER = ("queued", "ringing")
ALL_CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
# The Call resource's live statuses, in the order a call passes through them: listed in this order, a call
# that stays live throughout the listing is on one of the lists (it can only move on to a later one).
LIVE_STATUSES = ("queued", "ringing", "in-progress")
# The most calls one page of a list may hold (Twilio error 20007, "Page size too large": 1000 at most).
LARGEST_PAGE = 1000


class TwilioError(Exception):
    """A Twilio REST call failed: an error answer, a timeout or a broken connection."""

    def __init__(self, status: Optional[int], code: Optional[int], message: str):
        super().__init__(f"Twilio error (HTTP {status}, code {code}): {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def worth_retrying(self) -> bool:
        """Whether the same request may succeed a moment later: no answer, 429, or a 5xx from Twilio.

        Twilio: "An API Request that receives an error 429 response is never
        processed and is always safe to retry" (twilio.com/docs/errors/20429).
        A 5xx or no answer at all may or may not have been applied; the
        service retries only requests that are safe to repeat (redirecting a
        call to the same URL, ending a call, stopping a named transcription). A 4xx answer (a bad request, a
        call that is over) would be the same the second time.
        """
        return self.status is None or self.status == 429 or self.status >= 500


# A recording's address as Twilio gives it (RecordingUrl): the account's Recordings, the recording's sid.
RECORDING_PATH = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-zA-Z]{32})/Recordings/(RE[0-9a-zA-Z]{32})")
# Read a recording's audio this much at a time.
AUDIO_CHUNK_BYTES = 64 * 1024


@dataclass
class RecordingAudio:
    """A recording's audio as Twilio sends it: its type, its length if Twilio said, and its bytes, read as they
    come; close() once done (or given up)."""

    content_type: str
    length: Optional[int]
    chunks: Iterator[bytes]
    close: Callable[[], None]


@dataclass(frozen=True)
class NumberConfig:
    """The voice settings of one of the account's phone numbers."""

    sid: str
    phone_number: str
    voice_url: Optional[str]
    voice_method: Optional[str]
    status_callback: Optional[str]
    voice_fallback_url: Optional[str]


@dataclass(frozen=True)
class AppConfig:
    """A TwiML App of the account: the URLs Twilio asks when a Voice SDK client connects to it."""

    sid: str
    friendly_name: str
    voice_url: Optional[str]
    voice_method: Optional[str]
    status_callback: Optional[str]
    voice_fallback_url: Optional[str]


class BaseUrlHttpClient(TwilioHttpClient):
    """HTTP client for twilio-python that can send every API request to another base URL."""

    def __init__(self, api_base_url: Optional[str] = None, timeout: float = 5.0):
        super().__init__(timeout=timeout)
        environment_read_once(self.session)
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else None

    def rewrite(self, url: str) -> str:
        """Return the URL a request for `url` really goes to."""
        if not self.api_base_url:
            return url
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return url
        base = urlsplit(self.api_base_url)
        return urlunsplit(
            (base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment)
        )

    def request(self, method, url, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        """Send one API request, to the overriding base URL when one is set, waiting no longer than the
        caller's time budget allows (gateways.deadline)."""
        return super().request(
            method, self.rewrite(url), params=params, data=data, headers=headers,
            auth=auth, timeout=capped(timeout or self.timeout), allow_redirects=allow_redirects,
        )


class TwilioGateway:
    """Calls and phone numbers of one Twilio account, with plain Python types."""

    def __init__(self, account_sid: str, auth_token: str, api_base_url: Optional[str] = None,
                 timeout_seconds: float = 5.0):
        self._token = auth_token
        self._account_sid = account_sid
        self.http_client = BaseUrlHttpClient(api_base_url, timeout=timeout_seconds)
        # Recordings' audio is read outside twilio-python, which answers JSON only.
        self._media = environment_read_once(requests.Session())
        self.client = Client(account_sid, auth_token, http_client=self.http_client)
        self.list_page_size = LARGEST_PAGE

    def close(self) -> None:
        """Release pooled connections."""
        if self.http_client.session is not None:
            self.http_client.session.close()
        self._media.close()

    def recording_audio(self, recording_url: str) -> RecordingAudio:
        """The audio of a recording of this account, by its RecordingUrl: the WAV, fetched with the account's
        credentials; TwilioError when Twilio refuses it or cannot be reached, or the URL is not one of this
        account's recordings at Twilio.

        Twilio: "Fetch a Recording media file": the RecordingUrl without an
        extension, or with .wav, is the WAV (audio/x-wav); with .mp3, an MP3
        (twilio.com/docs/voice/api/recording). With "Enforce HTTP Auth on
        Media URLs" on, as Twilio recommends, the media needs the Account SID
        and auth token as HTTP basic auth (help.twilio.com, "Prevent
        unauthorized access to your Programmable Voice Media with HTTP Basic
        Auth"); they are sent either way. A redirect is followed, and requests
        drops the credentials when it leads to another host.
        """
        parts = urlsplit(recording_url or "")
        host = (parts.hostname or "").lower()
        found = RECORDING_PATH.fullmatch(parts.path.removesuffix(".wav").removesuffix(".mp3").removesuffix(".json"))
        if parts.scheme != "https" or not (host == "twilio.com" or host.endswith(".twilio.com")) or found is None \
                or found.group(1) != self._account_sid:
            raise TwilioError(None, None, "not a recording of this account at Twilio")
        url = self.http_client.rewrite(urlunsplit(("https", parts.netloc, f"{found.group(0)}.wav", "", "")))
        try:
            response = self._media.get(url, auth=(self._account_sid, self._token), stream=True,
                                       timeout=self.http_client.timeout)
        except requests.Timeout:
            raise TwilioError(None, None, "request to Twilio timed out") from None
        except requests.RequestException as error:
            raise TwilioError(None, None, f"could not reach Twilio: {type(error).__name__}") from None
        if response.status_code != 200:
            response.close()
            raise TwilioError(response.status_code, None, f"Twilio answered {response.status_code} for the recording")
        length = response.headers.get("Content-Length")
        return RecordingAudio(
            content_type=response.headers.get("Content-Type") or "audio/x-wav",
            length=int(length) if length and length.isascii() and length.isdigit() else None,
            chunks=response.iter_content(AUDIO_CHUNK_BYTES),
            close=response.close,
        )

    def create_call(self, to: str, from_: str, url: str, status_callback: str,
                    timeout_seconds: int,
                    status_events: Iterable[str] = ALL_CALL_EVENTS,
                    fallback_url: Optional[str] = None,
                    machine_detection: Optional[str] = None,
                    send_digits: Optional[str] = None,
                    call_token: Optional[str] = None,
                    ) -> str:
        """Place an outbound call that fetches its TwiML from `url` (`fallback_url` if that fails); return its sid.

        MACHINE_DETECTION (`Enable`): Twilio tells the answer URL who answered
        (AnsweredBy). SEND_DIGITS: keys Twilio plays once the call connects
        (`w` waits half a second). CALL_TOKEN: an inbound call's CallToken, with
        which From may be that call's caller ID (twilio.com/docs/voice/api/call-resource).
        """
        extra = {name: value for name, value in (("machine_detection", machine_detection),
                                                  ("send_digits", send_digits), ("call_token", call_token)) if value}
        call = self._do(lambda: self.client.calls.create(
            to=to, from_=from_, url=url, method="POST",
            fallback_url=fallback_url, fallback_method="POST" if fallback_url else None,
            status_callback=status_callback, status_callback_method="POST",
            status_callback_event=list(status_events), timeout=timeout_seconds, **extra,
        ))
        return call.sid

    def redirect_call(self, sid: str, url: str) -> bool:
        """Send a live call to new TwiML; False when the call is no longer in progress."""
        try:
            self._do(lambda: self.client.calls(sid).update(url=url, method="POST"))
        except TwilioError as error:
            if error.code == CALL_NOT_IN_PROGRESS:
                return False
            raise
        return True

    def end_call(self, sid: str) -> bool:
        """Hang up a call in any live state; False when it had already ended."""
        # Twilio documents Status=canceled as ending queued or ringing calls and
        # leaving answered ones alone, and Status=completed as ending answered
        # ones; so cancel first and complete only what the cancel left running.
        try:
            call = self._do(lambda: self.client.calls(sid).update(status="canceled"))
            if call.status in LIVE_BEFORE_ANSWER or call.status == "canceled":
                return True
            if call.status != "in-progress":
                return False
            self._do(lambda: self.client.calls(sid).update(status="completed"))
        except TwilioError as error:
            if error.code == CALL_NOT_IN_PROGRESS:
                return False
            raise
        return True

    def call_status(self, sid: str) -> Optional[str]:
        """Twilio's status of a call (queued, ringing, in-progress, completed, busy, ...); None if Twilio does not know it."""
        try:
            call = self._do(lambda: self.client.calls(sid).fetch())
        except TwilioError as error:
            if error.status == 404:
                return None
            raise
        return call.status

    def live_calls(self) -> dict[str, str]:
        """The account's live calls, sid -> status: one list per live status, page after page.

        GET Calls.json?Status=...&PageSize=... then each page's next_page_uri
        (twilio.com/docs/voice/api/call-resource#read-multiple-call-resources,
        paging: twilio.com/docs/usage/twilios-response); a status takes
        ceil(calls / list_page_size) requests, one at least.
        """
        def listing() -> dict[str, str]:
            return {call.sid: call.status for status in LIVE_STATUSES
                    for call in self.client.calls.stream(status=status, page_size=self.list_page_size)}

        return self._do(listing)

    def stop_transcription(self, call_sid: str, name: str) -> None:
        """Stop a live call's real-time transcription, named by the `name` it started with (or its SID).

        Twilio: "Stop a Transcription using either the SID of the
        Transcription resource or the name used when creating the resource"
        (twilio.com/docs/voice/api/realtime-transcription-resource).
        """
        self._do(lambda: self.client.calls(call_sid).transcriptions(name).update(status="stopped"))

    def start_transcription(self, call_sid: str, *, name: str, status_callback_url: str, language_code: str,
                            track: str = "inbound_track", inbound_track_label: Optional[str] = None,
                            hints: Optional[str] = None) -> str:
        """Start real-time transcription on a live call, as `<Start><Transcription>` does; return its SID."""
        transcription = self._do(lambda: self.client.calls(call_sid).transcriptions.create(
            name=name, track=track, status_callback_url=status_callback_url, status_callback_method="POST",
            language_code=language_code, inbound_track_label=inbound_track_label, hints=hints,
        ))
        return transcription.sid

    def find_number(self, phone_number: str) -> Optional[NumberConfig]:
        """Return the voice settings of one of the account's numbers, or None."""
        numbers = self._do(lambda: self.client.incoming_phone_numbers.list(
            phone_number=phone_number, limit=20))
        for number in numbers:
            if number.phone_number == phone_number:
                return _number_config(number)
        return None

    def update_number(self, sid: str, voice_url: str, status_callback: str,
                      voice_fallback_url: Optional[str]) -> NumberConfig:
        """Point a number's voice webhooks at this service."""
        number = self._do(lambda: self.client.incoming_phone_numbers(sid).update(
            voice_url=voice_url, voice_method="POST",
            status_callback=status_callback, status_callback_method="POST",
            voice_fallback_url=voice_fallback_url,
            voice_fallback_method="POST" if voice_fallback_url else None,
        ))
        return _number_config(number)

    def find_applications(self, friendly_name: str) -> list[AppConfig]:
        """The account's TwiML Apps of this name (GET Applications.json?FriendlyName=...)."""
        apps = self._do(lambda: self.client.applications.list(friendly_name=friendly_name, limit=20))
        return [_app_config(app) for app in apps if app.friendly_name == friendly_name]

    def fetch_application(self, sid: str) -> Optional[AppConfig]:
        """A TwiML App by SID, or None when the account has none by that SID."""
        try:
            return _app_config(self._do(lambda: self.client.applications(sid).fetch()))
        except TwilioError as error:
            if error.status == 404:
                return None
            raise

    def create_application(self, friendly_name: str, voice_url: str, status_callback: str,
                           voice_fallback_url: str) -> AppConfig:
        """A new TwiML App whose every URL is asked with POST."""
        return _app_config(self._do(lambda: self.client.applications.create(
            friendly_name=friendly_name, voice_url=voice_url, voice_method="POST",
            status_callback=status_callback, status_callback_method="POST",
            voice_fallback_url=voice_fallback_url, voice_fallback_method="POST")))

    def update_application(self, sid: str, voice_url: str, status_callback: str,
                           voice_fallback_url: str) -> AppConfig:
        """Point a TwiML App's URLs at this service."""
        return _app_config(self._do(lambda: self.client.applications(sid).update(
            voice_url=voice_url, voice_method="POST", status_callback=status_callback,
            status_callback_method="POST", voice_fallback_url=voice_fallback_url, voice_fallback_method="POST")))

    def api_key_exists(self, sid: str) -> bool:
        """Whether the account has the API key SID (GET Keys/{sid}.json; its secret is never shown again)."""
        try:
            self._do(lambda: self.client.api.v2010.account.keys(sid).fetch())
        except TwilioError as error:
            if error.status == 404:
                return False
            raise
        return True

    def create_api_key(self, friendly_name: str) -> tuple[str, str]:
        """A new standard API key: (sid, secret). Twilio answers the secret in this answer only
        (POST Keys.json, twilio.com/docs/iam/api-keys/key-resource)."""
        key = self._do(lambda: self.client.new_keys.create(friendly_name=friendly_name))
        return key.sid, key.secret

    def _do(self, operation):
        try:
            return operation()
        except TwilioRestException as error:
            raise TwilioError(error.status, error.code, self._clean(error.msg)) from None
        except requests.Timeout:
            raise TwilioError(None, None, "request to Twilio timed out") from None
        except requests.RequestException as error:
            raise TwilioError(
                None, None, f"could not reach Twilio: {type(error).__name__}") from None
        except TwilioException as error:
            status, code, message = _unpack(error)
            raise TwilioError(status, code, self._clean(message)) from None

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _unpack(error: TwilioException):
    """Status, code and message of a twilio-python error that is not a TwilioRestException."""
    status, code = getattr(error, "status", None), getattr(error, "code", None)
    message = str(error.args[0]) if error.args else type(error).__name__
    # Failed list pages arrive as TwilioException(message, response).
    for arg in error.args[1:]:
        if hasattr(arg, "status_code") and hasattr(arg, "text"):
            status = arg.status_code
            try:
                payload = json.loads(arg.text)
            except ValueError:
                break
            code = payload.get("code", code)
            message = f"{message}: {payload.get('message', '')}"
    return status, code, message


def _voice_settings(resource) -> dict:
    """The voice URLs a number and a TwiML App share, with Twilio's empty strings as None."""
    return {"sid": resource.sid, "voice_url": resource.voice_url or None, "voice_method": resource.voice_method,
            "status_callback": resource.status_callback or None,
            "voice_fallback_url": resource.voice_fallback_url or None}


def _number_config(number) -> NumberConfig:
    return NumberConfig(phone_number=number.phone_number, **_voice_settings(number))


def _app_config(app) -> AppConfig:
    return AppConfig(friendly_name=app.friendly_name, **_voice_settings(app))
