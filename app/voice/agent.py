"""Twilio webhooks of an agent's phone leg: answer, whisper, status, the end of its bridge, the transfer menus, rejoining.

DTMF follows the PBX habit (Asterisk features.conf): * opens the menu;
2 + extension or queue + # is a warm transfer, 1 + target + # a blind one,
# alone returns to the caller. In the consult, * then 1 returns to the
caller, 2 completes, 3 makes a three-way call, 4 swaps.
"""

from __future__ import annotations

from flask import Blueprint, request

from app.actors import Actor, ActorKind
from app.agents.service import disposition_keys, wrap_up_by_key
from app.calls import outbound, reactions
from app.calls import service as calls
from app.events import record_event
from app.kinds import TransferMode, TransferTrigger
from app.logs import get_logger
from app.models import Leg, LegRole, LegStatus, Transfer, TransferState, parse_id
from app.primitives.availability import in_after_call_work
from app.primitives.legs import RINGING_LEG_STATUSES
from app.primitives.moves import placement_answered
from app.primitives.presence import star_pressed
from app.routing.ivr import in_line_words, speakable_number
from app.states.transfers import active_transfer, place_in_line
from app.telephony import urls
from app.telephony.outcomes import CallProgress
from app.telephony.sip import leg_identity, room_user_of, sip_target
from app.transfers import service as transfers
from app.transfers.outside import split_extension
from app.transfers.parties import Prompt
from app.voice.forms import MalformedWebhook, TwilioForm
from app.voice.guard import ServesLeg, ServesOwnLeg, twilio_webhook
from app.voice.status import leg_status_callback
from app.voice.twiml import empty_twiml, hold_context, twiml_response
from app.web.unit_of_work import telephony

blueprint = Blueprint("agent_voice", __name__)
log = get_logger("switchboard.webhooks")


def _goodbye(text: str):
    return twiml_response("common/goodbye.xml", **hold_context(telephony()), text=text)


def bridge_agent(leg, room: str, text: str | None = None, placement: int | None = None):
    """TwiML that puts an agent's leg in ROOM, with * for the transfer menu (its action carries PLACEMENT, by
    default the leg's own)."""
    t = telephony()
    leg.room_name = room
    leg.livekit_identity = leg_identity(leg.id)
    return twiml_response(
        "agents/bridge.xml",
        **hold_context(t),
        text=text,
        sip=sip_target(t.settings, room_user_of(t.settings, room), leg.id),
        action_url=t.urls.agent_bridge_ended(leg.id, leg.placement if placement is None else placement),
    )


def where_it_is(leg: Leg):
    """The harmless answer to a webhook that does not fit where an agent's leg is: the whisper while it still
    rings (a key before the answer counts for nothing), else where rejoin puts it."""
    if leg.status == LegStatus.DIALING:
        return _whisper_or_goodbye(leg, start_transcription=False)
    return rejoin(leg)


# What the agent webhooks serve (the guard loads, locks and checks the leg: app/voice/guard.py).
RINGING_AGENT = ServesLeg(roles=(LegRole.AGENT,), fits=RINGING_LEG_STATUSES, misfit=where_it_is)
WHISPERED_AGENT = ServesLeg(roles=(LegRole.AGENT,), fits=(LegStatus.WHISPER,), misfit=where_it_is)
# Any of its states: a target who accepted is served by the agent webhooks from then on.
AGENT_OR_TARGET = ServesLeg()


@blueprint.post(urls.AGENT_ANSWER)
@twilio_webhook(serves=RINGING_AGENT)
def agent_answer(form: TwilioForm, leg: Leg):
    """The agent picked up: whisper who is calling and why."""
    return _whisper_or_goodbye(leg, start_transcription=calls.transcribed(telephony(), leg.call))


def _whisper_or_goodbye(leg, *, start_transcription: bool):
    """The agent's whisper (who is calling and why), or goodbye if the caller is no longer waiting."""
    t = telephony()
    whisper = reactions.agent_answered(t, leg)
    if whisper is None:
        return _goodbye("This caller is no longer waiting. Goodbye.")
    return twiml_response("agents/whisper.xml", **hold_context(t), whisper=whisper,
                          action_url=t.urls.agent_whisper(leg.id),
                          transcription_url=t.urls.transcription(leg.call_id, leg.id) if start_transcription else None)


@blueprint.post(urls.AGENT_WHISPER)
@twilio_webhook(serves=WHISPERED_AGENT)
def agent_whisper(form: TwilioForm, leg: Leg):
    """The agent's key in the whisper: 1 accepts, anything else declines."""
    t = telephony()
    if form.digits == "1":
        if reactions.agent_accepted(t, leg):
            return bridge_agent(leg, leg.call.room_name, "Connecting.")
        return _goodbye("Sorry, the caller hung up. Goodbye.")
    reactions.agent_declined(t, leg, pressed=form.digits)
    return _goodbye("Call declined. Goodbye.")


agent_status = leg_status_callback(blueprint, urls.AGENT_STATUS, "agent_status", AGENT_OR_TARGET,
                                  reactions.agent_leg_status)


MENU = (
    "Transfer menu. For a warm transfer, press 2, then the extension or queue number, then pound. "
    "For a blind transfer, press 1, then the number, then pound. To return to your caller, press pound."
)


MAX_MENU_ATTEMPTS = 2


DTMF_MODES = {"2": TransferMode.WARM, "1": TransferMode.BLIND}


def _target_words(transfer: Transfer | None) -> str:
    """Who the transfer rings, as A hears it: the agent's name, the outside number digit by digit, or the queue's."""
    if transfer is None:
        return "the next agent"
    if transfer.target_leg and transfer.target_leg.agent:
        return transfer.target_leg.agent.name
    if transfer.target_agent:
        return transfer.target_agent.name
    if transfer.target_number:
        if transfer.target_number.startswith("+"):
            number, keys = split_extension(transfer.target_number)
            extension = keys.replace(",", "")
            return f"the outside number {speakable_number(number)}" + (
                f", extension {speakable_number(extension)}" if extension else "")
        return "the outside line"
    if transfer.target_queue:
        return transfer.target_queue.name
    return "the next agent"


def _in_line(transfer: Transfer | None) -> str:
    """Where a waiting transfer is in its queue's line, in words ("first in line"); "in line" when not known."""
    place = place_in_line(telephony().session, transfer) if transfer is not None else None
    return in_line_words(place)


def _say(code: Prompt, transfer: Transfer | None) -> str | None:
    target = _target_words(transfer)
    return {
        Prompt.CALLING: f"Calling {target}. The caller is on hold. Press 1 to return to your caller.",
        Prompt.QUEUED: f"Everyone at {target} is busy. The caller is on hold, {_in_line(transfer)}, and you will "
                       "hear when someone is called. Press 1 to return to your caller.",
        Prompt.TRANSFERRED_QUEUED: f"Everyone at {target} is busy. The caller waits there, {_in_line(transfer)}. "
                                   "Goodbye.",
        Prompt.ACCEPTED: f"{target} accepted. The caller is still on hold. Press star for transfer options.",
        Prompt.TRANSFERRED: "Transferring the caller. Goodbye.",
        Prompt.COMPLETED: "Transfer complete. Goodbye.",
        Prompt.CONNECTED: "You are now connected to the caller.",
        Prompt.THREE_WAY: "Three-way call. Hang up whenever you want to leave.",
        Prompt.RETURNED: "Returning you to your caller.",
        Prompt.DECLINED: f"{target} declined the transfer. Returning you to your caller.",
        Prompt.NO_ANSWER: f"{target} did not answer. Returning you to your caller.",
        Prompt.VOICEMAIL: f"The transfer to {target} reached voicemail. Returning you to your caller.",
        Prompt.FAILED: "The transfer could not be placed. Returning you to your caller.",
        Prompt.HOLD: "Please hold.",
        Prompt.SWAPPED: "You are back with the transferring agent.",
        Prompt.CALLER_GONE: "The caller hung up. Goodbye.",
        Prompt.CUSTOMER_UNANSWERED: "The customer did not answer. Goodbye.",
        Prompt.TARGET_GONE: f"{target} hung up. Returning you to your caller.",
    }.get(code)


def _stale(leg: Leg) -> bool:
    """Whether this request comes from where the leg was before it was last moved (a late or replayed one).

    Every <Dial> and menu of an agent's leg carries the leg's placement in
    its URL (v=); the placement changes whenever the service moves the leg.
    """
    return str(leg.placement) != request.args.get("v")


def _stale_menu_key(leg: Leg) -> bool:
    stale = _stale(leg)
    if stale:  # a key of a menu already answered, or one the leg has left
        log.warning("webhook_out_of_place", reason="placement", leg_id=leg.id, leg_status=leg.status, role=leg.role)
    return stale


def _transfer_of(t, leg: Leg) -> Transfer:
    transfer_id = parse_id(request.args.get("transfer"))
    transfer = t.session.get(Transfer, transfer_id) if transfer_id is not None else None
    if transfer is None or transfer.call_id != leg.call_id:
        raise MalformedWebhook("unknown transfer")
    return transfer


def rejoin(leg: Leg, code: Prompt = Prompt.NONE, text: str | None = None, placement: int | None = None):
    """TwiML placing an agent's leg where the database says: a room, on hold, or gone; saying CODE or TEXT first.

    Its <Dial> and menu carry PLACEMENT (by default the leg's own): the
    answer to a redirect a later move overtook belongs to the placement that
    redirect made (moves.placement_answered)."""
    placement = leg.placement if placement is None else placement
    t = telephony()
    transfer = active_transfer(leg.call) or (leg.call.transfers[-1] if leg.call.transfers else None)
    text = text or _say(code, transfer)
    if leg.is_final and leg.agent is not None and in_after_call_work(leg.agent) and t.settings.disposition_codes:
        # After-call work by phone keys, as a desk phone's agent expects (the console has the same).
        keys = disposition_keys(t.settings.disposition_codes)
        said = (text or "").removesuffix("Goodbye.").strip()  # the goodbye comes after the keys
        return twiml_response("agents/wrap_up.xml", **hold_context(t), action_url=t.urls.agent_wrap_up(leg.id),
                              text=f"{said + ' ' if said else ''}To end your after-call work, press {keys}. "
                                   "Or hang up.")
    if leg.is_final or leg.call.is_final:
        return twiml_response("common/goodbye.xml", **hold_context(t), text=text or "Goodbye.")
    if leg.status == LegStatus.ON_HOLD:
        # The transferring agent waiting for the target can press 1 to go back.
        waiting = transfer is not None and not transfer.is_final and transfer.from_agent_id == leg.agent_id
        return twiml_response("agents/hold.xml", **hold_context(t), text=text, rejoin_url=t.urls.agent_rejoin(leg.id),
                              menu_url=t.urls.transfer_consult_menu(transfer.id, leg.id, placement) if waiting else None)
    return bridge_agent(leg, leg.room_name or leg.call.room_name, text, placement)


def _menu(transfer: Transfer, leg: Leg, attempt: int, prefix: str = ""):
    t = telephony()
    return twiml_response(
        "transfers/menu.xml",
        **hold_context(t),
        text=(prefix + " " + MENU).strip(),
        action_url=t.urls.transfer_menu(transfer.id, leg.id, leg.placement, attempt),
    )


def transfer_menu(leg: Leg):
    """The agent pressed * in a room: the transfer menu, or the consult menu during a transfer."""
    t = telephony()
    call = leg.call
    transfer = active_transfer(call)
    if transfer is not None:
        if transfer.from_agent_id == leg.agent_id:
            return twiml_response("transfers/consult_menu.xml", **hold_context(t),
                                  action_url=t.urls.transfer_consult_menu(transfer.id, leg.id, leg.placement))
        return rejoin(leg)
    try:
        transfer = transfers.open_transfer(t, call, leg, trigger=TransferTrigger.DTMF, by=_keys(leg))
    except transfers.TransferRefused as refusal:
        return bridge_agent(leg, leg.room_name, f"Transfer not possible: {refusal}.")
    return _menu(transfer, leg, 1)


def _keys(leg: Leg) -> Actor:
    """The agent's phone keys, as the timeline's `by`."""
    return Actor(ActorKind.PHONE, leg.agent.extension if leg.agent else "unknown")


@blueprint.post(urls.TRANSFER_MENU)
@twilio_webhook(serves=AGENT_OR_TARGET)
def transfer_menu_choice(form: TwilioForm, leg: Leg):
    """The digits entered in the transfer menu."""
    t = telephony()
    transfer = _transfer_of(t, leg)
    attempt = parse_id(request.args.get("attempt")) or 1
    if transfer.state != TransferState.REQUESTED or _stale_menu_key(leg):
        return rejoin(leg)
    digits = form.digits.strip("#*")
    if not digits:
        transfers.cancel(t, transfer, "nothing entered in the transfer menu", requester=leg)
        return rejoin(leg, Prompt.RETURNED)
    try:
        mode = DTMF_MODES.get(digits[0])
        if mode is None:
            raise transfers.TransferRefused("start with 2 for a warm transfer or 1 for a blind one")
        transfers.choose_target(t, transfer, transfers.resolve_target(t, digits[1:]), mode)
    except transfers.TransferRefused as refusal:
        record_event(t.session, transfer.call, "transfer_target_refused", transfer=transfer, reason=str(refusal),
                     attempt=attempt)
        if attempt >= MAX_MENU_ATTEMPTS:
            transfers.cancel(t, transfer, str(refusal), requester=leg)
            return rejoin(leg, Prompt.RETURNED)
        return _menu(transfer, leg, attempt + 1, f"Sorry, {refusal}.")
    return rejoin(leg, transfers.after_target_rung(t, transfer, leg, requester=leg))


@blueprint.post(urls.TRANSFER_CONSULT_MENU)
@twilio_webhook(serves=AGENT_OR_TARGET)
def consult_menu_choice(form: TwilioForm, leg: Leg):
    """1 return to the caller, 2 complete, 3 three-way, 4 swap; anything else goes back where A was."""
    t = telephony()
    transfer = _transfer_of(t, leg)
    if transfer.is_final or _stale_menu_key(leg):
        return rejoin(leg)
    try:
        if form.digits == "1":
            transfers.cancel(t, transfer, "returned to the caller from the consult menu", requester=leg, by=_keys(leg))
            return rejoin(leg, Prompt.RETURNED)
        if form.digits == "2":
            transfers.complete(t, transfer, requester=leg, by=_keys(leg))
            return rejoin(leg, Prompt.COMPLETED)
        if form.digits == "3":
            transfers.three_way(t, transfer, requester=leg, by=_keys(leg))
            return rejoin(leg, Prompt.THREE_WAY)
        if form.digits == "4":
            transfers.swap(t, transfer, requester=leg, by=_keys(leg))
            return rejoin(leg)
    except transfers.TransferRefused as refusal:
        return rejoin(leg, text=f"Sorry, {refusal}.")
    return rejoin(leg)


@blueprint.post(urls.AGENT_BRIDGE_ENDED)
@twilio_webhook(serves=AGENT_OR_TARGET)
def agent_bridge_ended(form: TwilioForm, leg: Leg):
    """The agent's <Dial> ended: * pressed (transfer menu), the room dropped or rang out, or moved by us."""
    t = telephony()
    if form.call_status != CallProgress.IN_PROGRESS or leg.is_final:
        return empty_twiml()  # the agent hung up: Twilio ignores this answer
    if _stale(leg):
        # A stale action: our own redirect ended this <Dial> (Twilio ignores
        # the answer), or a redirect that failed after the placement moved on
        # (then this answer is what puts the leg where it belongs).
        return rejoin(leg)
    if not form.dial_call_status.bridged:
        # Nobody answered in the room (LiveKit rang until the <Dial> timeout,
        # or refused the call): wait on music and try the room again.
        record_event(t.session, leg.call, "agent_room_unanswered", leg_id=leg.id, dial_status=form.dial_call_status)
        if reactions.room_attempts_exhausted(t, leg):
            reactions.agent_never_reached_the_room(t, leg, "room_unreachable")
            return _goodbye("We could not connect you to the call; it goes to another agent. Goodbye.")
        return _try_room_again(leg, "Still connecting, one moment.")
    in_call_room = leg.room_name == leg.call.room_name
    if in_call_room and active_transfer(leg.call) is None and not star_pressed(t, leg):
        return _try_room_again(leg, "We lost the connection to the caller. Reconnecting.")
    if leg.is_final or leg.call.is_final or _stale(leg):
        # The caller hung up, or a step moved the leg, while LiveKit was asked (the call is read afresh after it):
        # the leg goes where it now belongs.
        return rejoin(leg)
    return transfer_menu(leg)


def _try_room_again(leg, text: str):
    t = telephony()
    return twiml_response("agents/hold.xml", **hold_context(t), text=text,
                          rejoin_url=t.urls.agent_rejoin(leg.id), menu_url=None)


@blueprint.post(urls.AGENT_FALLBACK)
@twilio_webhook(serves=AGENT_OR_TARGET)
def agent_fallback(form: TwilioForm, leg: Leg):
    """An agent call's fallback URL: a step failed or timed out; carry the leg on where it is."""
    resumed = after_fallback(form, leg)
    if resumed is not None:
        return resumed
    # Transcription started with the first whisper, if at all: never a second one.
    return _whisper_or_goodbye(leg, start_transcription=False)


def after_fallback(form: TwilioForm, leg: Leg):
    """A phone leg's fallback request, in the timeline: TwiML resuming it, or None while it still rings."""
    t = telephony()
    record_event(t.session, leg.call, "twilio_fallback", leg_id=leg.id, error_code=form.fallback_report().error_code)
    if leg.is_final or leg.status not in RINGING_LEG_STATUSES:
        return rejoin(leg, text="Sorry for the wait.")
    return None


@blueprint.post(urls.AGENT_DIAL_OUT)
@twilio_webhook(serves=ServesOwnLeg())
def agent_dial_out(form: TwilioForm, known: Leg | None):
    """An agent dialled a number on their own phone (the SIP domain's Voice URL): their call goes into a new
    outbound call's room and the customer is dialled; a refusal is said to them, and nothing rings."""
    t = telephony()
    dial = form.dial_out()
    if known is not None:
        # Twilio asked again for a call already placed: where its leg is now.
        return rejoin(known)
    agent = outbound.agent_of_phone(t.session, dial.from_uri, dial.sip_username)
    if agent is None:
        log.warning("dial_out_refused", reason="not an agent's phone")
        return _goodbye("This phone is not an agent's phone on this service. Goodbye.")
    try:
        leg = outbound.place_call_from_phone(t, agent, outbound.number_dialled(dial.to_uri), dial.call_sid)
    except outbound.OutboundRefused as refusal:
        log.info("dial_out_refused", agent=agent.extension, reason=str(refusal))
        return _goodbye(f"Not dialled: {refusal}. Goodbye.")
    return bridge_agent(leg, leg.call.room_name, f"Calling {speakable_number(leg.call.to_number)}.")


@blueprint.post(urls.AGENT_DIAL_OUT_STATUS)
@twilio_webhook(answer="callback", serves=ServesOwnLeg())
def agent_dial_out_status(form: TwilioForm, leg: Leg | None):
    """The SIP domain's status callback: a status of an agent's own dial-out call, found by its CallSid."""
    t = telephony()
    if leg is None:
        # Refused, or never placed: the service has no leg for it.
        log.info("status_for_unknown_call", call_status=form.call_status)
        return empty_twiml()
    reactions.agent_leg_status(t, leg, form.call_status)
    return empty_twiml()


@blueprint.post(urls.AGENT_WRAP_UP)
@twilio_webhook(serves=AGENT_OR_TARGET)
def agent_wrap_up(form: TwilioForm, leg: Leg):
    """The agent's key for a disposition at the end of their call: after-call work done, or it runs its time."""
    t = telephony()
    disposition = wrap_up_by_key(t, leg.agent, form.digits) if leg.agent is not None else None
    if disposition is None:
        return _goodbye("Your after-call work goes on for its time, or until you say you are ready in the "
                        "console. Goodbye.")
    return _goodbye(f"Recorded: {disposition}. You are ready for your next call. Goodbye.")


@blueprint.post(urls.AGENT_REJOIN)
@twilio_webhook(serves=AGENT_OR_TARGET)
def agent_rejoin(form: TwilioForm, leg: Leg):
    """An agent's leg was redirected: put it where the database says."""
    return rejoin(leg, Prompt.parse(request.args.get("say")), placement=placement_answered(leg, request.args.get("v")))
