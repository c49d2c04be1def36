"""What the Twilio simulator knows of a call: the leg, the person on it, what it heard, what it dialled.

Constants here carry the Twilio documentation they come from; the simulator
(twilio_network.py) plays TwiML on these objects.
"""

from __future__ import annotations

import itertools
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Optional

from werkzeug.datastructures import MultiDict

if TYPE_CHECKING:
    from app.sandbox.twilio_network import TwilioNetwork


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

# send(url, params, headers, answered): the service's (status, content type, body); ANSWERED, if given, is
# called the moment the answer's body has arrived, before the service closes the response.
Transport = Callable[..., "tuple[int, str, str]"]
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
# "By default, each account is granted one CPS for calls created via POST
# requests to the /Calls endpoint ... Calls beyond your account's CPS limit
# will be queued and will execute at the CPS rate" (Call resource).
CALLS_PER_SECOND = 1.0
# "Twilio will wait for a total of 15 seconds to receive an HTTP response"
# (twilio.com/docs/api/errors/11205); then the fallback URL is requested.
WEBHOOK_TIMEOUT_SECONDS = 15.0
# A guess, not a documented number: how long an audio file the simulator
# cannot fetch (a third-party URL) is taken to play.
UNKNOWN_AUDIO_SECONDS = 30.0
# Where Twilio's SIP signalling comes from: an address in Twilio's published
# North America (Virginia) signalling range, 54.172.60.0/23.
TWILIO_SIGNALLING_IP = "54.172.60.1"
# AnsweredBy, as answering-machine detection reports who answered: MachineDetection=Enable answers "as
# soon as it identifies the called party" (human, machine_start, fax, unknown); DetectMessageEnd waits for
# the end of a machine's greeting (machine_end_beep, machine_end_silence, machine_end_other instead of
# machine_start). With standard (synchronous) detection the verdict comes with the request for the call's
# Url (twilio.com/docs/voice/answering-machine-detection).
ANSWERED_BY = {
    "Enable": frozenset({"human", "machine_start", "fax", "unknown"}),
    "DetectMessageEnd": frozenset({"human", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax",
                                   "unknown"}),
}
# SendDigits: "any digit (0-9), 'A', 'B', 'C', 'D', '#', and '*'", "'w' to insert a half-second pause and
# 'W' to insert a one-second pause", "a maximum length of 32 digits"; "If both SendDigits and
# MachineDetection parameters are provided, then MachineDetection will be ignored" (Call resource).
SEND_DIGITS = re.compile(r"^[0-9ABCD#*wW]{1,32}$")
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
    # How many REST requests the service had made when this answer arrived: the ones after it came later.
    rest_before_answer: int | None = None


@dataclass(frozen=True)
class RestRequest:
    """One REST request the service made to Twilio."""

    method: str
    path: str
    form: MultiDict
    query: MultiDict


def _rfc2822(moment: Optional[datetime]) -> Optional[str]:
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000") if moment else None


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


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
        # calls.create's MachineDetection and SendDigits; what detection said, the keys sent once answered.
        self.call_token: Optional[str] = None  # an inbound call's CallToken
        self.stir_verstat: Optional[str] = None  # an inbound call's StirVerstat, when its caller's carrier signed it
        self.machine_detection: Optional[str] = None
        self.send_digits: Optional[str] = None
        self.answered_by: Optional[str] = None
        self.digits_sent: list[str] = []
        self.created_at = network.clock.now()
        self.placed_at = self.created_at  # calls.create waits its turn at the account's calls per second
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

    def recording_done(self, url: Optional[str] = None, duration: int = 5) -> "SimCall":
        """Finish the <Record> the call is waiting on: a recording of DURATION seconds, kept by Twilio and served
        at its RecordingUrl; or, with URL, only that URL told to the service (nothing is served there)."""
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
            "price": None, "price_unit": "USD", "answered_by": self.answered_by, "caller_name": None,
            "forwarded_from": None, "group_sid": None,
            "queue_time": str(int((self.placed_at - self.created_at).total_seconds() * 1000)),
            "trunk_sid": None, "annotation": None,
            "uri": f"/{API_VERSION}/Accounts/{account}/Calls/{self.sid}.json",
            "subresource_uris": {},
        }

    def _params(self) -> dict:
        return {
            "AccountSid": self.network.account_sid, "ApiVersion": API_VERSION,
            "CallSid": self.sid, "CallStatus": self.status, "Direction": self.direction,
            "From": self.from_, "To": self.to, "Caller": self.from_, "Called": self.to,
            **({"CallToken": self.call_token} if self.call_token else {}),
            **({"StirVerstat": self.stir_verstat} if self.stir_verstat else {}),
        }
