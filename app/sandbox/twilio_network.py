"""A stand-in for Twilio's side of phone calls.

It places calls on the service's webhooks, signs every request as Twilio
does, follows the TwiML it gets back, and answers the REST requests the
service makes through twilio-python.  Tests drive the people on the line
(`press`, `speak`, `hangup`, ...) and assert on what they heard.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import threading
import time
import uuid
import wave
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from werkzeug.datastructures import MultiDict

from app.sandbox.clock import VirtualClock
from app.sandbox.livekit_sip import NO_RESPONSE, SipInvite, SipRejected
from app.sandbox.signing import signed_headers

API_VERSION = "2010-04-01"
ALL_VERBS = {
    "Say", "Play", "Pause", "Gather", "Dial", "Redirect", "Hangup", "Reject",
    "Start", "Stop", "Record", "Enqueue", "Leave", "Connect", "Refer", "Sms",
    "Echo", "Queue", "Pay", "Prompt",
}
SIMULATED_VERBS = {
    "Say", "Play", "Pause", "Gather", "Dial", "Redirect", "Hangup", "Reject",
    "Start", "Stop", "Record",
}
GATHER_CHILDREN = {"Say", "Play", "Pause"}
DIAL_NOUNS = {"Number", "Sip", "Client", "Conference", "Queue", "Application"}
START_NOUNS = {"Transcription", "Stream", "Siprec"}
LIVE_STATUSES = {"queued", "ringing", "in-progress"}
DIAL_STATUSES = {"completed", "answered", "busy", "no-answer", "failed", "canceled"}

Transport = Callable[[str, dict, dict], "tuple[int, str, str]"]
MediaFetcher = Callable[[str], Optional[bytes]]

# <Dial timeout>: "default value is 30 seconds, the minimum allowed value is
# five seconds, and the maximum value is 600 seconds"; "Twilio always adds a
# five-second timeout buffer" (twilio.com/docs/voice/twiml/dial).
DIAL_TIMEOUT_DEFAULT, DIAL_TIMEOUT_MIN, DIAL_TIMEOUT_MAX, DIAL_TIMEOUT_BUFFER = 30, 5, 600, 5
# calls.create Timeout: "The default is 60 seconds and the maximum is 600"
# (twilio.com/docs/voice/api/call-resource).
RING_TIMEOUT_DEFAULT = 60
# <Gather timeout> default (twilio.com/docs/voice/twiml/gather).
GATHER_TIMEOUT_DEFAULT = 5
# "Twilio will wait for a total of 15 seconds to receive an HTTP response"
# (twilio.com/docs/api/errors/11205); then the fallback URL is requested.
WEBHOOK_TIMEOUT_SECONDS = 15.0
# A guess, not a documented number: how long an audio file the simulator
# cannot fetch (a third-party URL) is taken to play.
UNKNOWN_AUDIO_SECONDS = 30.0
# Where Twilio's SIP signalling comes from: an address in Twilio's published
# North America (Virginia) signalling range, 54.172.60.0/23.
TWILIO_SIGNALLING_IP = "54.172.60.1"
# "If you are dialing a <Sip> endpoint, enter any alphanumeric string as the
# callerId. Optionally include +, -, _ and ., but no whitespace" (Dial docs).
SIP_CALLER_ID = re.compile(r"^[A-Za-z0-9+\-_.]+$")


class TwimlError(AssertionError):
    """The service answered what Twilio would refuse, or a test drove a call wrongly."""


class Said(str):
    """One <Say>, as heard: the text, with the voice and language it was spoken in."""

    voice: Optional[str]
    language: Optional[str]

    def __new__(cls, text: str, voice: Optional[str] = None, language: Optional[str] = None):
        said = super().__new__(cls, " ".join(text.split()))
        said.voice = voice
        said.language = language
        return said


@dataclass(frozen=True)
class DialedNoun:
    """One noun of a <Dial>: what Twilio rings (Sip, Number, Client, Conference)."""

    kind: str
    target: str
    attrs: dict = field(default_factory=dict)

    @property
    def username(self) -> Optional[str]:
        """The SIP username Twilio authenticates with, if any."""
        return self.attrs.get("username")

    @property
    def password(self) -> Optional[str]:
        """The SIP password Twilio authenticates with, if any."""
        return self.attrs.get("password")


@dataclass
class DialLeg:
    """The child leg a <Dial> places: ringing, then bridged, until one side ends it."""

    sid: str
    noun: DialedNoun
    caller_id: str
    sip_call: object = None
    scripted: bool = False  # the far end is played by the test (dial_ends), not a SIP endpoint
    bridged: bool = False
    answered_at: Optional[datetime] = None
    timer: object = None


@dataclass
class Delivery:
    """One webhook Twilio sent, and what the service answered."""

    kind: str
    url: str
    params: dict
    headers: dict
    status: int = 0
    content_type: str = ""
    body: str = ""


@dataclass(frozen=True)
class RestRequest:
    """One REST request the service made to Twilio."""

    method: str
    path: str
    form: MultiDict
    query: MultiDict


def flask_client_transport(test_client, public_base_url: str) -> Transport:
    """Deliver webhooks to a Flask test client as if they came over the public URL."""
    base = public_base_url.rstrip("/")

    def send(url: str, params: dict, headers: dict):
        if not url.startswith(base):
            raise TwimlError(f"webhook URL {url!r} is not under the public base {base!r}")
        path = url[len(base):] or "/"
        response = test_client.post(
            path, data=urlencode(params), headers=headers, base_url=base)
        try:
            return response.status_code, response.headers.get("Content-Type", ""), \
                response.get_data(as_text=True)
        finally:
            response.close()

    return send


def http_transport(timeout: float = 10.0) -> Transport:
    """Deliver webhooks over real HTTP."""
    import requests

    def send(url: str, params: dict, headers: dict):
        try:
            with requests.post(url, data=urlencode(params), headers=headers,
                               timeout=timeout, allow_redirects=False) as response:
                return response.status_code, response.headers.get("Content-Type", ""), \
                    response.text
        except requests.RequestException as error:
            return 599, "text/plain", f"{type(error).__name__}: {error}"

    return send


def _rfc2822(moment: Optional[datetime]) -> Optional[str]:
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000") if moment else None


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _error(status: int, code: int, message: str) -> "tuple[int, dict]":
    return status, {
        "code": code, "message": message, "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
    }


class SimCall:
    """One call leg as Twilio sees it, and the person on it."""

    def __init__(self, network: "TwilioNetwork", sid: str, from_: str, to: str,
                 direction: str, status: str, url: Optional[str] = None,
                 status_callback: Optional[str] = None, status_events=(),
                 timeout: Optional[int] = None):
        self.network = network
        self.sid = sid
        self.from_ = from_
        self.to = to
        self.direction = direction
        self.status = status
        self.url = url
        self.status_callback = status_callback
        self.status_events = tuple(status_events)
        self.timeout = timeout
        self.heard: list[Said] = []
        self.played: list[str] = []
        self.dialed: list[DialedNoun] = []
        self.dial: Optional[DialLeg] = None
        self.waiting_on: Optional[ET.Element] = None
        self.fallback_url: Optional[str] = None
        self.ignored_keys: list[str] = []
        self.callbacks_lost = False
        self._timer = None  # the running verb's timer (<Play> length, <Gather> timeout, ringing)
        self.twiml_log: list[str] = []
        self.transcriptions: list[dict] = []
        self.created_at = network.clock.now()
        self.answered_at: Optional[datetime] = None
        self.ended_at: Optional[datetime] = None
        self.duration: Optional[int] = None
        self._doc_url: Optional[str] = None
        self._verbs: list[ET.Element] = []
        self._pc = 0
        self._callback_sequence = itertools.count(0)

    def __repr__(self) -> str:
        waiting = self.waiting_on.tag if self.waiting_on is not None else None
        return f"<SimCall {self.sid} {self.direction} {self.to} {self.status} waiting_on={waiting}>"

    @property
    def live(self) -> bool:
        """Whether the call has not ended yet."""
        return self.status in LIVE_STATUSES

    @property
    def dial_call_sid(self) -> Optional[str]:
        """The SID of the leg the running <Dial> placed (Twilio's DialCallSid)."""
        return self.dial.sid if self.dial else None

    @property
    def bridged(self) -> bool:
        """Whether the call is in a <Dial> whose far end answered."""
        return self.dial is not None and self.dial.bridged and self.waiting_on is not None \
            and self.waiting_on.tag == "Dial"

    @property
    def heard_text(self) -> str:
        """Everything heard so far, as one string."""
        return " ".join(self.heard)

    def press(self, digits: str) -> "SimCall":
        """Key DTMF digits into the <Gather> the call is waiting on."""
        self.network._drive(lambda: self.network._gather_input(self, digits=digits))
        return self

    def speak(self, text: str, confidence: float = 0.9) -> "SimCall":
        """Say something to the <Gather> the call is waiting on."""
        self.network._drive(
            lambda: self.network._gather_input(self, speech=text, confidence=confidence))
        return self

    def silence(self) -> "SimCall":
        """Say nothing until the <Gather> times out (the clock moves on to that moment)."""
        self.network._drive(lambda: self.network._gather_silence(self))
        return self

    def music_ends(self) -> "SimCall":
        """The <Play> the call is waiting on finishes; TwiML goes on with the next verb."""
        self.network._drive(lambda: self.network._music_ends(self))
        return self

    def dial_ends(self, status: str = "completed", duration: Optional[int] = None) -> "SimCall":
        """End the <Dial> the call is in, with the dialled leg's outcome."""
        self.network._drive(lambda: self.network._dial_ends(self, status, duration))
        return self

    def press_star(self, duration: int = 0) -> "SimCall":
        """Press * inside a <Dial hangupOnStar="true">, dropping the other party once bridged."""
        self.network._drive(lambda: self.network._press_star(self, duration))
        return self

    def lose_callbacks(self) -> "SimCall":
        """From now on this call's status callbacks are lost on the way (a fault to inject)."""
        self.callbacks_lost = True
        return self

    def wait(self, seconds: float) -> "SimCall":
        """Let SECONDS pass for everyone (the network's virtual clock)."""
        self.network.advance(seconds)
        return self

    def recording_done(self, url: str, duration: int = 5) -> "SimCall":
        """Finish the <Record> the call is waiting on."""
        self.network._drive(lambda: self.network._recording_done(self, url, duration))
        return self

    def transcribe(self, text: str, track: str = "inbound_track", final: bool = True,
                   confidence: float = 0.9) -> "SimCall":
        """Deliver one real-time transcription result for this call."""
        self.network._drive(
            lambda: self.network._transcribe(self, text, track, final, confidence))
        return self

    def hangup(self, duration: Optional[int] = None) -> "SimCall":
        """The person on this leg hangs up."""
        self.network._drive(lambda: self.network._hangup(self, duration))
        return self

    def resource(self) -> dict:
        """The call's REST resource, as Twilio returns it."""
        account = self.network.account_sid
        return {
            "sid": self.sid, "account_sid": account, "api_version": API_VERSION,
            "to": self.to, "to_formatted": self.to,
            "from": self.from_, "from_formatted": self.from_,
            "status": self.status, "direction": self.direction,
            "parent_call_sid": None, "phone_number_sid": None,
            "date_created": _rfc2822(self.created_at),
            "date_updated": _rfc2822(self.ended_at or self.answered_at or self.created_at),
            "start_time": _rfc2822(self.answered_at), "end_time": _rfc2822(self.ended_at),
            "duration": None if self.duration is None else str(self.duration),
            "price": None, "price_unit": "USD", "answered_by": None, "caller_name": None,
            "forwarded_from": None, "group_sid": None, "queue_time": "0",
            "trunk_sid": None, "annotation": None,
            "uri": f"/{API_VERSION}/Accounts/{account}/Calls/{self.sid}.json",
            "subresource_uris": {},
        }

    def _params(self) -> dict:
        return {
            "AccountSid": self.network.account_sid, "ApiVersion": API_VERSION,
            "CallSid": self.sid, "CallStatus": self.status, "Direction": self.direction,
            "From": self.from_, "To": self.to, "Caller": self.from_, "Called": self.to,
        }


class TwilioNetwork:
    """Twilio's side of every call: webhooks out, TwiML followed, REST answered."""

    def __init__(self, account_sid: str, auth_token: str, transport: Transport, *,
                 clock: Optional[VirtualClock] = None, media_fetcher: Optional[MediaFetcher] = None):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.transport = transport
        self.clock = clock or VirtualClock()
        # SIP hosts that answer a <Dial><Sip> (LIVEKIT_SIP_HOST -> the LiveKit stand-in).
        self.sip_endpoints: dict[str, object] = {}
        self.signalling_ip = TWILIO_SIGNALLING_IP
        self.media_fetcher = media_fetcher
        self.audio_seconds: dict[str, float] = {}
        self.webhook_timeout = WEBHOOK_TIMEOUT_SECONDS
        self.webhook_faults: list[tuple[str, int]] = []
        self.calls: dict[str, SimCall] = {}
        self.faults: list[tuple[str, int, int, str]] = []
        self.numbers: dict[str, dict] = {}
        self.rest_log: list[RestRequest] = []
        self.deliveries: list[Delivery] = []
        self.errors: list[BaseException] = []
        self._state = threading.RLock()
        # Webhooks go out one at a time and never under the state lock: the
        # service answers some of them by calling the REST side back.
        self._delivering = threading.RLock()
        self._pending: deque[Callable[[], None]] = deque()
        self._last: Optional[Delivery] = None

    def call(self, sid: str) -> SimCall:
        """Return a call by sid."""
        return self.calls[sid]

    def calls_to(self, to: str) -> list[SimCall]:
        """Return every call placed to `to`, oldest first."""
        return [call for call in list(self.calls.values()) if call.to == to]

    def last_call(self, to: Optional[str] = None) -> SimCall:
        """Return the newest call, or the newest placed to `to`."""
        calls = [c for c in list(self.calls.values()) if to is None or c.to == to]
        if not calls:
            raise TwimlError(f"no call placed to {to!r}" if to else "no call placed yet")
        return calls[-1]

    def sent(self, kind: Optional[str] = None) -> list[Delivery]:
        """Return the webhooks sent so far, optionally only of one kind."""
        return [d for d in list(self.deliveries) if kind is None or d.kind == kind]

    def add_number(self, phone_number: str, voice_url: Optional[str] = None,
                   voice_method: str = "POST", status_callback: Optional[str] = None,
                   voice_fallback_url: Optional[str] = None) -> str:
        """Give the account a phone number; return its sid."""
        sid = _sid("PN")
        with self._state:
            self.numbers[sid] = {
                "sid": sid, "phone_number": phone_number, "friendly_name": phone_number,
                "voice_url": voice_url or "", "voice_method": voice_method,
                "status_callback": status_callback or "", "status_callback_method": "POST",
                "voice_fallback_url": voice_fallback_url or "",
                "voice_fallback_method": "POST",
            }
        return sid

    def number(self, phone_number: str) -> Optional[dict]:
        """Return the resource of one of the account's numbers, or None."""
        for resource in list(self.numbers.values()):
            if resource["phone_number"] == phone_number:
                return self._number_resource(resource)
        return None

    def incoming_call(self, from_: str, to: str, voice_url: Optional[str] = None,
                      status_callback: Optional[str] = None) -> SimCall:
        """Someone dials `to`: fetch its voice URL and follow the TwiML."""
        number = self.number(to)
        if voice_url is None:
            voice_url = number and number["voice_url"]
        if not voice_url:
            raise TwimlError(f"no voice URL for {to}")
        if status_callback is None and number:
            status_callback = number["status_callback"] or None
        call = SimCall(self, _sid("CA"), from_, to, "inbound", "ringing",
                       url=voice_url, status_callback=status_callback)
        with self._state:
            self.calls[call.sid] = call
        self._drive(lambda: self._fetch(call, voice_url, answering=True))
        return call

    def answer(self, sid: str) -> SimCall:
        """The callee of a REST-created call picks up; Twilio fetches its Url."""
        call = self.calls[sid]

        def work():
            if call.status != "queued" and call.status != "ringing":
                raise TwimlError(f"{call!r} cannot be answered")
            self._stop_timer(call)
            self._ring(call)
            call.status = "in-progress"
            call.answered_at = self.clock.now()
            self._status_callback(call, "answered")
            self._fetch(call, call.url)

        self._drive(work)
        return call

    def ring_out(self, sid: str, status: str = "no-answer") -> SimCall:
        """A REST-created call is never answered: no-answer, busy or failed."""
        if status not in ("no-answer", "busy", "failed"):
            raise ValueError(status)
        call = self.calls[sid]

        def work():
            if call.status not in ("queued", "ringing"):
                raise TwimlError(f"{call!r} is not ringing")
            if status != "failed":
                self._ring(call)
            self._stop_timer(call)
            self._end(call, status, duration=0)

        self._drive(work)
        return call

    def replay_last(self) -> Delivery:
        """Send the previous webhook again, byte for byte, as Twilio's retries do."""
        with self._state:
            last = self._last
        if last is None:
            raise TwimlError("no webhook sent yet")
        with self._delivering:
            delivery = self._deliver(last.kind, last.url, dict(last.params), dict(last.headers))
            self.run_pending()
        return delivery

    def run_pending(self) -> int:
        """Deliver the webhooks Twilio has queued, in order; return how many ran."""
        if not self._pending:
            return 0
        done = 0
        with self._delivering:
            while True:
                with self._state:
                    if not self._pending:
                        return done
                    work = self._pending.popleft()
                work()
                done += 1

    def in_turn(self, work: Callable[[], None]) -> None:
        """Run WORK (another service's webhook, say) in turn with Twilio's own deliveries."""
        self._enqueue(work)

    def advance(self, seconds: float) -> int:
        """Let SECONDS pass on the virtual clock: timers fire in order, webhooks go out between them."""
        ran = 0

        def work():
            nonlocal ran
            ran = self.clock.advance(seconds, between=self.run_pending)

        self._drive(work)
        return ran

    def rest_create_call(self, form) -> "tuple[int, dict]":
        """POST Calls.json."""
        return self.handle_rest("POST", self._path("Calls.json"), form=form, auth=self._auth)

    def rest_update_call(self, sid: str, form) -> "tuple[int, dict]":
        """POST Calls/{sid}.json."""
        return self.handle_rest("POST", self._path(f"Calls/{sid}.json"), form=form,
                                auth=self._auth)

    def rest_get_call(self, sid: str) -> "tuple[int, dict]":
        """GET Calls/{sid}.json."""
        return self.handle_rest("GET", self._path(f"Calls/{sid}.json"), auth=self._auth)

    def handle_rest(self, method: str, path: str, query=None, form=None,
                    auth: Optional["tuple[str, str]"] = None) -> "tuple[int, dict]":
        """Answer one REST request made with Basic credentials `auth`; return (status, JSON)."""
        form = MultiDict(form or {})
        query = MultiDict(query or {})
        with self._state:
            self.rest_log.append(RestRequest(method.upper(), path, form, query))
            if auth != self._auth:
                return _error(401, 20003, "Authenticate")
            match = re.search(r"/2010-04-01/Accounts/([^/]+)/(.+)$", path)
            if not match or match.group(1) != self.account_sid:
                return _error(404, 20404, f"The requested resource {path} was not found")
            route, method = match.group(2), method.upper()
            for index, (fail_route, status, code, message) in enumerate(self.faults):
                if fail_route == route and method == "POST":
                    del self.faults[index]
                    return _error(status, code, message)
            if route == "Calls.json" and method == "POST":
                return self._create_call(form)
            found = re.fullmatch(r"Calls/([^/]+)\.json", route)
            if found and method in ("GET", "POST"):
                call = self.calls.get(found.group(1))
                if call is None:
                    return _error(404, 20404, f"The requested resource {path} was not found")
                if method == "GET":
                    return 200, call.resource()
                return self._update_call(call, form)
            if route == "IncomingPhoneNumbers.json" and method == "GET":
                return self._list_numbers(query, path)
            found = re.fullmatch(r"IncomingPhoneNumbers/([^/]+)\.json", route)
            if found and method in ("GET", "POST") and found.group(1) in self.numbers:
                resource = self.numbers[found.group(1)]
                if method == "POST":
                    self._update_number(resource, form)
                return 200, self._number_resource(resource)
            return _error(404, 20404, f"The requested resource {path} was not found")

    def fail_next_webhook(self, path: str, status: int = 502) -> None:
        """The next TwiML request to a URL whose path is PATH never reaches the service: it gets STATUS
        (a proxy in front of the service failing, say)."""
        with self._state:
            self.webhook_faults.append((path, status))

    def fail_next(self, route: str = "Calls.json", status: int = 500, code: int = 20500,
                  message: str = "Internal Server Error") -> None:
        """Make the next POST to ROUTE (e.g. Calls.json) fail as Twilio's API does."""
        with self._state:
            self.faults.append((route, status, code, message))

    def install(self, responses_mock, base_url: str = "https://api.twilio.com") -> None:
        """Serve the REST routes through a `responses` mock."""
        pattern = re.compile(re.escape(base_url.rstrip("/")) + r"/2010-04-01/Accounts/.*")
        for method in ("GET", "POST", "DELETE"):
            responses_mock.add_callback(method, pattern, callback=self._responses_callback,
                                        content_type="application/json")

    def _responses_callback(self, request):
        parts = urlsplit(request.url)
        body = request.body or ""
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        status, payload = self.handle_rest(
            request.method, parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            form=parse_qsl(body, keep_blank_values=True),
            auth=basic_credentials(request.headers.get("Authorization")))
        return status, {}, json.dumps(payload)

    @property
    def _auth(self) -> "tuple[str, str]":
        return self.account_sid, self.auth_token

    def _path(self, route: str) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/{route}"

    def _create_call(self, form: MultiDict) -> "tuple[int, dict]":
        for name, code in (("To", 21201), ("From", 21213)):
            if not form.get(name):
                return _error(400, code, f"Required parameter {name} missing.")
        if not form.get("Url"):
            # Inline Twiml and ApplicationSid are not simulated.
            return _error(400, 21205, "Url parameter is required.")
        timeout = int(form.get("Timeout") or RING_TIMEOUT_DEFAULT)
        if not 1 <= timeout <= 600:
            return _error(400, 21208, "Timeout must be between 1 and 600 seconds.")
        call = SimCall(self, _sid("CA"), form["From"], form["To"], "outbound-api", "queued",
                       url=form["Url"], status_callback=form.get("StatusCallback"),
                       status_events=form.getlist("StatusCallbackEvent"), timeout=timeout)
        call.fallback_url = form.get("FallbackUrl") or None
        self.calls[call.sid] = call
        self._enqueue(lambda: self._status_callback(call, "initiated"))
        # Nobody picks up within Timeout: no-answer (Call resource, Timeout).
        call._timer = self.clock.call_later(timeout, lambda: self._ring_timed_out(call), f"{call.sid} rings out")
        return 201, call.resource()

    def _ring_timed_out(self, call: SimCall) -> None:
        if call.status in ("queued", "ringing"):
            self._ring(call)
            self._end(call, "no-answer", duration=0)

    def _update_call(self, call: SimCall, form: MultiDict) -> "tuple[int, dict]":
        status, url = form.get("Status"), form.get("Url")
        if status:
            if not call.live:
                return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
            if status == "canceled":
                # Twilio: canceled ends queued or ringing calls and leaves
                # answered ones untouched.
                if call.status in ("queued", "ringing"):
                    self._end(call, "canceled", duration=0)
            elif status == "completed":
                self._end(call, "completed" if call.answered_at else "canceled")
            else:
                return _error(400, 21218, f"Invalid Status {status!r}.")
        elif url:
            if not call.live:
                return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
            if call.answered_at is None:
                call.url = url
            else:
                self._enqueue(lambda: self._redirect(call, url))
        return 200, call.resource()

    def _list_numbers(self, query: MultiDict, path: str) -> "tuple[int, dict]":
        wanted = query.get("PhoneNumber")
        found = [self._number_resource(n) for n in self.numbers.values()
                 if not wanted or wanted in n["phone_number"]]
        return 200, {
            "incoming_phone_numbers": found, "page": 0, "page_size": 50, "start": 0,
            "end": max(len(found) - 1, 0), "uri": path, "first_page_uri": path,
            "next_page_uri": None, "previous_page_uri": None,
        }

    def _update_number(self, resource: dict, form: MultiDict) -> None:
        names = {
            "VoiceUrl": "voice_url", "VoiceMethod": "voice_method",
            "StatusCallback": "status_callback",
            "StatusCallbackMethod": "status_callback_method",
            "VoiceFallbackUrl": "voice_fallback_url",
            "VoiceFallbackMethod": "voice_fallback_method",
        }
        for param, key in names.items():
            if param in form:
                resource[key] = form[param]

    def _number_resource(self, resource: dict) -> dict:
        return {
            **resource, "account_sid": self.account_sid, "api_version": API_VERSION,
            "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
            "uri": self._path(f"IncomingPhoneNumbers/{resource['sid']}.json"),
        }

    def _enqueue(self, work: Callable[[], None]) -> None:
        with self._state:
            self._pending.append(work)

    def _drive(self, work: Callable[[], None]) -> None:
        with self._delivering:
            self.run_pending()
            work()
            self.run_pending()

    def _deliver(self, kind: str, url: str, params: dict, headers: dict) -> Delivery:
        delivery = Delivery(kind, url, params, headers)
        with self._state:
            self.deliveries.append(delivery)
            self._last = delivery
        delivery.status, delivery.content_type, delivery.body = \
            self.transport(url, params, headers)
        return delivery

    def _send(self, kind: str, url: str, params: dict) -> Delivery:
        headers = signed_headers(self.auth_token, url, params)
        headers["I-Twilio-Idempotency-Token"] = str(uuid.uuid4())
        headers["User-Agent"] = "TwilioProxy/1.1"
        return self._deliver(kind, url, params, headers)

    def _ring(self, call: SimCall) -> None:
        if call.status == "queued":
            call.status = "ringing"
            self._status_callback(call, "ringing")

    def _status_callback(self, call: SimCall, event: str, duration: Optional[int] = None):
        if not call.status_callback or call.callbacks_lost:
            return
        # Without StatusCallbackEvent Twilio sends only the final status.
        events = call.status_events or ("completed",)
        if event not in events:
            return
        params = call._params()
        if event == "initiated":
            params["CallStatus"] = "initiated"
        params.update({
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(next(call._callback_sequence)),
            "Timestamp": _rfc2822(self.clock.now()),
        })
        if duration is not None:
            params["CallDuration"] = str(duration)
        self._send("status", call.status_callback, params)

    def _fetch(self, call: SimCall, url: str, extra: Optional[dict] = None,
               answering: bool = False, redirects: int = 0) -> None:
        if redirects > 20:
            raise TwimlError(f"{call!r}: more than 20 redirects without waiting on anything")
        params = call._params()
        params.update(extra or {})
        started = time.monotonic()
        delivery = self._faulted(url, params) or self._send("twiml", url, params)
        slow = time.monotonic() - started > self.webhook_timeout
        call.twiml_log.append(delivery.body)
        if not call.live:
            return
        if slow or delivery.status >= 500:
            self._fall_back(call, url, params, 11205 if slow else 11200, answering, redirects)
            return
        root = self._parse(delivery)
        # A <Reject> first leaves the call unanswered; anything else answers it.
        if answering and not (len(root) and root[0].tag == "Reject"):
            call.status = "in-progress"
            call.answered_at = self.clock.now()
        self._stop_timer(call)
        call._doc_url, call._verbs, call._pc = url, list(root), 0
        call.waiting_on = None
        self._run(call, redirects)

    def _faulted(self, url: str, params: dict) -> Optional[Delivery]:
        path = urlsplit(url).path
        with self._state:
            for index, (fault_path, status) in enumerate(self.webhook_faults):
                if fault_path == path:
                    del self.webhook_faults[index]
                    delivery = Delivery("twiml", url, params, {}, status, "text/html", "Bad Gateway")
                    self.deliveries.append(delivery)
                    return delivery
        return None

    def _fall_back(self, call: SimCall, failed_url: str, params: dict, code: int, answering: bool,
                   redirects: int) -> None:
        """The TwiML could not be fetched: Twilio asks the fallback URL, with ErrorCode and ErrorUrl.

        "If Twilio is unable to retrieve or execute TwiML from your web server,
        a request is immediately made to the number's Fallback URL"
        (twilio.com/docs/usage/security/availability-reliability); calls made
        with calls.create use their FallbackUrl. With none, or a failing one,
        Twilio says an application error occurred and hangs up.
        """
        fallback = call.fallback_url
        if fallback is None and call.direction == "inbound":
            number = self.number(call.to)
            fallback = number["voice_fallback_url"] if number else None
        if fallback and fallback != failed_url:
            extra = {k: v for k, v in params.items() if k not in call._params()}
            extra.update({"ErrorCode": str(code), "ErrorUrl": failed_url})
            self._fetch(call, fallback, extra, answering=answering, redirects=redirects + 1)
            return
        call.heard.append(Said("We are sorry, an application error has occurred. Goodbye."))
        self._end(call, "completed")

    def _parse(self, delivery: Delivery) -> ET.Element:
        where = f"{delivery.url} answered HTTP {delivery.status}"
        if delivery.status != 200:
            raise TwimlError(f"{where}: {delivery.body[:300]!r}")
        media_type = delivery.content_type.split(";")[0].strip().lower()
        if media_type != "text/xml":
            raise TwimlError(f"{where} with Content-Type {delivery.content_type!r}, not text/xml")
        try:
            root = ET.fromstring(delivery.body.encode("utf-8"))
        except ET.ParseError as error:
            raise TwimlError(f"{where} with invalid XML ({error}): {delivery.body[:300]!r}")
        if root.tag != "Response":
            raise TwimlError(f"{where}: root element is <{root.tag}>, not <Response>")
        for verb in root:
            if verb.tag not in ALL_VERBS:
                raise TwimlError(f"{where}: unknown verb <{verb.tag}>")
            if verb.tag not in SIMULATED_VERBS:
                raise TwimlError(f"{where}: <{verb.tag}> is not simulated")
            allowed = {"Gather": GATHER_CHILDREN, "Dial": DIAL_NOUNS,
                       "Start": START_NOUNS, "Stop": START_NOUNS}.get(verb.tag, set())
            for child in verb:
                if child.tag not in allowed:
                    raise TwimlError(f"{where}: <{child.tag}> is not allowed in <{verb.tag}>")
        return root

    def _run(self, call: SimCall, redirects: int = 0) -> None:
        while call.live and call._pc < len(call._verbs):
            verb = call._verbs[call._pc]
            call._pc += 1
            tag = verb.tag
            if tag == "Say":
                self._say(call, verb)
            elif tag == "Play":
                if self._play(call, verb, waits=True):
                    return
            elif tag == "Pause":
                # <Pause length>: silence for that long, default 1 s (Pause docs).
                self._wait_on(call, verb, float(verb.get("length", "1")), lambda: self._resume(call, verb))
                return
            elif tag == "Gather":
                seconds = 0.0
                for child in verb:
                    if child.tag == "Say":
                        self._say(call, child)
                    elif child.tag == "Play":
                        self._play(call, child)
                        seconds += self._audio_length(child)
                    elif child.tag == "Pause":
                        seconds += float(child.get("length", "1"))
                # "Before Twilio begins the timeout period, it waits until all
                # nested verbs have executed" (Gather docs).
                seconds += float(verb.get("timeout", GATHER_TIMEOUT_DEFAULT))
                self._wait_on(call, verb, seconds, lambda: self._gather_timeout(call))
                return
            elif tag == "Dial":
                self._start_dial(call, verb)
                return
            elif tag == "Record":
                call.waiting_on = verb
                return
            elif tag == "Redirect":
                self._method(verb)
                target = urljoin(call._doc_url, (verb.text or "").strip())
                self._fetch(call, target, redirects=redirects + 1)
                return
            elif tag == "Hangup":
                self._end(call, "completed")
                return
            elif tag == "Reject":
                # Assumed: Twilio reports a rejected call as busy or no-answer.
                reason = verb.get("reason", "rejected")
                self._end(call, "busy" if reason == "busy" else "no-answer", duration=0)
                return
            elif tag == "Start":
                self._start(call, verb)
            elif tag == "Stop":
                self._stop(call, verb)
        if call.live:
            self._end(call, "completed")

    def _say(self, call: SimCall, verb: ET.Element) -> None:
        said = Said(verb.text or "", verb.get("voice"), verb.get("language"))
        call.heard.append(said)
        # "the outbound track represents the audio that Twilio generates on
        # the call" (Dial docs, recordingTrack): what this leg hears, our own
        # <Say> included, is transcribed as its outbound track.
        for transcription in call.transcriptions:
            if transcription["active"] and transcription["track"] in ("outbound_track", "both_tracks") and said:
                self._enqueue(lambda t=transcription: self._transcription_event(call, t, "transcription-content", {
                    "LanguageCode": t["language"], "Track": "outbound_track",
                    "TranscriptionData": json.dumps({"transcript": str(said), "confidence": 0.99}),
                    "Final": "true",
                }))

    def _play(self, call: SimCall, verb: ET.Element, waits: bool = False) -> bool:
        # A <Play> lasts as long as its audio, times `loop` ("0" loops until
        # the call ends): the call waits on it on the virtual clock.
        if verb.get("digits"):
            return False
        call.played.append((verb.text or "").strip())
        if not waits:
            return False
        if verb.get("loop") == "0":
            call.waiting_on = verb
            return True
        loops = int(verb.get("loop", "1") or 1)
        self._wait_on(call, verb, self._audio_length(verb) * loops, lambda: self._resume(call, verb))
        return True

    def _audio_length(self, verb: ET.Element) -> float:
        url = urljoin("", (verb.text or "").strip())
        if url not in self.audio_seconds:
            self.audio_seconds[url] = self._measure_audio(url)
        return self.audio_seconds[url]

    def _measure_audio(self, url: str) -> float:
        # A WAV the simulator can fetch is measured from its header; anything
        # else is taken to last UNKNOWN_AUDIO_SECONDS (a guess, named as one).
        data = self.media_fetcher(url) if self.media_fetcher else None
        if data:
            try:
                with wave.open(io.BytesIO(data)) as audio:
                    return audio.getnframes() / float(audio.getframerate())
            except (wave.Error, EOFError):
                pass
        return UNKNOWN_AUDIO_SECONDS

    def _wait_on(self, call: SimCall, verb: ET.Element, seconds: float, then: Callable[[], None]) -> None:
        self._stop_timer(call)
        call.waiting_on = verb

        def fire():
            if call.live and call.waiting_on is verb:
                call._timer = None
                then()

        call._timer = self.clock.call_later(seconds, fire, f"{call.sid} <{verb.tag}>")

    def _stop_timer(self, call: SimCall) -> None:
        if call._timer is not None:
            call._timer.cancel()
            call._timer = None

    def _resume(self, call: SimCall, verb: ET.Element) -> None:
        if call.waiting_on is verb:
            call.waiting_on = None
            self._run(call)

    def _music_ends(self, call: SimCall) -> None:
        verb = call.waiting_on
        if verb is None or verb.tag != "Play":
            raise TwimlError(f"{call!r} is not playing anything")
        if verb.get("loop") == "0":
            raise TwimlError(f"{call!r}: <Play loop=\"0\"> never ends by itself")
        self._until_verb_ends(call, verb)

    def _until_verb_ends(self, call: SimCall, verb: ET.Element) -> None:
        """Advance the clock to the moment the verb CALL waits on ends."""
        timer = call._timer
        if timer is None:
            raise TwimlError(f"{call!r}: <{verb.tag}> has no end on the clock")
        seconds = max(0.0, (timer.due - self.clock.now()).total_seconds())
        self.clock.advance(seconds, between=self.run_pending)
        if call.waiting_on is verb and call._timer is timer:
            raise TwimlError(f"{call!r}: <{verb.tag}> did not end")

    def _method(self, verb: ET.Element) -> None:
        if verb.get("method", "POST").upper() != "POST":
            raise TwimlError(f"<{verb.tag} method={verb.get('method')!r}>: only POST is simulated")

    def _start_dial(self, call: SimCall, verb: ET.Element) -> None:
        nouns = [DialedNoun(child.tag, (child.text or "").strip(), dict(child.attrib))
                 for child in verb]
        if not nouns and (verb.text or "").strip():
            nouns = [DialedNoun("Number", verb.text.strip())]
        if not nouns:
            raise TwimlError(f"{call!r}: <Dial> with nothing to dial")
        timeout = int(verb.get("timeout", DIAL_TIMEOUT_DEFAULT))
        if not DIAL_TIMEOUT_MIN <= timeout <= DIAL_TIMEOUT_MAX:
            raise TwimlError(f"<Dial timeout={timeout}>: Twilio takes 5 to 600 seconds")
        # The dialled leg carries the parent's caller ID unless callerId says
        # otherwise ("Caller's callerId" is the documented default).
        caller_id = verb.get("callerId") or call.from_
        noun = nouns[0]
        if noun.kind == "Sip" and not SIP_CALLER_ID.match(caller_id):
            raise TwimlError(f"<Dial callerId={caller_id!r}>: a SIP caller ID is letters, digits and +-_. only")
        call.dialed = nouns
        leg = DialLeg(_sid("CA"), noun, caller_id)
        call.dial = leg
        call.waiting_on = verb
        endpoint = self._sip_endpoint(noun)
        if endpoint is None:
            # Somebody the test plays answers at once (dial_ends ends it).
            leg.scripted = True
            leg.bridged = True
            leg.answered_at = self.clock.now()
            return
        user, host, headers = _sip_uri_parts(noun.target)
        headers.update({"X-Twilio-CallSid": leg.sid, "X-Twilio-AccountSid": self.account_sid})
        invite = SipInvite(from_user=caller_id, to_user=user, host=host, source_ip=self.signalling_ip,
                           username=noun.username, password=noun.password, headers=headers)
        try:
            leg.sip_call = endpoint.sip_invite(
                invite,
                on_answer=lambda: self._enqueue(lambda: self._dial_answered(call, leg)),
                on_bye=lambda reason: self._enqueue(lambda: self._far_end_ended(call, leg, reason)),
            )
        except SipRejected as refusal:
            code = refusal.status
            if code == NO_RESPONSE:
                # Dropped unanswered: Twilio hears nothing and gives up when
                # the <Dial> times out (how it reports that is a guess).
                leg.timer = self.clock.call_later(timeout + DIAL_TIMEOUT_BUFFER,
                                                  lambda: self._dial_leg_over(call, leg, "no-answer"),
                                                  f"{call.sid} <Dial> unanswered INVITE")
                return
            # 486 reads as busy, any other refusal as failed (Twilio's <Sip>
            # docs give the SIP code as DialSipResponseCode).
            status = "busy" if code == 486 else "failed"
            self._enqueue(lambda: self._dial_leg_over(call, leg, status, sip_code=code))
            return
        # Twilio gives up on an unanswered <Dial> after its timeout (plus the
        # documented five-second buffer) and cancels the INVITE.
        leg.timer = self.clock.call_later(timeout + DIAL_TIMEOUT_BUFFER,
                                          lambda: self._dial_timed_out(call, leg), f"{call.sid} <Dial> timeout")

    def _sip_endpoint(self, noun: DialedNoun):
        if noun.kind != "Sip":
            return None
        return self.sip_endpoints.get(_sip_uri_parts(noun.target)[1])

    def _dial_answered(self, call: SimCall, leg: DialLeg) -> None:
        if call.dial is not leg or not call.live:
            self._hang_up_far_end(leg)
            return
        leg.bridged = True
        leg.answered_at = self.clock.now()
        if leg.timer is not None:
            leg.timer.cancel()

    def _dial_timed_out(self, call: SimCall, leg: DialLeg) -> None:
        if call.dial is leg and not leg.bridged and call.live:
            self._dial_leg_over(call, leg, "no-answer", sip_code=487)

    def _far_end_ended(self, call: SimCall, leg: DialLeg, reason: str) -> None:
        """The far end hung up (LiveKit sent BYE, or refused a ringing INVITE)."""
        leg.sip_call = None
        if call.dial is not leg or not call.live:
            return
        self._dial_leg_over(call, leg, "completed" if leg.bridged else "no-answer",
                            sip_code=200 if leg.bridged else 480)

    def _dial_leg_over(self, call: SimCall, leg: DialLeg, status: str, sip_code: Optional[int] = None) -> None:
        if call.dial is not leg or not call.live or call.waiting_on is None or call.waiting_on.tag != "Dial":
            return
        self._dial_ends(call, status, None, sip_code=sip_code)

    def _hang_up_far_end(self, leg: Optional[DialLeg]) -> None:
        if leg is None:
            return
        if leg.timer is not None:
            leg.timer.cancel()
        sip_call, leg.sip_call = leg.sip_call, None
        if sip_call is not None:
            endpoint = self.sip_endpoints.get(sip_call.invite.host)
            if endpoint is not None:
                endpoint.sip_hangup(sip_call)

    def _start(self, call: SimCall, verb: ET.Element) -> None:
        for noun in verb:
            if noun.tag != "Transcription":
                continue
            target = noun.get("statusCallbackUrl")
            transcription = {
                "sid": _sid("GT"), "name": noun.get("name"), "active": True,
                "url": urljoin(call._doc_url, target) if target else None,
                "track": noun.get("track", "both_tracks"),
                "language": noun.get("languageCode", "en-US"),
                "sequence": itertools.count(1),
            }
            call.transcriptions.append(transcription)
            started = {
                "TranscriptionEngine": noun.get("transcriptionEngine", "google"),
                "ProviderConfiguration": json.dumps({"profanityFilter": "true"}),
            }
            self._enqueue(lambda t=transcription, extra=started: self._transcription_event(
                call, t, "transcription-started", extra))

    def _stop(self, call: SimCall, verb: ET.Element) -> None:
        for noun in verb:
            if noun.tag != "Transcription":
                continue
            for transcription in call.transcriptions:
                if transcription["active"] and transcription["name"] in (None, noun.get("name")):
                    self._stop_transcription(call, transcription)

    def _stop_transcription(self, call: SimCall, transcription: dict) -> None:
        transcription["active"] = False
        self._enqueue(lambda: self._transcription_event(
            call, transcription, "transcription-stopped", {}))

    def _transcription_event(self, call: SimCall, transcription: dict, event: str,
                             extra: dict) -> Optional[Delivery]:
        if not transcription["url"]:
            return None
        params = {
            "AccountSid": self.account_sid, "CallSid": call.sid,
            "TranscriptionSid": transcription["sid"], "TranscriptionEvent": event,
            "Timestamp": self.clock.now().isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "SequenceId": str(next(transcription["sequence"])),
        }
        params.update(extra)
        return self._send("transcription", transcription["url"], params)

    def _transcribe(self, call: SimCall, text: str, track: str, final: bool,
                    confidence: float) -> None:
        if track not in ("inbound_track", "outbound_track"):
            raise ValueError(track)
        for transcription in call.transcriptions:
            if transcription["active"] and transcription["track"] in (track, "both_tracks"):
                self._transcription_event(call, transcription, "transcription-content", {
                    "LanguageCode": transcription["language"], "Track": track,
                    "TranscriptionData": json.dumps(
                        {"transcript": text, "confidence": confidence}),
                    "Final": "true" if final else "false",
                })
                return
        raise TwimlError(f"{call!r} has no active <Transcription> covering {track}")

    def _waiting(self, call: SimCall, *tags: str) -> ET.Element:
        verb = call.waiting_on
        if not call.live or verb is None or verb.tag not in tags:
            where = verb.tag if verb is not None else None
            raise TwimlError(
                f"{call!r} is waiting on {where}, not {'/'.join(tags)}; "
                f"last TwiML: {call.twiml_log[-1] if call.twiml_log else None}")
        return verb

    def _gather_input(self, call: SimCall, digits: Optional[str] = None,
                      speech: Optional[str] = None, confidence: float = 0.9) -> None:
        gather = self._waiting(call, "Gather")
        kinds = gather.get("input", "dtmf").split()
        if digits is not None:
            if "dtmf" not in kinds:
                raise TwimlError(f"<Gather input={' '.join(kinds)!r}> does not take digits")
            finish = gather.get("finishOnKey", "#")
            params = {}
            if finish and finish in digits:
                digits = digits[:digits.index(finish)]
                params["FinishedOnKey"] = finish
            if gather.get("numDigits"):
                digits = digits[:int(gather.get("numDigits"))]
            if not digits:
                self._gather_timeout(call)
                return
            params["Digits"] = digits
        else:
            if "speech" not in kinds:
                raise TwimlError(f"<Gather input={' '.join(kinds)!r}> does not take speech")
            params = {"SpeechResult": speech, "Confidence": str(confidence)}
        self._method(gather)
        self._stop_timer(call)
        call.waiting_on = None
        self._fetch(call, urljoin(call._doc_url, gather.get("action") or call._doc_url), params)

    def _gather_silence(self, call: SimCall) -> None:
        self._until_verb_ends(call, self._waiting(call, "Gather"))

    def _gather_timeout(self, call: SimCall) -> None:
        gather = self._waiting(call, "Gather")
        self._stop_timer(call)
        call.waiting_on = None
        if gather.get("actionOnEmptyResult") == "true":
            self._method(gather)
            self._fetch(call, urljoin(call._doc_url, gather.get("action") or call._doc_url))
        else:
            self._run(call)

    def _dial_params(self, call: SimCall, status: str, duration: Optional[int],
                     sip_code: Optional[int] = None) -> dict:
        leg = call.dial
        params = {"DialCallStatus": status, "DialCallSid": call.dial_call_sid}
        bridged = bool(leg and leg.bridged)
        params["DialBridged"] = "true" if bridged else "false"
        if bridged:
            if duration is None:
                duration = int((self.clock.now() - leg.answered_at).total_seconds())
            params["DialCallDuration"] = str(duration)
        if sip_code is not None:
            params["DialSipResponseCode"] = str(sip_code)
        return params

    def _dial_ends(self, call: SimCall, status: str, duration: Optional[int],
                   sip_code: Optional[int] = None) -> None:
        if status not in DIAL_STATUSES:
            raise ValueError(status)
        dial = self._waiting(call, "Dial")
        if call.dial is not None and call.dial.scripted:
            call.dial.bridged = status in ("completed", "answered")
        params = self._dial_params(call, status, duration, sip_code)
        self._hang_up_far_end(call.dial)
        call.waiting_on = None
        call.dialed = []
        if dial.get("action"):
            self._method(dial)
            self._fetch(call, urljoin(call._doc_url, dial.get("action")), params)
        else:
            self._run(call)

    def _press_star(self, call: SimCall, duration: Optional[int]) -> None:
        dial = self._waiting(call, "Dial")
        if dial.get("hangupOnStar") != "true":
            raise TwimlError(f"{call!r}: * does nothing in a <Dial> without hangupOnStar=\"true\"")
        if not call.dial.bridged:
            # "hangupOnStar lets the initial caller hang up on the called
            # party": while that party still rings there is nobody to hang up
            # on. The docs do not say so outright; modelled as ignored.
            call.ignored_keys.append("*")
            return
        # Twilio drops the dialled party and requests the action like any
        # other end of the <Dial>; the documented parameters carry no trace
        # of the star itself.
        self._dial_ends(call, "completed", duration or None, sip_code=200)

    def _recording_done(self, call: SimCall, url: str, duration: int) -> None:
        record = self._waiting(call, "Record")
        self._method(record)
        call.waiting_on = None
        self._fetch(call, urljoin(call._doc_url, record.get("action") or call._doc_url), {
            "RecordingUrl": url, "RecordingSid": _sid("RE"),
            "RecordingDuration": str(duration),
        })

    def _abandon_dial(self, call: SimCall) -> None:
        """Tell a <Dial action> that the call left it, ignoring the TwiML it returns."""
        dial = call.waiting_on
        if dial is None or dial.tag != "Dial":
            return
        params = call._params()
        params.update(self._dial_params(call, "completed", None))
        self._hang_up_far_end(call.dial)
        call.waiting_on = None
        call.dialed = []
        action = dial.get("action")
        if action:
            self._send("dial-action", urljoin(call._doc_url, action), params)

    def _redirect(self, call: SimCall, url: str) -> None:
        if not call.live:
            return
        # Twilio's TwiML changelog (Dial, 2021-05-13): when a call in a
        # <Dial action> is modified to new TwiML, Twilio still requests the
        # action URL; the call then runs the new TwiML.
        self._abandon_dial(call)
        call.waiting_on = None
        self._fetch(call, url)

    def _hangup(self, call: SimCall, duration: Optional[int]) -> None:
        if not call.live:
            raise TwimlError(f"{call!r} has already ended")
        self._end(call, "completed", duration)

    def _end(self, call: SimCall, status: str, duration: Optional[int] = None) -> None:
        if not call.live:
            return
        waiting = call.waiting_on
        self._stop_timer(call)
        call.status = status
        call.ended_at = self.clock.now()
        if duration is None:
            start = call.answered_at or call.ended_at
            duration = int((call.ended_at - start).total_seconds())
        call.duration = duration
        if waiting is not None and waiting.tag == "Dial" and waiting.get("action"):
            # When the caller hangs up during a <Dial>, Twilio still requests
            # the action URL (with CallStatus=completed) and ignores its TwiML.
            call.waiting_on = waiting
            self._enqueue(lambda: self._abandon_dial(call))
        else:
            call.waiting_on = None
            self._hang_up_far_end(call.dial)
        for transcription in call.transcriptions:
            if transcription["active"]:
                self._stop_transcription(call, transcription)
        self._enqueue(lambda: self._status_callback(call, "completed", duration))


def _sip_uri_parts(uri: str) -> "tuple[str, str, dict[str, str]]":
    """(user, host, X- headers) of sip:user@host;params?headers."""
    rest = uri[4:] if uri.lower().startswith("sip:") else uri
    rest, _, query = rest.partition("?")
    user, _, host = rest.rpartition("@")
    host = host.split(";")[0].split(":")[0].lower()
    headers = {name: value for name, value in parse_qsl(query, keep_blank_values=True)}
    return user, host, headers


def basic_credentials(header: Optional[str]) -> Optional["tuple[str, str]"]:
    """Decode an HTTP Basic Authorization header into (user, password)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except ValueError:
        return None
    return user, password


__all__ = [
    "API_VERSION", "Delivery", "DialedNoun", "RestRequest", "Said",
    "SimCall", "TwilioNetwork", "TwimlError", "basic_credentials",
    "flask_client_transport", "http_transport",
]
