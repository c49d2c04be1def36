"""The voicemail inbox: the messages callers left, heard through the service, marked handled, called back.

A message stays at Twilio; the call keeps its address (Call.voicemail_url), which no page, API answer or
timeline shows: pages play it from the service's own address, which fetches the audio with the account's
credentials (`open_audio`). Marking a message handled and calling its caller back are steps on the call's
timeline (`voicemail_handled`, `voicemail_called_back`), with who did them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.calls import outbound
from app.events import record_event
from app.gateways.twilio import RecordingAudio
from app.models import Activity, Agent, Call, Presence, utcnow
from app.primitives.context import Telephony
from app.primitives.legs import lock_call


def find_voicemail(session: Session, call_sid: str) -> Call | None:
    """The call CALL_SID if the caller left a message on it, else None."""
    return session.scalar(select(Call).where(Call.call_sid == call_sid[:64], Call.voicemail_url.is_not(None)))


def open_audio(t: Telephony, call: Call) -> RecordingAudio:
    """The message's audio, from Twilio (IntegrationMissing without Twilio; TwilioError when Twilio refuses)."""
    return t.twilio.recording_audio(call.voicemail_url)


def mark_handled(t: Telephony, call: Call, *, by: Actor) -> bool:
    """BY (a user's name) dealt with the message: kept with the call and on its timeline. False when someone
    had already marked it."""
    call = lock_call(t, call.id)
    if call.voicemail_handled_at is not None:
        return False
    call.voicemail_handled_at = utcnow()
    call.voicemail_handled_by = by.label
    record_event(t.session, call, "voicemail_handled", by=by.label)
    return True


def agents_free_to_call(session: Session) -> list[Agent]:
    """The agents who could place a call back now: available and idle, by extension."""
    return list(session.scalars(select(Agent).where(Agent.presence == Presence.AVAILABLE,
                                                    Agent.activity == Activity.IDLE).order_by(Agent.extension)))


def call_back(t: Telephony, call: Call, agent: Agent, *, by: Actor) -> Call:
    """Call the message's caller back: an outbound call from AGENT, as the console's and the API's
    (outbound.OutboundRefused, nothing rung, when it cannot be placed); on the message's timeline, by BY."""
    left = call.created_at.strftime("%d %B at %H:%M UTC")
    placed = outbound.place_call(t, agent, call.customer_number, reason=f"returning the message left on {left}",
                                 by=by)
    record_event(t.session, call, "voicemail_called_back", by=by.label, agent=agent.extension, call_sid=placed.call_sid)
    return placed
