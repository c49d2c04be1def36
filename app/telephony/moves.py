"""Moving a live Twilio leg: the one way the service redirects a call."""

from __future__ import annotations

from enum import StrEnum

from app.events import record_event
from app.gateways.twilio import TwilioError
from app.models import Leg
from app.telephony.context import Telephony


class Moved(StrEnum):
    """What became of a redirect: MOVED, GONE (the call is over, or never was a Twilio call), FAILED."""

    MOVED = "moved"
    GONE = "gone"
    FAILED = "failed"


def redirect_leg(t: Telephony, leg: Leg | None, url: str) -> Moved:
    """Bump the leg's placement, commit, then have Twilio fetch URL for it.

    Returns MOVED, GONE (the call is over, or was never a Twilio call) or
    FAILED (Twilio did not answer or refused: the call may still be up).
    Committing first means the webhooks the redirect causes (the new URL, and
    the action of the <Dial> it interrupts) see where the leg is meant to be.
    """
    if leg is None or not leg.twilio_call_sid:
        return Moved.GONE
    leg.placement += 1
    t.session.commit()
    try:
        moved = t.twilio.redirect_call(leg.twilio_call_sid, url)
    except TwilioError as error:
        record_event(t.session, leg.call, "leg_redirect_failed", leg_id=leg.id, error=str(error)[:200])
        return Moved.FAILED
    if not moved:
        record_event(t.session, leg.call, "leg_redirect_missed", leg_id=leg.id, reason="call no longer in progress")
        return Moved.GONE
    return Moved.MOVED
