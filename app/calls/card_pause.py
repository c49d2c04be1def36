"""The caller's real-time transcription stops while a card number is read, and starts again afterwards.

Twilio's real-time transcription "is not PCI compliant"
(twilio.com/docs/voice/api/realtime-transcription-resource), so once a
transcription result shows a card number being read, the service stops the
caller's transcription by REST (Status=stopped, by its SID: "Stop a
Transcription using either the SID of the Transcription resource or the
name") and starts it again with the same parameters
TRANSCRIPTION_CARD_PAUSE_SECONDS later, under a fresh name (what a name
used twice stops is not documented). The SID is the one its
transcription-started callback carried, or the one the create that resumed
it returned; before either is known the stop names it (`caller`), a
fallback said so in the event. What sets it off:

* the caller's words hold a run of at least four digits, written or spoken
  ("four one one one"), that could open a card number: not one starting
  with 0 (no payment card does), not a year, a date, an amount of money
  or a phone number in E.164 form;
* either party names the card number ("can I take your card number", "the
  long number on the front of the card").

Stopping takes effect only after Twilio has sent the result that set it
off, so the first digits are already with Twilio; in what is stored, those
digits (and any caller result still in flight while the pause lasts) are
replaced by the card marker, and the redactor runs on everything as before.
Only the caller's transcription stops: an agent's own leg goes on being
transcribed (what the agent says is the handover the summary needs), and a
card number an agent reads back is removed by the redactor.

The pause is kept in the database (`Call.transcription_paused_at`,
`transcription_resume_at`), never in a timer: it is resumed by the next
transcription callback of the call after the due time (an agent's words),
or by the resume pass that runs with each reconciler pass
(`resume_due_pauses`), whichever comes first.
"""

from __future__ import annotations

import re
import uuid
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kinds import Speaker
from app.logs import get_logger
from app.models import Call, utcnow
from app.primitives.context import Telephony
from app.primitives.effects import SwitchTranscription
from app.primitives.legs import caller_leg, lock_call
from app.summaries.redaction import CARD, DIGIT_RUN, PHONE_PREFIX, digits_of

log = get_logger("switchboard.calls")

# The name the greeting's and the hold's <Transcription> give the caller's transcription.
CALLER_TRANSCRIPTION = "caller"
# A card number's first group is four digits; fewer are an order number, a code, an amount.
CARD_START_DIGITS = 4

_NAMES_THE_CARD = re.compile(
    r"\bcard(?:'s|s)?\s+(?:number|details|no\b|num\b)"
    r"|\bnumbers?\s+(?:on|across)\s+(?:the\s+)?(?:front\s+of\s+)?(?:your|the)\s+card\b"
    r"|\blong\s+number\b"
    r"|\b(?:16|sixteen)[\s-]digits?\b",
    re.IGNORECASE,
)
_CURRENCY_BEFORE = re.compile(r"[$£€]\s*$")
_CURRENCY_AFTER = re.compile(r"\s*(?:dollars?|pounds?|euros?|cents?|pence|quid|bucks)\b", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})")


def screen(t: Telephony, call: Call, speaker: str, words: str) -> str:
    """WORDS of one final transcription result as they may be kept; pauses or resumes the caller's transcription.

    A result that shows a card number being read stops the caller's
    transcription (or keeps it stopped longer); a result after the pause is
    due starts it again. While the caller's transcription is paused, digit
    runs that could open a card number are removed from the caller's words.
    """
    now = utcnow()
    # TRANSCRIPTION_CARD_PAUSE_SECONDS=0: never paused (the redactor still removes card numbers).
    reason = card_reason(speaker, words) if t.settings.transcription_card_pause_seconds else None
    if reason is not None and call.transcription_paused_at is None:
        pause(t, call, reason, now)
    elif reason is not None and call.transcription_resume_at is not None:
        # The card is still being read: the pause lasts from now.
        call.transcription_resume_at = max(call.transcription_resume_at, _due_after(t, now))
    elif is_due(call, now):
        resume(t, call)
    if speaker == Speaker.CALLER and call.transcription_paused_at is not None:
        return _remove_card_starts(words)
    return words


def card_reason(speaker: str, words: str) -> str | None:
    """Why WORDS show a card number being read (`card_digits`, `card_number_named`), or None."""
    if speaker == Speaker.CALLER and _card_starts(words):
        return "card_digits"
    if _NAMES_THE_CARD.search(words):
        return "card_number_named"
    return None


def pause(t: Telephony, call: Call, reason: str, now: datetime) -> None:
    """Record that Twilio must stop the caller's transcription once the step is committed; due to resume later."""
    leg = caller_leg(call)
    if call.is_final or leg is None or leg.is_final:
        return
    call.transcription_paused_at = now
    call.transcription_resume_at = _due_after(t, now)
    # By SID; by the name the TwiML gave it only while no callback has told the SID yet (named in the event).
    t.effects.add(SwitchTranscription(call.id, caller_leg(call).twilio_call_sid or call.call_sid,
                                      call.transcription_sid or CALLER_TRANSCRIPTION, start=False, reason=reason))


def is_due(call: Call, now: datetime) -> bool:
    """Whether the call's paused transcription should start again by NOW."""
    return call.transcription_resume_at is not None and call.transcription_resume_at <= now


def resume(t: Telephony, call: Call) -> None:
    """Record that Twilio must start the caller's transcription again, with the parameters the TwiML uses."""
    leg = caller_leg(call)
    # Taken under the call's lock: a second resume (another worker, the next callback) finds nothing due.
    call.transcription_resume_at = None
    if call.is_final or leg is None or leg.is_final:
        call.transcription_paused_at = None
        return
    t.effects.add(SwitchTranscription(
        call.id, leg.twilio_call_sid or call.call_sid, f"{CALLER_TRANSCRIPTION}-{uuid.uuid4().hex[:8]}", start=True,
        status_callback_url=t.urls.transcription(call.id), language_code=t.settings.say_language,
        inbound_track_label="caller",
    ))


def transcription_started(call: Call, sid: str) -> None:
    """The caller's transcription SID started (its transcription-started callback): a pause stops it by SID."""
    if sid:
        call.transcription_sid = sid


def resume_due_pauses(step: Callable[[], AbstractContextManager[Telephony]], session: Session) -> list[int]:
    """Start again every caller transcription whose pause is over, one call per step; returns their call ids."""
    due = list(session.scalars(
        select(Call.id).where(Call.transcription_resume_at <= utcnow()).order_by(Call.id)
    ))
    session.rollback()  # no transaction open while the steps run
    resumed = []
    for call_id in due:
        with step() as t:
            call = lock_call(t, call_id)
            if call is not None and is_due(call, utcnow()):
                resume(t, call)
                resumed.append(call_id)
    if resumed:
        log.info("transcription_pauses_resumed", count=len(resumed))
    return resumed


def _due_after(t: Telephony, now: datetime) -> datetime:
    return now + timedelta(seconds=t.settings.transcription_card_pause_seconds)


def _card_starts(words: str) -> list[re.Match]:
    """The digit runs in WORDS that could open a card number."""
    found = []
    for match in DIGIT_RUN.finditer(words):
        digits = digits_of(match.group(0))
        if len(digits) < CARD_START_DIGITS or digits[0] == "0":
            continue  # ISO/IEC 7812: no payment card number starts with 0
        if len(digits) == 4 and 1900 <= int(digits) <= 2099:
            continue  # a year ("since 2019"): Mastercard's 2-series starts at 2221, and 1 is only UATP's
        before, after = words[:match.start()], words[match.end():]
        if PHONE_PREFIX.search(before) or _CURRENCY_BEFORE.search(before) or _CURRENCY_AFTER.match(after):
            continue
        if _DATE.fullmatch(match.group(0).strip()):
            continue
        found.append(match)
    return found


def _remove_card_starts(words: str) -> str:
    for match in reversed(_card_starts(words)):
        words = words[:match.start()] + CARD + words[match.end():]
    return words
