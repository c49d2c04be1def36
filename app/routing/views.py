"""Twilio webhooks of an agent's phone leg: answer, whisper, status, and the end of the bridge."""

from __future__ import annotations

from flask import Blueprint, request

from app.calls import reactions
from app.calls.legs import find_leg
from app.routing import service
from app.telephony import urls
from app.telephony.forms import TwilioForm
from app.telephony.sip import leg_identity, room_user_of, sip_target
from app.telephony.twiml import empty_twiml, hold_context, twiml_response
from app.telephony.web import telephony
from app.telephony.webhook import twilio_webhook

blueprint = Blueprint("agent_voice", __name__)


def _goodbye(text: str):
    return twiml_response("common/goodbye.xml", **hold_context(telephony()), text=text)


def bridge_agent(leg, room: str, text: str | None = None):
    """TwiML that puts an agent's leg in ROOM, with * for the transfer menu."""
    t = telephony()
    leg.room_name = room
    leg.livekit_identity = leg_identity(leg.id)
    return twiml_response(
        "agents/bridge.xml",
        **hold_context(t),
        text=text,
        sip=sip_target(t.settings, room_user_of(t.settings, room), leg.id),
        action_url=t.urls.agent_bridge_ended(leg.id, leg.placement),
    )


@blueprint.post(urls.AGENT_ANSWER)
@twilio_webhook()
def agent_answer(form: TwilioForm):
    """The agent picked up: whisper who is calling and why."""
    t = telephony()
    leg = find_leg(t, request.args.get("leg"))
    whisper = service.agent_answered(t, leg)
    if whisper is None:
        return _goodbye("This caller is no longer waiting. Goodbye.")
    return twiml_response("agents/whisper.xml", **hold_context(t), whisper=whisper,
                          action_url=t.urls.agent_whisper(leg.id),
                          transcription_url=t.urls.transcription(leg.call_id, leg.id))


@blueprint.post(urls.AGENT_WHISPER)
@twilio_webhook()
def agent_whisper(form: TwilioForm):
    """The agent's key in the whisper: 1 accepts, anything else declines."""
    t = telephony()
    leg = find_leg(t, request.args.get("leg"))
    if form.digits == "1":
        if service.agent_accepted(t, leg):
            return bridge_agent(leg, leg.call.room_name, "Connecting.")
        return _goodbye("Sorry, the caller hung up. Goodbye.")
    service.agent_declined(t, leg, pressed=form.digits)
    return _goodbye("Call declined. Goodbye.")


@blueprint.post(urls.AGENT_STATUS)
@twilio_webhook(answer="callback")
def agent_status(form: TwilioForm):
    """A status callback of the agent's leg."""
    t = telephony()
    reactions.agent_leg_status(t, find_leg(t, request.args.get("leg")), form.call_status)
    return empty_twiml()


