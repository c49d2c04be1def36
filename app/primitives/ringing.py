"""Ringing a leg: Twilio dials a phone once the step is committed; a browser agent's console finds the leg itself."""

from __future__ import annotations

from app.models import Agent, Leg
from app.primitives.context import Telephony
from app.primitives.effects import Dial
from app.primitives.legs import browser_identity


def ring_leg(t: Telephony, leg: Leg, agent: Agent | None, *, answer_url: str, status_url: str, fallback_url: str,
             timeout: int, to: str | None = None, detect_machine: bool = False) -> None:
    """Ring AGENT (or the outside destination TO) for LEG.

    A browser agent's console finds the leg by polling, so nothing is dialled.
    A phone is dialled by Twilio once the step is committed (effects.Dial):
    the leg is stored before Twilio can ask about it, and a dial Twilio
    refuses is reacted to after the commit, as a failed call is. An outside
    party (no agent row) is dialled at TO, from our number; DETECT_MACHINE asks
    Twilio's answering-machine detection, so a machine that answers is told
    apart before anything is said.
    """
    if agent is not None and not agent.sip_uri:
        leg.livekit_identity = browser_identity(agent)
        t.session.flush()
        return
    t.dials_left -= 1
    t.effects.add(Dial(leg.call_id, leg.id, to or agent.sip_uri, t.settings.twilio_phone_number or leg.call.to_number,
                       answer_url, status_url, fallback_url, timeout, detect_machine=detect_machine))
