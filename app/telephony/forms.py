"""The parameters of Twilio's webhooks as small typed objects: Twilio's CamelCase stops here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Mapping


class MalformedWebhook(ValueError):
    """A signed webhook that lacks what its step needs."""


class CallProgress(StrEnum):
    """A call's status as Twilio reports it (CallStatus), parsed once here; UNKNOWN for anything else."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: str | None) -> "CallProgress":
        """Twilio's status text (a webhook's CallStatus, a Call resource's status); UNKNOWN for anything else."""
        return _enum(cls, value, cls.UNKNOWN)

    @property
    def is_final(self) -> bool:
        """Whether the call has ended."""
        return self in _FINAL_PROGRESS

    @property
    def unanswered(self) -> bool:
        """Whether the call ended without being answered."""
        return self in (CallProgress.BUSY, CallProgress.FAILED, CallProgress.NO_ANSWER, CallProgress.CANCELED)


_FINAL_PROGRESS = frozenset({CallProgress.COMPLETED, CallProgress.BUSY, CallProgress.FAILED,
                             CallProgress.NO_ANSWER, CallProgress.CANCELED})


class DialOutcome(StrEnum):
    """How a <Dial> ended (DialCallStatus); NONE when the request is not a Dial action."""

    COMPLETED = "completed"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    NONE = "none"

    @property
    def bridged(self) -> bool:
        """Whether the dialled party answered before the <Dial> ended."""
        return self in (DialOutcome.COMPLETED, DialOutcome.ANSWERED)


def _enum(kind, value: str | None, default):
    try:
        return kind((value or "").strip().lower())
    except ValueError:
        return default


@dataclass(frozen=True)
class TwilioForm:
    """The parameters of a Twilio webhook, with Twilio's CamelCase stopped at this edge."""

    call_sid: str
    from_number: str
    to_number: str
    call_status: CallProgress
    digits: str
    speech_result: str
    confidence: float | None
    dial_call_status: DialOutcome
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
        sid = form.get("CallSid", "").strip()
        return cls(
            # Twilio's SIDs are CA + 32 hex digits (34 characters): anything else is no CallSid at all.
            call_sid=sid if _CALL_SID_RE.fullmatch(sid) else "",
            from_number=form.get("From", "").strip(),
            to_number=form.get("To", "").strip(),
            call_status=CallProgress.parse(form.get("CallStatus")),
            digits=form.get("Digits", "").strip(),
            speech_result=form.get("SpeechResult", "").strip(),
            confidence=_float(form.get("Confidence")),
            dial_call_status=_enum(DialOutcome, form.get("DialCallStatus"), DialOutcome.NONE),
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
        if not self.call_sid:
            raise MalformedWebhook("CallSid missing or malformed")
        return self.call_sid


_CALL_SID_RE = re.compile(r"CA[0-9a-fA-F]{32}")


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
