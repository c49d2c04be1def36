"""A stand-in for Twilio's side of phone calls.

It places calls on the service's webhooks, signs every request as Twilio
does, follows the TwiML it gets back, and answers the REST requests the
service makes through twilio-python.  Tests drive the people on the line
(`press`, `speak`, `hangup`, ...) and assert on what they heard.

Its jobs live apart: the calls and what they heard (twilio_calls.py), the
REST API (twilio_rest.py), the TwiML player (twiml_player.py) and its
<Dial> (twilio_dial.py); this module holds the network that schedules them:
the queue of webhooks to deliver, in turn, on the virtual clock.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import deque
from typing import Callable, Optional
from urllib.parse import urlencode

from app.sandbox.clock import VirtualClock
from app.sandbox.signing import signed_headers
from app.sandbox.twilio_calls import (
    ANSWERED_BY,
    API_VERSION,
    CALLS_PER_SECOND,
    TWILIO_SIGNALLING_IP,
    WEBHOOK_TIMEOUT_SECONDS,
    Delivery,
    DialedNoun,
    MediaFetcher,
    RestRequest,
    Said,
    SimCall,
    Transport,
    TwimlError,
    _rfc2822,
    _sid,
)
from app.sandbox.twilio_clients import AccessTokenRefused, BrowserClients
from app.sandbox.twilio_dial import DialPlayer
from app.sandbox.twilio_rest import RestApi, _error, basic_credentials
from app.sandbox.twiml_player import TwimlPlayer


def flask_client_transport(test_client, public_base_url: str) -> Transport:
    """Deliver webhooks to a Flask test client as if they came over the public URL."""
    base = public_base_url.rstrip("/")

    def send(url: str, params: dict, headers: dict, answered: Callable[[], None] | None = None):
        if not url.startswith(base):
            raise TwimlError(f"webhook URL {url!r} is not under the public base {base!r}")
        path = url[len(base):] or "/"
        response = test_client.post(
            path, data=urlencode(params), headers=headers, base_url=base)
        try:
            answer = response.status_code, response.headers.get("Content-Type", ""), response.get_data(as_text=True)
            if answered is not None:
                answered()
            return answer
        finally:
            response.close()  # as a WSGI server does once the body is sent: what the service runs on close runs now

    return send


def http_transport(timeout: float = 10.0) -> Transport:
    """Deliver webhooks over real HTTP."""
    import requests

    def send(url: str, params: dict, headers: dict, answered: Callable[[], None] | None = None):
        try:
            with requests.post(url, data=urlencode(params), headers=headers,
                               timeout=timeout, allow_redirects=False) as response:
                answer = response.status_code, response.headers.get("Content-Type", ""), response.text
                if answered is not None:
                    answered()  # over HTTP the server may already be past its own close: a bound, not an order
                return answer
        except requests.RequestException as error:
            return 599, "text/plain", f"{type(error).__name__}: {error}"

    return send


class TwilioNetwork(RestApi, TwimlPlayer, DialPlayer, BrowserClients):
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
        # Run before a REST-created call is answered (the call centre lets the
        # service's background work settle: a person takes a moment to pick up).
        self.before_answer: Optional[Callable[[], None]] = None
        # A service on the real clock (served over HTTP, not sharing this
        # simulator's virtual clock) needs a <Pause> to last in real time too.
        self.pauses_in_real_time = False
        # Whether an inbound track's transcription events carry its inboundTrackLabel as `Track` instead of
        # `inbound_track`: Twilio's docs do not say which (both are tested; see twiml_player._transcribe).
        self.track_labels = False
        self.audio_seconds: dict[str, float] = {}
        self.webhook_timeout = WEBHOOK_TIMEOUT_SECONDS
        self.calls_per_second = CALLS_PER_SECOND
        self._next_placement = self.clock.now()
        self.webhook_faults: list[tuple[str, int]] = []
        self.calls: dict[str, SimCall] = {}
        self.faults: list[tuple[str, str, int, int, str, bool]] = []
        # (route, method, work): run while the next such request is answered (while_answering_next).
        self.answer_hooks: list[tuple[str, str, Callable[[], None]]] = []
        self.numbers: dict[str, dict] = {}
        # TwiML Apps and API keys (twilio_clients.py): browsers' calls reach an App's Voice URL.
        self.applications: dict[str, dict] = {}
        self.api_keys: dict[str, dict] = {}
        # Recordings made by <Record>, by RecordingSid: their audio is served at their RecordingUrl.
        self.recordings: dict[str, dict] = {}
        # The account's verified outgoing caller IDs (OutgoingCallerIds): numbers it may show besides its own.
        self.verified_caller_ids: set[str] = set()
        # CallTokens given to inbound calls: token -> the caller's number it lets a new call show.
        self.call_tokens: dict[str, str] = {}
        self.rest_log: list[RestRequest] = []
        self.deliveries: list[Delivery] = []
        self.errors: list[BaseException] = []
        self._state = threading.RLock()
        # Webhooks go out one at a time and never under the state lock: the
        # service answers some of them by calling the REST side back.
        self._delivering = threading.RLock()
        self._pending: deque[tuple[Callable[[], None], bool]] = deque()
        # A seeded random.Random: callbacks side by side in the queue go out
        # in the order it picks (None: in the order they were fired).
        self.shuffle: Optional[random.Random] = None
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

    def incoming_call(self, from_: str, to: str, voice_url: Optional[str] = None,
                      status_callback: Optional[str] = None, stir_verstat: Optional[str] = None) -> SimCall:
        """Someone dials `to`: fetch its voice URL and follow the TwiML.

        STIR_VERSTAT: what Twilio made of the call's SHAKEN PASSporT, sent as StirVerstat ("present in
        incoming webhooks ... only present for incoming calls with SHAKEN PASSporT identity headers",
        twilio.com/docs/voice/trusted-calling-with-shakenstir); None, the default, for a call with none
        (any call from outside the United States). A guess, as for CallToken: on each of the call's requests."""
        number = self.number(to)
        if voice_url is None:
            voice_url = number and number["voice_url"]
        if not voice_url:
            raise TwimlError(f"no voice URL for {to}")
        if status_callback is None and number:
            status_callback = number["status_callback"] or None
        call = SimCall(self, _sid("CA"), from_, to, "inbound", "ringing",
                       url=voice_url, status_callback=status_callback)
        # "A call_token is generated when an incoming call is received on a Twilio number" (Call resource,
        # CallToken); its webhooks carry it as CallToken (a guess: on each of the call's requests, not only
        # the first). Its form here is ours: Twilio's is opaque.
        call.call_token = "CT" + uuid.uuid4().hex
        call.stir_verstat = stir_verstat
        with self._state:
            self.calls[call.sid] = call
            self.call_tokens[call.call_token] = from_
        self._drive(lambda: self._fetch(call, voice_url, answering=True))
        return call

    def _create_call(self, form) -> "tuple[int, dict]":
        """POST Calls.json, with Twilio's rule on its caller ID: a phone number as From must be the account's own.

        "If using a phone number, it must be a Twilio number or a verified
        caller ID" (Call resource, From); otherwise error 21210, "The From
        number used to make outbound call not a Twilio number or not a
        verified caller ID" (twilio.com/docs/errors/21210). The exception is
        a forwarded call: "Pass an incoming call's call_token value to a
        forwarded call via the call_token parameter ... A forwarded call
        should bear the same CallerID of the original incoming call" (Call
        resource, CallToken): From may then be that incoming call's caller.
        Guesses: a token another caller's call was given, or none Twilio
        issued, is refused as the From alone would be (21210); the token is
        not checked for expiry (the docs give it none).
        """
        caller_id = form.get("From") or ""
        forwarded = self.call_tokens.get(form.get("CallToken") or "") == caller_id
        if caller_id.startswith("+") and self.number(caller_id) is None and caller_id not in self.verified_caller_ids \
                and not forwarded:
            return _error(400, 21210, f"The source phone number provided, {caller_id}, is not yet verified for "
                                      "your account.")
        return super()._create_call(form)

    def answer(self, sid: str, answered_by: str = "human") -> SimCall:
        """The callee of a REST-created call picks up; Twilio fetches its Url.

        ANSWERED_BY is what the far end is, as answering-machine detection
        would report it (`human`, `machine_start`, `fax`, ...): sent as
        AnsweredBy with the request for the Url when the call asked for
        detection and sends no keys (twilio_calls.ANSWERED_BY, SEND_DIGITS).
        Without detection a machine hears the TwiML like anyone (the test
        then plays it: silence, no key). How long detection takes is not
        modelled: the Url is requested at once.
        """
        call = self.calls[sid]
        detection = call.machine_detection if not call.send_digits else None
        if detection and answered_by not in ANSWERED_BY[detection]:
            raise TwimlError(f"MachineDetection={detection} never reports AnsweredBy={answered_by}")
        if self.before_answer is not None:
            self.before_answer()

        def work():
            self._until_placed(call)
            if call.status != "queued" and call.status != "ringing":
                raise TwimlError(f"{call!r} cannot be answered")
            self._stop_timer(call)
            self._ring(call)
            call.status = "in-progress"
            call.answered_at = self.clock.now()
            self._status_callback(call, "answered")
            if call.send_digits:
                # Played to the far end once it connects (Call resource, SendDigits).
                call.digits_sent.append(call.send_digits)
            extra = {}
            if detection:
                call.answered_by = answered_by
                # Guess: how long detection took, which the docs name but do not bound.
                extra = {"AnsweredBy": answered_by, "MachineDetectionDuration": "2400"}
            self._fetch(call, call.url, extra)

        self._drive(work)
        return call

    def ring_out(self, sid: str, status: str = "no-answer") -> SimCall:
        """A REST-created call is never answered: no-answer, busy or failed."""
        if status not in ("no-answer", "busy", "failed"):
            raise ValueError(status)
        call = self.calls[sid]

        def work():
            self._until_placed(call)
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
        """Deliver the webhooks Twilio has queued; return how many ran.

        Callbacks next to each other in the queue (status callbacks, the
        action of a <Dial> whose call is gone, LiveKit's webhooks) go out in
        an order the seeded `shuffle` picks: "events are fired in order, [but]
        they are made as separate HTTP requests, and there is no guarantee
        they will arrive in the same order" (Call resource, StatusCallback).
        Everything else keeps its order.
        """
        if not self._pending:
            return 0
        done = 0
        with self._delivering:
            while True:
                with self._state:
                    if not self._pending:
                        return done
                    work = self._take_next()
                work()
                done += 1

    def _take_next(self) -> Callable[[], None]:
        if self.shuffle is not None and self._pending[0][1]:
            run = 1
            while run < len(self._pending) and self._pending[run][1]:
                run += 1
            if run > 1:
                pick = self.shuffle.randrange(run)
                self._pending.rotate(-pick)
                work = self._pending.popleft()[0]
                self._pending.rotate(pick)
                return work
        return self._pending.popleft()[0]

    def _until_placed(self, call: SimCall) -> None:
        # A phone rings only once Twilio has placed its call: time passes until then.
        wait = (call.placed_at - self.clock.now()).total_seconds()
        if wait > 0:
            self.clock.advance(wait, between=self.run_pending)

    def in_turn(self, work: Callable[[], None], callback: bool = True) -> None:
        """Run WORK (another service's webhook, say) in turn with Twilio's own deliveries.

        A CALLBACK may overtake its neighbours when callbacks are shuffled.
        """
        self._enqueue(work, callback=callback)

    def advance(self, seconds: float) -> int:
        """Let SECONDS pass on the virtual clock: timers fire in order, webhooks go out between them."""
        ran = 0

        def work():
            nonlocal ran
            ran = self.clock.advance(seconds, between=self.run_pending)

        self._drive(work)
        return ran

    def fail_next_webhook(self, path: str, status: int = 502) -> None:
        """The next TwiML request to a URL whose path is PATH never reaches the service: it gets STATUS
        (a proxy in front of the service failing, say)."""
        with self._state:
            self.webhook_faults.append((path, status))

    def _enqueue(self, work: Callable[[], None], callback: bool = False) -> None:
        with self._state:
            self._pending.append((work, callback))

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
        def answered() -> None:
            delivery.rest_before_answer = len(self.rest_log)

        delivery.status, delivery.content_type, delivery.body = self.transport(url, params, headers, answered)
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


__all__ = [
    "API_VERSION", "AccessTokenRefused", "Delivery", "DialedNoun", "RestRequest", "Said",
    "SimCall", "TwilioNetwork", "TwimlError", "basic_credentials",
    "flask_client_transport", "http_transport",
]
