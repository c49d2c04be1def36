"""The parameters of Twilio's webhooks as small typed objects: Twilio's CamelCase stops here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


class MalformedWebhook(ValueError):
    """A signed webhook that lacks what its step needs."""


@dataclass(frozen=True)
class TwilioForm:
    """The parameters of a Twilio webhook, with Twilio's CamelCase stopped at this edge."""

    call_sid: str
    from_number: str
    to_number: str
    call_status: str
    digits: str
    speech_result: str
    confidence: float | None
    dial_call_status: str
    recording_url: str
    recording_duration: int | None
    sequence_number: int | None
    transcription_event: str
    transcription_final: bool
    transcription_data: str
    track: str
    raw: Mapping[str, str]

    @classmethod
    def parse(cls, form: Mapping[str, str]) -> "TwilioForm":
        """Read the fields the service uses; anything missing becomes empty, never an error here."""
        return cls(
            call_sid=form.get("CallSid", "").strip(),
            from_number=form.get("From", "").strip(),
            to_number=form.get("To", "").strip(),
            call_status=form.get("CallStatus", "").strip().lower(),
            digits=form.get("Digits", "").strip(),
            speech_result=form.get("SpeechResult", "").strip(),
            confidence=_float(form.get("Confidence")),
            dial_call_status=form.get("DialCallStatus", "").strip().lower(),
            recording_url=form.get("RecordingUrl", "").strip(),
            recording_duration=_int(form.get("RecordingDuration")),
            sequence_number=_int(form.get("SequenceNumber")),
            transcription_event=form.get("TranscriptionEvent", "").strip(),
            transcription_final=form.get("Final", "true").strip().lower() == "true",
            transcription_data=form.get("TranscriptionData", ""),
            track=form.get("Track", "").strip(),
            raw=dict(form),
        )

    def require_call_sid(self) -> str:
        """The CallSid, or MalformedWebhook."""
        if not self.call_sid.startswith("CA"):
            raise MalformedWebhook("CallSid missing or malformed")
        return self.call_sid


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
