"""The parameters of Twilio's webhooks as small typed objects: Twilio's CamelCase stops here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from app.calls.inputs import (
    Arrival,
    BridgeEnd,
    DialOut,
    FallbackReport,
    IvrAnswer,
    Recording,
    TranscriptChunk,
)
from app.telephony.outcomes import Answerer, CallProgress, DialOutcome, caller_attestation
from app.text import ascii_digits, without_controls

# What a transcription event's `Track` may say for the service's own transcriptions (see transcript_chunk).
INBOUND_TRACK_NAMES = frozenset({"inbound_track", "caller", "agent"})
# No message lasts a day (our <Record> stops at its maxLength, 120 s): a longer length is not believed.
MAX_RECORDING_SECONDS = 86400


class MalformedWebhook(ValueError):
    """A signed webhook that lacks what its step needs."""


@dataclass(frozen=True)
class TwilioForm:
    """The parameters of a Twilio webhook, with Twilio's CamelCase stopped at this edge."""

    call_sid: str
    from_number: str
    to_number: str
    call_status: CallProgress
    digits: str
    speech_result: str
    dial_call_status: DialOutcome
    recording_url: str
    recording_duration: int | None
    transcription_event: str
    transcription_sid: str
    transcription_final: bool
    transcription_data: str
    track: str
    raw: Mapping[str, str]

    @classmethod
    def parse(cls, form: Mapping[str, str]) -> "TwilioForm":
        """Read the fields the service uses; anything missing becomes empty, never an error here."""
        sid = form.get("CallSid", "").strip()
        return cls(
            # Twilio's SIDs are CA + 32 hex digits (34 characters): anything else is no CallSid at all.
            call_sid=sid if _CALL_SID_RE.fullmatch(sid) else "",
            from_number=form.get("From", "").strip(),
            to_number=form.get("To", "").strip(),
            call_status=CallProgress.parse(form.get("CallStatus")),
            digits=form.get("Digits", "").strip(),
            speech_result=form.get("SpeechResult", "").strip(),
            dial_call_status=DialOutcome.parse(form.get("DialCallStatus")),
            recording_url=form.get("RecordingUrl", "").strip(),
            recording_duration=_int(form.get("RecordingDuration")),
            transcription_event=form.get("TranscriptionEvent", "").strip(),
            transcription_sid=form.get("TranscriptionSid", "").strip()[:64],
            transcription_final=form.get("Final", "true").strip().lower() == "true",
            transcription_data=form.get("TranscriptionData", ""),
            track=form.get("Track", "").strip(),
            raw=dict(form),
        )

    def require_call_sid(self) -> str:
        """The CallSid, or MalformedWebhook."""
        if not self.call_sid:
            raise MalformedWebhook("CallSid missing or malformed")
        return self.call_sid

    # What each step is given, in the service's words (app/calls/inputs.py).

    def arrival(self) -> Arrival:
        """The call reaching the number."""
        return Arrival(self.require_call_sid(), self.from_number[:32], self.to_number[:32],
                       self.raw.get("CallToken", "").strip()[:8192] or None,
                       caller_attestation(self.raw.get("StirVerstat", "")[:64]))

    def dial_out(self) -> DialOut:
        """An agent's phone dialling out through the SIP domain (its From and To are SIP URIs)."""
        return DialOut(self.require_call_sid(), self.from_number[:255], self.to_number[:255],
                       self.raw.get("SipUsername", "").strip()[:64])

    def started_transcription(self) -> str:
        """The SID of a transcription whose `transcription-started` event this is; '' for any other request."""
        return self.transcription_sid if self.transcription_event == "transcription-started" else ""

    def ivr_answer(self) -> IvrAnswer:
        """The caller's keys (digits only, at most four) and words (at most 500 characters, no control characters)."""
        digits = self.digits[:4] if ascii_digits(self.digits) else ""
        return IvrAnswer(digits, without_controls(self.speech_result).strip()[:500])

    def recording(self) -> Recording:
        """The message recorded, if any (an empty URL: nothing was recorded)."""
        duration = self.recording_duration
        # A length no recording has (<Record> stops at its maxLength) is not kept: it would not fit the column.
        return Recording(self.recording_url[:512],
                         duration if duration is not None and 0 <= duration <= MAX_RECORDING_SECONDS else None)

    def transcript_chunk(self) -> TranscriptChunk | None:
        """The words of a final transcription result on the party's own (inbound) track; None for anything else.

        An outbound track is what the leg hears, our own prompts included, so
        it is never anyone's words; partial results are replaced by a final one.
        """
        if self.transcription_event != "transcription-content" or not self.transcription_final:
            return None
        # Every transcription the service starts is of one inbound track, labelled "caller" or "agent" (the
        # speaker is known from the URL it reports to). Twilio does not document whether `Track` then says
        # inbound_track or the label, so either is the party's words; outbound_track never is.
        if self.track not in INBOUND_TRACK_NAMES:
            return None
        try:
            data = json.loads(self.transcription_data or "{}")
        except json.JSONDecodeError:
            raise MalformedWebhook("TranscriptionData is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedWebhook("TranscriptionData is not a JSON object")
        return TranscriptChunk(without_controls(str(data.get("transcript", ""))).strip())

    def answerer(self) -> Answerer:
        """Who answered a call placed with answering-machine detection (Twilio's AnsweredBy).

        Twilio sends `human`, `machine_start` or `fax` (MachineDetection=Enable),
        the `machine_end_beep`, `machine_end_silence` and `machine_end_other`
        verdicts of DetectMessageEnd, or `unknown`
        (twilio.com/docs/voice/answering-machine-detection). `unknown`, and
        anything else or nothing, is taken for a person: a choice, since
        what follows the answer says nothing of the caller before a key.
        """
        verdict = self.raw.get("AnsweredBy", "").strip().lower()
        if verdict == "fax":
            return Answerer.FAX
        if verdict.startswith("machine_"):
            return Answerer.MACHINE
        return Answerer.PERSON

    def fallback_report(self) -> FallbackReport:
        """Which error made Twilio ask the fallback URL, and where."""
        return FallbackReport(self.raw.get("ErrorCode", "")[:16], urlsplit(self.raw.get("ErrorUrl", "")).path[:128])

    def bridge_end(self) -> BridgeEnd:
        """How the caller's <Dial> into the room ended."""
        return BridgeEnd(call_over=self.call_status.is_final, dial=self.dial_call_status)


_CALL_SID_RE = re.compile(r"CA[0-9a-fA-F]{32}")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
