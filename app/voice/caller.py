"""Twilio webhooks of the caller's leg: arrival, IVR, queue, room, voicemail, status, fallback; and of an outbound
call's customer, whose leg is that call's caller leg: answer, status, fallback."""

from __future__ import annotations

from flask import Blueprint, request

from app.calls import card_pause, outbound, service, web_callers
from app.calls.resume import resume
from app.calls.service import CallerChoice, CallerNext
from app.logs import get_logger
from app.models import Call, Leg, LegRole, LegStatus, parse_id
from app.telephony import urls
from app.telephony.sip import room_user_of, sip_target
from app.voice.forms import MalformedWebhook, TwilioForm
from app.voice.guard import ServesArrival, ServesCall, ServesLeg, twilio_webhook
from app.voice.status import leg_status_callback
from app.voice.twiml import empty_twiml, hold_context, twiml_response
from app.web.unit_of_work import current_work, telephony

blueprint = Blueprint("calls", __name__)
log = get_logger("switchboard.calls")

GREETING = "Thanks for calling. In a few words, tell us why you are calling, or {menu}."
ASK_AGAIN = "Sorry, I didn't catch that. Please say what you are calling about, or {menu}."


def _where_they_are(call):
    """The caller's TwiML for where they are now (a late key or recording changes nothing)."""
    return _next(call, service.caller_place(call))


# What the caller's webhooks serve: the call named by ?call=, from its own caller (app/voice/guard.py).
CALLER = ServesCall()
# A caller who may answer the options: waiting in a queue, or at a closed one.
WAITING_CALLER = ServesCall(fits=service.AT_THE_OPTIONS, misfit=_where_they_are)


def _greeting(call, attempt: int, prompt: str, transcribe: bool | None = None):
    t = telephony()
    queues = service.ivr_menu(t)
    menu = ", ".join(f"press {q.dtmf_code} for {q.name}" for q in queues) or "stay on the line"
    hints = ",".join(sorted({hint for q in queues for hint in [q.name, *q.speech_hints]}))
    return twiml_response(
        "calls/greeting.xml",
        **hold_context(t),
        text=prompt.format(menu=menu),
        hints=hints,
        # The longest queue code: a shorter one is taken after the timeout or #.
        num_digits=max((len(q.dtmf_code) for q in queues), default=1),
        action_url=t.urls.ivr(call.id, attempt),
        transcription_url=t.urls.transcription(call.id) if _starts_transcription(t, attempt, transcribe) else None,
    )


def _starts_transcription(t, attempt: int, transcribe: bool | None) -> bool:
    # With TRANSCRIPTION=on it starts with the first greeting, once per call.
    return t.settings.transcribes_every_call and (attempt == 1 if transcribe is None else transcribe)


def _hold(call, text: str | None = None, transcription_url: str | None = None):
    t = telephony()
    return twiml_response("calls/hold.xml", **hold_context(t), text=text, wait_url=t.urls.caller_wait(call.id),
                          transcription_url=transcription_url)


def _goodbye(text: str):
    return twiml_response("common/goodbye.xml", **hold_context(telephony()), text=text)


@blueprint.post(urls.VOICE)
@twilio_webhook(serves=ServesArrival())
def voice(form: TwilioForm):
    """A call comes in: greet and ask why; a caller cut off moments ago goes back where they were instead."""
    t = telephony()
    arrival = form.arrival()
    if web_callers.token_already_used(t.session, arrival.from_number, arrival.call_sid):
        # A web visitor's token places one call; this one is not taken (no call is stored for it).
        log.warning("web_caller_token_reused")
        return twiml_response("common/hang_up.xml")
    call, last_call_id = service.receive_call(t, arrival)
    if resume(t, call, last_call_id) or call.resumed_from_call_id is not None:
        # Their transcription starts here, as it would have with the greeting they skip.
        return _hold(call, "Welcome back. We are putting you back through. Please hold.",
                     transcription_url=t.urls.transcription(call.id) if service.transcribed(t, call) else None)
    return _greeting(call, 1, GREETING)


@blueprint.post(urls.IVR)
@twilio_webhook(serves=CALLER)
def ivr(form: TwilioForm, call: Call):
    """The caller answered the IVR (or said nothing)."""
    t = telephony()
    outcome = service.handle_ivr_input(t, call, form.ivr_answer(), parse_id(request.args.get("attempt")) or 1)
    if outcome.ask_again:
        return _greeting(call, outcome.attempt, ASK_AGAIN)
    if outcome.closed:
        # Outside the queue's hours: when it opens again, then voicemail or a callback.
        return _options(call)
    queue = call.queue.name if call.queue else "an agent"
    # TRANSCRIPTION naming queues: it starts once the IVR chose one of them, here, once per call.
    starts = not t.settings.transcribes_every_call and service.transcribed(t, call)
    return _hold(call, f"Thank you. Connecting you to {queue}. Please hold.",
                 transcription_url=t.urls.transcription(call.id) if starts else None)


@blueprint.post(urls.CALLER_WAIT)
@twilio_webhook(serves=CALLER)
def caller_wait(form: TwilioForm, call: Call):
    """A stretch of hold music ended: what comes next is answered first, and any ringing it starts follows."""
    current_work().follow_up_after_answer()
    t = telephony()
    where = service.caller_waited(t, call)
    return _next(call, where, service.hold_words(t, call) if where == CallerNext.HOLD else None)


def _options(call):
    t = telephony()
    return twiml_response(
        "calls/options.xml",
        **hold_context(t),
        text=service.options_words(t, call),
        action_url=t.urls.caller_options(call.id),
        wait_url=t.urls.caller_wait(call.id),
    )


@blueprint.post(urls.CALLER_OPTIONS)
@twilio_webhook(serves=WAITING_CALLER)
def caller_options(form: TwilioForm, call: Call):
    """Voicemail, a callback, or more waiting."""
    t = telephony()
    choice = service.caller_chose(t, call, form.digits)
    if choice == CallerChoice.VOICEMAIL:
        return _voicemail(call)
    if choice == CallerChoice.CALLBACK:
        return _goodbye("Thank you. We will call you back on the number you are calling from. Goodbye.")
    where = service.caller_kept_waiting(t, call)
    return _next(call, where, "Thank you for holding." if where == CallerNext.HOLD else None)


def _voicemail(call, text: str | None = None):
    t = telephony()
    return twiml_response("calls/voicemail.xml", **hold_context(t), intro=text,
                          action_url=t.urls.caller_voicemail(call.id))


@blueprint.post(urls.CALLER_VOICEMAIL)
@twilio_webhook(serves=WAITING_CALLER)
def caller_voicemail(form: TwilioForm, call: Call):
    """The recording finished."""
    service.save_voicemail(telephony(), call, form.recording())
    return _goodbye("Thank you, we have your message. Goodbye.")


@blueprint.post(urls.CALLER_CONNECT)
@twilio_webhook(serves=CALLER)
def caller_connect(form: TwilioForm, call: Call):
    """Bridge the caller into the call's LiveKit room."""
    t = telephony()
    if call.room_name is None:
        # Misplaced: the IVR has not chosen a queue (nor so a room) yet; the
        # caller is answered with where they belong now.
        log.warning("webhook_out_of_place", reason="state", call_id=call.id, call_status=call.status)
        return _where_they_are(call)
    return _connect(call, service.connect_caller(t, call), placement=service.caller_placement(call, request.args.get("v")))


def _connect(call, room: str, text: str | None = None, placement: int | None = None,
             transcription_url: str | None = None):
    t = telephony()
    return twiml_response(
        "calls/connect.xml",
        **hold_context(t),
        text=text,
        transcription_url=transcription_url,
        sip=sip_target(t.settings, room_user_of(t.settings, room), service.caller_leg_id(call)),
        action_url=t.urls.caller_bridge_ended(call.id, service.caller_placement(call) if placement is None
                                              else placement),
    )


@blueprint.post(urls.CALLER_BRIDGE_ENDED)
@twilio_webhook(serves=CALLER)
def caller_bridge_ended(form: TwilioForm, call: Call):
    """The caller's leg left the room: hung up, moved on purpose, or lost."""
    t = telephony()
    return _next(call, service.caller_bridge_ended(t, call, form.bridge_end(), request.args.get("v", "")))


def _next(call, where: CallerNext, text: str | None = None):
    """The TwiML that takes the caller where the domain decided; it never starts the call again."""
    t = telephony()
    if where == CallerNext.ROOM:
        return _connect(call, service.connect_caller(t, call), text)
    if where == CallerNext.RECONNECT:
        return _connect(call, service.connect_caller(t, call), "Sorry, we lost the connection. Reconnecting you now.")
    if where == CallerNext.OPTIONS:
        return _options(call)
    # The queue's overflow, past its longest wait.
    if where == CallerNext.VOICEMAIL:
        return _voicemail(call, "All of our agents are still busy.")
    if where == CallerNext.CALLBACK:
        return _goodbye("All of our agents are still busy. We will call you back on the number you are calling "
                        "from. Goodbye.")
    if where == CallerNext.OVERFLOWED:
        return _hold(call, service.overflow_words(t, call))
    if where == CallerNext.IVR:
        # Transcription already runs since the first greeting: never a second one.
        return _greeting(call, call.ivr_attempts + 1, ASK_AGAIN, transcribe=False)
    if where == CallerNext.GOODBYE:
        return _goodbye("Thank you for calling. Goodbye.")
    if where == CallerNext.NOTHING:
        return empty_twiml()
    return _hold(call, text)


@blueprint.post(urls.CALLER_GOODBYE)
@twilio_webhook()
def caller_goodbye(form: TwilioForm):
    """The agent ended the call: thank the caller."""
    return _goodbye("The agent has ended the call. Thank you for calling. Goodbye.")


def _transcription_news(form: TwilioForm) -> bool:
    """Whether a transcription event changes anything kept: the caller's transcription starting (its SID, by which
    a card pause stops it) or a final chunk of a party's own words. The others (a transcription stopped, an
    agent's started, a partial result, what a leg hears) are answered without the database; a chunk that is not
    well formed goes the whole way, to be refused in words."""
    if form.started_transcription() and request.args.get("leg") is None:
        return True
    try:
        return form.transcript_chunk() is not None
    except MalformedWebhook:
        return True


@blueprint.post(urls.TRANSCRIPTION)
# A transcript chunk writes the call's utterances and its card pause, never an agent: the agents are not locked.
@twilio_webhook(answer="callback", serves=ServesCall(with_party=True, agents=False, acts_on=_transcription_news))
def transcription(form: TwilioForm, call: Call, agent_leg: Leg | None):
    """A real-time transcription event for the call: the caller's leg, or an agent's (?leg=)."""
    if agent_leg is None:
        card_pause.transcription_started(call, form.started_transcription())  # its SID, for a pause to stop
    chunk = form.transcript_chunk()
    if chunk is not None:
        service.record_transcription(telephony(), call, chunk, agent_leg)
    return empty_twiml()


@blueprint.post(urls.STATUS)
@twilio_webhook(answer="callback")
def status(form: TwilioForm):
    """The caller's call status changed (set as the number's status callback)."""
    service.call_status_changed(telephony(), form.require_call_sid(), form.call_status)
    return empty_twiml()


@blueprint.post(urls.FALLBACK)
@twilio_webhook()
def fallback(form: TwilioForm):
    """The number's fallback URL: a step failed or timed out; carry the call on where it is, never restart it."""
    t = telephony()
    call = service.call_for_fallback(t, form.require_call_sid(), form.fallback_report())
    if call is None:
        # The very first request failed: apologise, then greet the caller afresh.
        return twiml_response("common/retry.xml", **hold_context(t), retry_url=t.urls.url(urls.VOICE))
    return _next(call, service.caller_place(call), "Sorry for the wait.")


@blueprint.post(urls.FALLBACK_RECORDED)
@twilio_webhook()
def fallback_recorded(form: TwilioForm):
    """The message taken when a step kept failing: keep it with the call if we can (Twilio keeps it anyway)."""
    t = telephony()
    try:
        service.save_last_resort_message(t, form.call_sid, form.recording())
    except Exception:  # noqa: BLE001 - the caller is told goodbye either way; the recording stays at Twilio
        t.session.rollback()
        log.exception("last_resort_message_not_stored", recording_sid=form.recording().sid)
    return _goodbye("Thank you. We have your message and will call you back. Goodbye.")


# An outbound call's customer (the caller leg of that call, dialled by the service).
CUSTOMER = ServesLeg(roles=(LegRole.CALLER,))


def _customer_where(leg: Leg):
    # A late or repeated answer: the customer is answered with where the database says they belong.
    return _where_they_are(leg.call)


RINGING_CUSTOMER = ServesLeg(roles=(LegRole.CALLER,), fits=(LegStatus.DIALING,), misfit=_customer_where)


@blueprint.post(urls.CUSTOMER_ANSWER)
@twilio_webhook(serves=RINGING_CUSTOMER)
def customer_answer(form: TwilioForm, leg: Leg):
    """The customer of an outbound call picked up: into the room, where their agent waits."""
    t = telephony()
    call = leg.call
    room = outbound.customer_answered(t, leg)
    if room is None:
        return _goodbye("Sorry, we called you but the agent is no longer on the line. Goodbye.")
    # The customer's own voice is transcribed from their answer, as a caller's is from the greeting.
    transcribe = service.transcribed(t, call)
    return _connect(call, room, transcription_url=t.urls.transcription(call.id) if transcribe else None)


customer_status = leg_status_callback(blueprint, urls.CUSTOMER_STATUS, "customer_status", CUSTOMER,
                                      outbound.customer_status)


@blueprint.post(urls.CUSTOMER_FALLBACK)
@twilio_webhook(serves=CUSTOMER)
def customer_fallback(form: TwilioForm, leg: Leg):
    """The customer leg's fallback URL: a step failed; carry the call on where it is."""
    return _next(leg.call, service.caller_place(leg.call), "Sorry for the wait.")
