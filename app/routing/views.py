"""Twilio webhooks of an agent's phone leg: answer, whisper, status, and the end of the bridge."""

from __future__ import annotations

from flask import Blueprint, request

from app.calls.service import find_leg, hold_context
from app.events import record_event
from app.routing import service
from app.telephony import urls
from app.telephony.sip import leg_identity, room_user_of, sip_target
from app.telephony.twiml import empty_twiml, twiml_response
from app.telephony.web import telephony
from app.telephony.forms import TwilioForm
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
    service.agent_leg_status(t, find_leg(t, request.args.get("leg")), form.call_status)
    return empty_twiml()


@blueprint.post(urls.AGENT_BRIDGE_ENDED)
@twilio_webhook()
def agent_bridge_ended(form: TwilioForm):
    """The agent's <Dial> ended: * pressed (transfer menu), the room dropped or rang out, or moved by us."""
    from app.transfers.lifecycle import active_transfer
    from app.transfers.views import rejoin, transfer_menu

    t = telephony()
    leg = find_leg(t, request.args.get("leg"))
    if form.call_status != "in-progress" or leg.is_final:
        return empty_twiml()  # the agent hung up: Twilio ignores this answer
    if str(leg.placement) != request.args.get("v"):
        # A stale action: our own redirect ended this <Dial> (Twilio ignores
        # the answer), or a redirect that failed after the placement moved on
        # (then this answer is what puts the leg where it belongs).
        return rejoin(leg)
    if form.dial_call_status != "completed":
        # Nobody answered in the room (LiveKit rang until the <Dial> timeout,
        # or refused the call): wait on music and try the room again.
        record_event(t.session, leg.call, "agent_room_unanswered", leg_id=leg.id, dial_status=form.dial_call_status)
        return _try_room_again(leg, "Still connecting, one moment.")
    in_call_room = leg.room_name == leg.call.room_name
    if in_call_room and active_transfer(leg.call) is None and not service.star_pressed(t, leg):
        return _try_room_again(leg, "We lost the connection to the caller. Reconnecting.")
    return transfer_menu(leg)


def _try_room_again(leg, text: str):
    t = telephony()
    return twiml_response("agents/hold.xml", **hold_context(t), text=text,
                          rejoin_url=t.urls.agent_rejoin(leg.id), menu_url=None)
