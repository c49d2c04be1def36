"""Moving a live Twilio leg: the one way the service redirects a call."""

from __future__ import annotations

from app.models import Leg
from app.primitives.context import Telephony
from app.primitives.effects import HangUp, Redirect


def redirect_leg(t: Telephony, leg: Leg | None, url: str, *, hang_up_otherwise: bool = False,
                 if_failed: str | None = None, if_gone: str | None = None) -> bool:
    """Bump the leg's placement and record that Twilio must fetch URL for it once the step is committed.

    The URL carries the new placement (v=): the answer to it belongs to that
    placement, so when a later move of the same leg overtakes it (two steps
    a few milliseconds apart), the <Dial> that answer starts is known as
    stale once the later redirect ends it, and is not taken for a `*`.
    False when there is nothing to redirect (no leg, or not a Twilio call).
    The redirect runs after the commit (app/primitives/effects.py), so the
    webhooks it causes (the new URL, and the action of the <Dial> it
    interrupts) read where the leg is meant to be. HANG_UP_OTHERWISE ends the
    call if it cannot be moved; IF_FAILED / IF_GONE name the timeline event
    written when Twilio refuses or the call is already over.
    """
    if leg is None or not leg.twilio_call_sid:
        return False
    leg.placement += 1
    url = f"{url}{'&' if '?' in url else '?'}v={leg.placement}"
    otherwise = HangUp(leg.call_id, leg.twilio_call_sid, leg.id) if hang_up_otherwise else None
    t.effects.add(Redirect(leg.call_id, leg.id, leg.twilio_call_sid, url, otherwise, if_failed, if_gone))
    return True


def placement_answered(leg: Leg, asked: str | None) -> int:
    """The placement an answer to a redirect of LEG belongs to: the one its URL carries (ASKED), when a later
    move has overtaken it, else the leg's own."""
    try:
        number = int(asked or "")
    except ValueError:
        return leg.placement
    return number if 0 <= number < leg.placement else leg.placement


def moved_by_its_own_answer(leg: Leg) -> None:
    """The leg's own webhook is answered with TwiML that puts it somewhere new (a room, music): a new placement.

    Its next <Dial> and menus carry the new number, so a late or replayed
    request from where it was before (a `*` from the consult room, a key of
    a menu already answered) is known as stale and changes nothing.
    """
    leg.placement += 1
