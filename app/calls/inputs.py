"""What a caller's steps are given, in the service's own words: read from Twilio's requests at the edge
(app/voice/forms.py), so the domain never sees Twilio's form."""

from __future__ import annotations

from dataclasses import dataclass

from app.telephony.outcomes import DialOutcome


@dataclass(frozen=True)
class Arrival:
    """A call that has just reached the number."""

    call_sid: str
    from_number: str
    to_number: str
    call_token: str | None = None  # Twilio's CallToken: lets a call placed for it show FROM_NUMBER
    attestation: str | None = None  # what the caller's carrier vouched for (telephony.outcomes.caller_attestation)


@dataclass(frozen=True)
class DialOut:
    """An agent's own phone dialling out through the SIP domain: who (FROM_URI, and the SIP_USERNAME Twilio
    authenticated, if any) dialled what (TO_URI)."""

    call_sid: str
    from_uri: str
    to_uri: str
    sip_username: str


@dataclass(frozen=True)
class IvrAnswer:
    """What the caller pressed or said to the IVR (either may be empty)."""

    digits: str
    speech: str


@dataclass(frozen=True)
class Recording:
    """A message the caller left (Twilio keeps the audio at URL)."""

    url: str
    duration_seconds: int | None

    @property
    def sid(self) -> str | None:
        """The recording's SID (RE…), the last part of its URL: what a log line may name. The URL itself plays the
        message to whoever has it (unless the account enforces HTTP auth on media), so it stays out of logs."""
        last = self.url.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0] if self.url else ""
        return last[:34] if last.startswith("RE") else None


@dataclass(frozen=True)
class TranscriptChunk:
    """One final piece of what a party said, from their own (inbound) track."""

    text: str


@dataclass(frozen=True)
class FallbackReport:
    """Twilio gave up on one of the service's answers and asked the fallback URL: which error, at which path."""

    error_code: str  # Twilio's ErrorCode, e.g. 11200 (the service's answer failed)
    error_path: str  # the path of the request whose answer it gave up on


@dataclass(frozen=True)
class BridgeEnd:
    """How a caller's <Dial> into the room ended."""

    call_over: bool  # the caller hung up
    dial: DialOutcome
