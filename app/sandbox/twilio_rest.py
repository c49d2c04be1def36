"""The Twilio simulator's REST API: calls and phone numbers, as twilio-python reaches them."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import struct
import wave
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

from werkzeug.datastructures import MultiDict

from app.sandbox.twilio_calls import (
    ANSWERED_BY,
    API_VERSION,
    RING_TIMEOUT_DEFAULT,
    SEND_DIGITS,
    RestRequest,
    SimCall,
    _rfc2822,
    _sid,
)


@dataclass(frozen=True)
class Media:
    """A REST answer that is a file, not JSON: a recording's audio."""

    content_type: str
    data: bytes


# A recording's audio as the stand-in makes it: 8 kHz, 16-bit, mono, a quiet tone (so a player has something to
# play; no stand-in carries the caller's real audio).
RECORDING_RATE = 8000
RECORDING_TONE_HZ = 440


def recording_wav(seconds: int) -> bytes:
    """A WAV file of SECONDS of a quiet tone."""
    frames = RECORDING_RATE * max(1, seconds)
    one_cycle = [int(3000 * math.sin(2 * math.pi * i / (RECORDING_RATE / RECORDING_TONE_HZ)))
                 for i in range(RECORDING_RATE // RECORDING_TONE_HZ)]
    samples = (one_cycle * (frames // len(one_cycle) + 1))[:frames]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(RECORDING_RATE)
        audio.writeframes(struct.pack(f"<{frames}h", *samples))
    return buffer.getvalue()


class RestApi:
    """Twilio's REST API for the simulator: Calls, IncomingPhoneNumbers and Recordings."""

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

    def new_recording(self, call: SimCall, duration: int) -> str:
        """Keep a recording of DURATION seconds made on CALL (a <Record>); its RecordingUrl, as Twilio gives it
        (no extension: the WAV)."""
        sid = _sid("RE")
        with self._state:
            self.recordings[sid] = {"sid": sid, "call_sid": call.sid, "duration": duration,
                                    "date_created": self.clock.now(), "audio": recording_wav(duration)}
        return "https://api.twilio.com" + self._path(f"Recordings/{sid}")

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
            meanwhile = _take_first(self.answer_hooks, route, method)
            fault = _take_first(self.faults, route, method)
            if fault is not None and not fault[5]:
                answer = _error(*fault[2:5])
            else:
                answer = self._route(route, method, path, form, query)
                # Applied but answered with an error: Twilio did it, the client never heard so.
                answer = _error(*fault[2:5]) if fault is not None else answer
        if meanwhile is not None:
            meanwhile[2]()  # outside the state lock: it may place calls and deliver webhooks
        return answer

    def _route(self, route: str, method: str, path: str, form: MultiDict, query: MultiDict) -> "tuple[int, dict]":
        browser = self._client_route(route, method, path, form, query)  # TwiML Apps and API keys (twilio_clients.py)
        if browser is not None:
            return browser
        if route == "Calls.json" and method == "POST":
            return self._create_call(form)
        found = re.fullmatch(r"Calls/([^/]+)/Transcriptions(?:/([^/]+))?\.json", route)
        if found and method == "POST":
            call = self.calls.get(found.group(1))
            if call is None:
                return _error(404, 20404, f"The requested resource {path} was not found")
            if found.group(2) is None:
                return self._create_transcription(call, form)
            return self._update_transcription(call, found.group(2), form, path)
        found = re.fullmatch(r"Calls/([^/]+)\.json", route)
        if found and method in ("GET", "POST"):
            call = self.calls.get(found.group(1))
            if call is None:
                return _error(404, 20404, f"The requested resource {path} was not found")
            if method == "GET":
                return 200, call.resource()
            return self._update_call(call, form)
        found = re.fullmatch(r"Recordings/(RE[0-9a-f]+)(\.wav|\.mp3|\.json)?", route)
        if found and method == "GET" and found.group(1) in self.recordings:
            return self._recording(self.recordings[found.group(1)], found.group(2) or ".wav", path)
        if route == "Calls.json" and method == "GET":
            return self._list_calls(query, path)
        if route == "IncomingPhoneNumbers.json" and method == "GET":
            return self._list_numbers(query, path)
        found = re.fullmatch(r"IncomingPhoneNumbers/([^/]+)\.json", route)
        if found and method in ("GET", "POST") and found.group(1) in self.numbers:
            resource = self.numbers[found.group(1)]
            if method == "POST":
                self._update_number(resource, form)
            return 200, self._number_resource(resource)
        return _error(404, 20404, f"The requested resource {path} was not found")

    def _recording(self, recording: dict, extension: str, path: str) -> "tuple[int, dict | Media]":
        """A recording's media: the WAV without an extension or with .wav (audio/x-wav), its resource with .json.

        Twilio: "Fetch a Recording media file" (twilio.com/docs/voice/api/recording); the account here has
        "Enforce HTTP Auth on Media URLs" on, as Twilio recommends (help.twilio.com, "Prevent unauthorized access
        to your Programmable Voice Media with HTTP Basic Auth"), so the media needs the account's credentials
        like any REST request (checked in handle_rest: 401, 20003). Not modelled: the MP3 (.mp3 is 404 here; the
        service asks for the WAV), Twilio's redirect of media requests to its storage, a recording still being
        processed.
        """
        if extension == ".mp3":
            return _error(404, 20404, f"The requested resource {path} was not found (MP3 is not simulated)")
        if extension == ".json":
            return 200, {"sid": recording["sid"], "account_sid": self.account_sid, "call_sid": recording["call_sid"],
                         "duration": str(recording["duration"]), "date_created": _rfc2822(recording["date_created"]),
                         "api_version": API_VERSION, "status": "completed", "channels": 1, "source": "RecordVerb",
                         "uri": self._path(f"Recordings/{recording['sid']}.json")}
        return 200, Media("audio/x-wav", recording["audio"])

    def fail_next(self, route: str = "Calls.json", status: int = 500, code: int = 20500,
                  message: str = "Internal Server Error", method: str = "POST", applied: bool = False) -> None:
        """Make the next METHOD request to ROUTE (e.g. POST Calls.json) fail as Twilio's API does.

        APPLIED: Twilio carries the request out, and only its answer is the
        error (a 5xx "may or may not have been applied", and an answer lost on
        the way looks the same to the client): a call is placed all the same.
        """
        with self._state:
            self.faults.append((route, method.upper(), status, code, message, applied))

    def while_answering_next(self, route: str, work: Callable[[], None], method: str = "GET") -> None:
        """Run WORK while the next METHOD request to ROUTE is answered, before the client hears the answer.

        A slow answer is `network.clock.advance(seconds)` here (the request
        took that long); a call arriving meanwhile is `incoming_call(...)`.
        """
        with self._state:
            self.answer_hooks.append((route, method.upper(), work))

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
        if isinstance(payload, Media):
            return status, {"Content-Type": payload.content_type}, payload.data
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
        detection, digits = form.get("MachineDetection"), form.get("SendDigits")
        if detection and detection not in ANSWERED_BY:
            # Guess: the code for a MachineDetection value other than the two documented is not named.
            return _error(400, 21218, f"Invalid MachineDetection {detection!r}.")
        if digits and not SEND_DIGITS.match(digits):
            # Guess: the docs name the keys allowed, not the error for others.
            return _error(400, 21218, f"Invalid SendDigits {digits!r}.")
        call = SimCall(self, _sid("CA"), form["From"], form["To"], "outbound-api", "queued",
                       url=form["Url"], status_callback=form.get("StatusCallback"),
                       status_events=form.getlist("StatusCallbackEvent"), timeout=timeout)
        call.fallback_url = form.get("FallbackUrl") or None
        call.machine_detection, call.send_digits = detection or None, digits or None
        self.calls[call.sid] = call
        now = self.clock.now()
        call.placed_at = max(now, self._next_placement)
        self._next_placement = call.placed_at + timedelta(seconds=1 / self.calls_per_second)

        def place() -> None:
            self._enqueue(lambda: self._status_callback(call, "initiated"), callback=True)
            # Nobody picks up within Timeout: no-answer (Call resource, Timeout).
            call._timer = self.clock.call_later(timeout, lambda: self._ring_timed_out(call), f"{call.sid} rings out")

        if call.placed_at > now:
            call._timer = self.clock.call_later((call.placed_at - now).total_seconds(), place,
                                                f"{call.sid} waits for its turn (calls per second)")
        else:
            place()
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

    def _create_transcription(self, call: SimCall, form: MultiDict) -> "tuple[int, dict]":
        """POST Calls/{sid}/Transcriptions.json: a real-time transcription starts on the live call.

        Twilio: "You can start and stop a transcription on any in-progress
        call via API or via the <Transcription> TwiML Noun"; the parameters
        are <Transcription>'s (twilio.com/docs/voice/api/realtime-transcription-resource).
        """
        if call.status != "in-progress":
            # Guess: the docs name no error for a call that is not in progress; the Call resource's 21220.
            return _error(400, 21220, "Call is not in-progress. Cannot start a transcription.")
        name = form.get("Name") or None
        if name and any(t["active"] and t["name"] == name for t in call.transcriptions):
            # Guess (the code borrowed too): the docs do not say what a second live transcription of
            # one name does; refused here, so a service that starts one twice is caught.
            return _error(400, 21220, f"A transcription named {name!r} is already in progress on this call.")
        track = form.get("Track") or "inbound_track"
        transcription = self._begin_transcription(
            call, name, form.get("StatusCallbackUrl") or None, track, form.get("LanguageCode") or "en-US",
            form.get("TranscriptionEngine") or "google", label=form.get("InboundTrackLabel") or None)
        transcription["form"] = dict(form.items())
        return 201, self._transcription_resource(call, transcription)

    def _update_transcription(self, call: SimCall, sid_or_name: str, form: MultiDict,
                              path: str) -> "tuple[int, dict]":
        """POST Calls/{sid}/Transcriptions/{Sid or Name}.json, Status=stopped: the transcription stops.

        "Stop a Transcription using either the SID of the Transcription
        resource or the name used when creating the resource"; Status "Value
        is stopped" (realtime-transcription-resource). Its `transcription-stopped`
        callback follows, and no content after it (twilio.com/docs/voice/twiml/transcription).
        """
        if form.get("Status") != "stopped":
            # Guess: the code for another Status is not documented for this resource.
            return _error(400, 21218, f"Invalid Status {form.get('Status')!r}.")
        named = [t for t in call.transcriptions if sid_or_name in (t["sid"], t["name"])]
        if not named:
            # Guess: an unknown SID or name is answered as any unknown resource is (20404).
            return _error(404, 20404, f"The requested resource {path} was not found")
        # A name may have been used again after a stop: the live one is meant, else the newest.
        transcription = next((t for t in named if t["active"]), named[-1])
        if transcription["active"]:
            self._stop_transcription(call, transcription)
        # Guess: stopping one that is already stopped answers its resource again and sends no callback.
        return 200, self._transcription_resource(call, transcription)

    def _transcription_resource(self, call: SimCall, transcription: dict) -> dict:
        return {
            "sid": transcription["sid"], "account_sid": self.account_sid, "call_sid": call.sid,
            "name": transcription["name"], "status": "in-progress" if transcription["active"] else "stopped",
            "date_updated": _rfc2822(transcription["updated_at"]),
            "uri": self._path(f"Calls/{call.sid}/Transcriptions/{transcription['sid']}.json"),
        }

    def _list_calls(self, query: MultiDict, path: str) -> "tuple[int, dict]":
        """GET Calls.json: the account's calls, newest first, one page at a time; Status keeps one status.

        Twilio: PageSize at most 1000 (error 20007); each page names the next
        by next_page_uri (with a PageToken), null on the last
        (twilio.com/docs/voice/api/call-resource#read-multiple-call-resources,
        twilio.com/docs/usage/twilios-response). The token here is the sid
        the page ends after (PA) or starts before (PB), so a call that ends or
        begins meanwhile moves no other call to another page. Of the filters
        only Status is served.
        """
        try:
            page_size, page = int(query.get("PageSize") or 50), int(query.get("Page") or 0)
        except ValueError:
            return _error(400, 20001, "Invalid paging parameter")  # Guess: the docs name no code for this
        if page_size > 1000:
            return _error(400, 20007, "Page size too large")
        newest_first = list(reversed(self.calls.values()))
        token, sids = query.get("PageToken") or "", [call.sid for call in newest_first]
        if token[2:] and token[2:] not in sids:
            return _error(400, 21481, "Invalid PageToken")
        if token.startswith("PA"):
            newest_first = newest_first[sids.index(token[2:]) + 1:]
        elif token.startswith("PB"):
            newest_first = newest_first[:sids.index(token[2:])]
        wanted = [call for call in newest_first if call.status == query["Status"]] if query.get("Status") \
            else newest_first
        found = wanted[-page_size:] if token.startswith("PB") else wanted[:page_size]
        more_after = len(wanted) > page_size and not token.startswith("PB")

        def page_uri(number: int, page_token: str = "") -> str:
            params = {**({"Status": query["Status"]} if query.get("Status") else {}), "PageSize": page_size,
                      "Page": number, **({"PageToken": page_token} if page_token else {})}
            return f"{path}?{urlencode(params)}"

        return 200, {
            "calls": [call.resource() for call in found], "page": page, "page_size": page_size,
            "start": page * page_size, "end": page * page_size + max(len(found) - 1, 0),
            "uri": page_uri(page, token), "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1, "PA" + found[-1].sid) if found and more_after else None,
            "previous_page_uri": page_uri(page - 1, "PB" + found[0].sid) if found and page > 0 else None,
        }

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


def basic_credentials(header: Optional[str]) -> Optional["tuple[str, str]"]:
    """Decode an HTTP Basic Authorization header into (user, password)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except ValueError:
        return None
    return user, password


def _take_first(pending: list, route: str, method: str):
    """Remove and return the first of PENDING (route, method, ...) meant for ROUTE and METHOD, or None."""
    for index, entry in enumerate(pending):
        if entry[0] == route and entry[1] == method:
            return pending.pop(index)
    return None


def _error(status: int, code: int, message: str) -> "tuple[int, dict]":
    return status, {
        "code": code, "message": message, "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
    }
