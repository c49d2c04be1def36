"""The Twilio simulator's TwiML player: fetch a document, run its verbs, wait on the clock, end the call."""

from __future__ import annotations

import io
import itertools
import json
import time
import wave
import xml.etree.ElementTree as ET
from typing import Callable, Optional
from urllib.parse import urljoin, urlsplit

from app.sandbox.twilio_calls import (
    ALL_VERBS,
    DIAL_NOUNS,
    GATHER_CHILDREN,
    GATHER_TIMEOUT_DEFAULT,
    SIMULATED_VERBS,
    START_NOUNS,
    UNKNOWN_AUDIO_SECONDS,
    Delivery,
    Said,
    SimCall,
    TwimlError,
    _sid,
)


class TwimlPlayer:
    """Fetches TwiML for a call and runs it verb by verb, as Twilio does."""

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

    def _start(self, call: SimCall, verb: ET.Element) -> None:
        for noun in verb:
            if noun.tag != "Transcription":
                continue
            target = noun.get("statusCallbackUrl")
            self._begin_transcription(
                call, noun.get("name"), urljoin(call._doc_url, target) if target else None,
                noun.get("track", "both_tracks"), noun.get("languageCode", "en-US"),
                noun.get("transcriptionEngine", "google"), label=noun.get("inboundTrackLabel"))

    def _begin_transcription(self, call: SimCall, name: Optional[str], url: Optional[str], track: str,
                             language: str, engine: str = "google", label: Optional[str] = None) -> dict:
        """A real-time transcription starts on CALL (<Start><Transcription>, or the REST API); `transcription-started`."""
        transcription = {
            "sid": _sid("GT"), "name": name, "active": True, "url": url, "track": track, "label": label,
            "language": language, "sequence": itertools.count(1),
            # Words spoken on its track after it stopped: nobody transcribed them.
            "unheard": [],
            "updated_at": self.clock.now(),
        }
        call.transcriptions.append(transcription)
        started = {
            "TranscriptionEngine": engine,
            "ProviderConfiguration": json.dumps({"profanityFilter": "true"}),
        }
        self._enqueue(lambda: self._transcription_event(call, transcription, "transcription-started", started))
        return transcription

    def _stop(self, call: SimCall, verb: ET.Element) -> None:
        for noun in verb:
            if noun.tag != "Transcription":
                continue
            for transcription in call.transcriptions:
                if transcription["active"] and transcription["name"] in (None, noun.get("name")):
                    self._stop_transcription(call, transcription)

    def _stop_transcription(self, call: SimCall, transcription: dict) -> None:
        transcription["active"] = False
        transcription["updated_at"] = self.clock.now()
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
                # Twilio does not document whether an inbound track's events name it `inbound_track` or by
                # the inboundTrackLabel given (a guess either way): `track_labels` switches to the label.
                named = transcription["label"] if self.track_labels and track == "inbound_track" else None
                self._transcription_event(call, transcription, "transcription-content", {
                    "LanguageCode": transcription["language"], "Track": named or track,
                    "TranscriptionData": json.dumps(
                        {"transcript": text, "confidence": confidence}),
                    "Final": "true" if final else "false",
                })
                return
        stopped = [t for t in call.transcriptions if t["track"] in (track, "both_tracks")]
        if stopped and call.live:
            # Its transcription was stopped: the words are spoken, and no callback carries them.
            stopped[-1]["unheard"].append(text)
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

    def _recording_done(self, call: SimCall, url: Optional[str], duration: int) -> None:
        record = self._waiting(call, "Record")
        self._method(record)
        call.waiting_on = None
        if url is None:
            # Kept, and served at its RecordingUrl, whose last part is its sid (twilio_rest.py).
            url = self.new_recording(call, duration)
            sid = url.rsplit("/", 1)[-1]
        else:
            sid = _sid("RE")
        self._fetch(call, urljoin(call._doc_url, record.get("action") or call._doc_url), {
            "RecordingUrl": url, "RecordingSid": sid, "RecordingDuration": str(duration),
        })

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
            self._enqueue(lambda: self._abandon_dial(call), callback=True)
        else:
            call.waiting_on = None
            self._hang_up_far_end(call.dial)
        for transcription in call.transcriptions:
            if transcription["active"]:
                self._stop_transcription(call, transcription)
        self._enqueue(lambda: self._status_callback(call, "completed", duration), callback=True)
