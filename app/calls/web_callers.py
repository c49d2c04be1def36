"""Visitors calling from the website: who they said they are, kept until their browser's call arrives.

A visitor asks the public page for a token (the edge, app/webcall/), giving
an optional name and reason. Both are free text typed by anyone, so they are
cleaned here before anything stores them: control characters removed
(app/text.py), whitespace run together, card numbers and the like redacted
(app/summaries/redaction.py), and cut to a length. The visitor gets a fresh
random identity; the token lets their browser call as `client:<identity>`,
and Twilio's request for the voice webhook then carries
`From=client:<identity>`. `arrived` ties that call to the visitor: the
reason they typed becomes the call's reason unless they say one to the IVR,
and the timeline says who called from the website.

The IVR is not skipped: a web caller hears the same question as a phone
caller and answers with the page's keypad or by speaking, so routing, the
default queue after IVR_MAX_ATTEMPTS and a closed queue's options are the
same for both. A web caller has no number to ring back: callbacks are not
offered to them (routing/callbacks.callback_possible refuses any caller
whose number outbound calls may not dial, and `client:...` is no number).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.events import record_event
from app.models import CLIENT_PREFIX, Call, WebCaller, utcnow
from app.primitives.context import Telephony
from app.summaries.redaction import redact
from app.text import without_controls

# Twilio: a client identity "should not contain control, space, delimiters, or unwise characters. Mobile SDKs
# cannot include any special characters and must only use alphanumeric characters and underscore"
# (twilio.com/docs/voice/twiml/client). Ours: "web_" and 16 random hex digits, well inside the 32 characters
# a call's number is kept in with its prefix.
IDENTITY_PREFIX = "web_"
MAX_NAME = 80
MAX_REASON = 300
# A visitor whose browser never called is forgotten this long after asking (their token lasted minutes).
FORGET_AFTER = timedelta(days=1)


def clean_text(text: str | None, limit: int) -> str:
    """Free text typed on the public page, as it may be stored: no control characters, one space between
    words, card numbers and the like redacted, at most LIMIT characters."""
    return redact(" ".join(without_controls(text or "").split()))[:limit].strip()


def new_visitor(session: Session, name: str | None, reason: str | None) -> WebCaller:
    """A visitor about to call: a new random identity, with what they typed, cleaned."""
    visitor = WebCaller(identity=IDENTITY_PREFIX + secrets.token_hex(8), name=clean_text(name, MAX_NAME),
                        reason=clean_text(reason, MAX_REASON))
    session.add(visitor)
    # Visitors whose browser never called are kept no longer than a day.
    session.execute(delete(WebCaller).where(WebCaller.call_id.is_(None),
                                            WebCaller.created_at < utcnow() - FORGET_AFTER))
    session.flush()
    return visitor


def is_web_caller(number: str | None) -> bool:
    """Whether a call's number is a browser's (`client:<identity>`), not a phone number."""
    return (number or "").startswith(CLIENT_PREFIX)


def token_already_used(session: Session, from_number: str, call_sid: str) -> bool:
    """Whether FROM_NUMBER is a visitor's identity whose token has already placed a call other than CALL_SID.

    Twilio lets an access token place calls until it expires, so a token taken once could place call after call
    (a script, not a browser): the limit on the token endpoint would count tokens, not calls. Each token is
    for one call; its visitor is tied to the first (`arrived`)."""
    if not is_web_caller(from_number):
        return False
    identity = from_number[len(CLIENT_PREFIX):]
    placed = session.scalar(select(Call.call_sid).join(WebCaller, WebCaller.call_id == Call.id)
                            .where(WebCaller.identity == identity))
    return placed is not None and placed != call_sid


def arrived(t: Telephony, call: Call) -> WebCaller | None:
    """The call of a browser reached the voice webhook: tie it to the visitor who took its token (their
    reason becomes the call's until the IVR hears one), and say so on the timeline."""
    identity = call.from_number[len(CLIENT_PREFIX):]
    visitor = t.session.scalar(select(WebCaller).where(WebCaller.identity == identity))
    if visitor is None:
        # Twilio let the browser in with a token this service signed, so the row is gone (forgotten after a
        # day) or another instance's database: the call goes on, unnamed.
        record_event(t.session, call, "web_caller_unknown", identity=identity)
        return None
    visitor.call_id = call.id
    if visitor.reason and not call.ivr_reason:
        call.ivr_reason = visitor.reason
    record_event(t.session, call, "web_caller", visitor_name=visitor.name or None, reason=visitor.reason or None)
    return visitor
