"""Ringing a leg: Twilio dials a phone once the step is committed; a browser agent's console finds the leg itself."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import Agent, Leg
from app.primitives.context import Telephony
from app.primitives.effects import Dial
from app.primitives.legs import browser_identity


@dataclass(frozen=True)
class OutsideDial:
    """How Twilio places a call to an outside party: the number or SIP URI TO, the keys sent once it answers
    (SEND_DIGITS, an extension), and whether answering-machine detection tells a machine apart first."""

    to: str
    send_digits: str | None = None
    detect_machine: bool = True
    # The caller ID shown (None: our number), and the inbound call's CallToken that lets it be the caller's.
    from_: str | None = None
    call_token: str | None = None


def ring_leg(t: Telephony, leg: Leg, agent: Agent | None, *, answer_url: str, status_url: str, fallback_url: str,
             timeout: int, outside: OutsideDial | None = None) -> None:
    """Ring AGENT (or the OUTSIDE party) for LEG.

    A browser agent's console finds the leg by polling, so nothing is dialled.
    A phone is dialled by Twilio once the step is committed (effects.Dial):
    the leg is stored before Twilio can ask about it, and a dial Twilio
    refuses is reacted to after the commit, as a failed call is. An outside
    party (no agent row) is dialled as OUTSIDE says, from our number.
    """
    if agent is not None and not agent.sip_uri:
        leg.livekit_identity = browser_identity(agent)
        t.session.flush()
        return
    t.dials_left -= 1
    ours = t.settings.twilio_phone_number or leg.call.to_number
    t.effects.add(Dial(leg.call_id, leg.id, outside.to if outside else agent.sip_uri,
                       (outside.from_ if outside else None) or ours, answer_url, status_url, fallback_url,
                       timeout, detect_machine=bool(outside and outside.detect_machine),
                       send_digits=outside.send_digits if outside else None,
                       call_token=outside.call_token if outside else None))
