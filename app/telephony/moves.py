"""Moving a live Twilio leg: the one way the service redirects a call."""

from __future__ import annotations

from app.events import record_event
from app.gateways.twilio import TwilioError
from app.models import Leg
from app.telephony.context import Telephony


def redirect_leg(t: Telephony, leg: Leg | None, url: str) -> bool:
    """Bump the leg's placement, commit, then have Twilio fetch URL for it; False if the leg is gone.

    Committing first means the webhooks the redirect causes (the new URL, and
    the action of the <Dial> it interrupts) see where the leg is meant to be.
    """
    if leg is None or not leg.twilio_call_sid:
        return False
    leg.placement += 1
    t.session.commit()
    try:
        moved = t.twilio.redirect_call(leg.twilio_call_sid, url)
    except TwilioError as error:
        record_event(t.session, leg.call, "leg_redirect_failed", leg_id=leg.id, error=str(error)[:200])
        return False
    if not moved:
        record_event(t.session, leg.call, "leg_redirect_missed", leg_id=leg.id, reason="call no longer in progress")
    return moved
