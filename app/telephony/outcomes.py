"""How a call or a ring ended, in the service's own words: Twilio's status words are read here and nowhere else.

`CallProgress` is a call's status as Twilio reports it (a webhook's
`CallStatus`, a Call resource's `status`); `DialOutcome` is how a `<Dial>`
ended (`DialCallStatus`); `Missed` is why a leg that rang was not taken,
which is what the service stores as its end reason; `Answerer` is who
answered a call placed with answering-machine detection (read from
`AnsweredBy` by app/voice/forms.py); `caller_attestation` is what the
caller's carrier vouched for the caller ID (`StirVerstat`).
"""

from __future__ import annotations

import re
from enum import StrEnum

from app.models import LegStatus


class CallProgress(StrEnum):
    """A call's status as Twilio reports it, parsed once here; UNKNOWN for anything else."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    UNKNOWN = "unknown"  # what parse makes of any other word

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
        return self in _UNANSWERED

    @property
    def end_reason(self) -> str:
        """What the service stores as the end reason of a leg Twilio reports over in this status."""
        return Missed.of(self).value if self in _UNANSWERED else "ended"


_FINAL_PROGRESS = frozenset({CallProgress.COMPLETED, CallProgress.BUSY, CallProgress.FAILED,
                             CallProgress.NO_ANSWER, CallProgress.CANCELED})
_UNANSWERED = frozenset({CallProgress.BUSY, CallProgress.FAILED, CallProgress.NO_ANSWER, CallProgress.CANCELED})


class DialOutcome(StrEnum):
    """How a <Dial> ended (DialCallStatus); NONE when the request is not a Dial action."""

    COMPLETED = "completed"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    NONE = "none"  # not a <Dial> action's request, or a word not above

    @classmethod
    def parse(cls, value: str | None) -> "DialOutcome":
        """Twilio's DialCallStatus; NONE for anything else."""
        return _enum(cls, value, cls.NONE)

    @property
    def bridged(self) -> bool:
        """Whether the dialled party answered before the <Dial> ended."""
        return self in (DialOutcome.COMPLETED, DialOutcome.ANSWERED)


class Missed(StrEnum):
    """Why a ringing leg was not taken, in the service's words (its end reason)."""

    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"
    VOICEMAIL = "voicemail"  # a machine (answering machine, voicemail, fax) answered: nobody took it

    @classmethod
    def of(cls, progress: CallProgress) -> "Missed":
        """The reason an unanswered Twilio call gives (busy, failed, no-answer, canceled)."""
        return {CallProgress.NO_ANSWER: cls.NO_ANSWER, CallProgress.BUSY: cls.BUSY,
                CallProgress.FAILED: cls.FAILED, CallProgress.CANCELED: cls.CANCELED}[progress]

    @property
    def leg_status(self) -> LegStatus:
        """The leg's final status for this reason."""
        return {Missed.DECLINED: LegStatus.DECLINED, Missed.NO_ANSWER: LegStatus.NO_ANSWER,
                Missed.BUSY: LegStatus.BUSY, Missed.FAILED: LegStatus.FAILED,
                Missed.CANCELED: LegStatus.CANCELED, Missed.VOICEMAIL: LegStatus.NO_ANSWER}[self]

    @property
    def agent_missed_it(self) -> bool:
        """Whether it counts towards the agent being set away: only a call they let ring out.

        A busy softphone (SIP 486: the phone is in use) or a failed dial is
        not the agent letting a call ring, and does not count.
        """
        return self == Missed.NO_ANSWER


class Answerer(StrEnum):
    """Who picked up a call placed with answering-machine detection, in the service's words.

    PERSON also when detection was not asked for or could not tell (Twilio's
    `unknown`): such a target hears only who is transferring before a key.
    """

    PERSON = "person"
    MACHINE = "machine"  # an answering machine or a voicemail greeting
    FAX = "fax"

    @property
    def is_machine(self) -> bool:
        return self != Answerer.PERSON


def _enum(kind, value: str | None, default):
    try:
        return kind((value or "").strip().lower())
    except ValueError:
        return default


# Twilio's StirVerstat (twilio.com/docs/voice/trusted-calling-with-shakenstir): "TN-Validation-Passed-<level>"
# when it verified the caller's SHAKEN PASSporT, optionally followed by "-Diverted" or "-Passthrough";
# "TN-Validation-Failed[-<level>…]" or "NULL" when it could not; "No-TN-Validation" for a PASSporT it could not
# use. Sent only for a call that came with a PASSporT (so far, calls within the United States).
_VERIFIED = re.compile(r"TN-Validation-Passed-([ABC])(?:-(?:Diverted|Passthrough))?")


def caller_attestation(verstat: str) -> str | None:
    """What the caller's carrier vouched for, from STIR/SHAKEN: "A" (it knows the caller and their right to the
    number they call from), "B" (it knows the caller, not their right to the number), "C" (neither), each only
    when Twilio verified the carrier's signature; "failed" when Twilio could not; None when the call came with
    nothing to verify (no StirVerstat, or "No-TN-Validation")."""
    verstat = verstat.strip()
    if not verstat or verstat == "No-TN-Validation":
        return None
    verified = _VERIFIED.fullmatch(verstat)
    return verified.group(1) if verified else "failed"
