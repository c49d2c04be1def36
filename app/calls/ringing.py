"""Ringing an agent for a leg: Twilio dials a phone; a browser agent's console finds the leg itself."""

from __future__ import annotations

from app.agents.availability import release_agent
from app.calls.legs import browser_identity
from app.gateways.twilio import TwilioError
from app.models import Agent, Leg, LegStatus
from app.states.legs import move_leg
from app.telephony.context import Telephony


def ring_leg(t: Telephony, leg: Leg, agent: Agent | None, *, answer_url: str, status_url: str, fallback_url: str,
             timeout: int, to: str | None = None) -> str | None:
    """Ring AGENT (or the outside destination TO) for LEG; None when it rings, else why Twilio could not place
    the call (leg failed, agent freed).

    A browser agent's console finds the leg by polling, so nothing is dialled.
    An outside party (no agent row) is dialled at TO, from our number.
    A phone is one of the service's named commit-before-network places: the
    step so far is committed before Twilio dials, because Twilio may ask the
    answer URL, or post a status callback, before calls.create has answered,
    and those requests must find the leg (tests/test_commit_points.py).
    """
    if agent is not None and not agent.sip_uri:
        leg.livekit_identity = browser_identity(agent)
        t.session.flush()
        return None
    destination = to or agent.sip_uri
    t.dials_left -= 1
    t.session.commit()
    try:
        leg.twilio_call_sid = t.twilio.create_call(
            to=destination,
            from_=t.settings.twilio_phone_number or leg.call.to_number,
            url=answer_url,
            status_callback=status_url,
            timeout_seconds=timeout,
            # Any of this call's steps that fails or times out resumes it where it is.
            fallback_url=fallback_url,
        )
        t.session.flush()
        return None
    except TwilioError as error:
        move_leg(leg, LegStatus.FAILED, reason="dial_failed")
        if agent is not None:
            release_agent(t, agent)
            t.freed_agent_ids.discard(agent.id)  # not free to be dialled again in this request
        return str(error)[:200]
