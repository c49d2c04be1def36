"""Twilio webhooks of a transfer target's phone while it rings: answer, whisper (the summary), status, fallback.

Once the target accepts, their leg is an agent's like any other and the
agent webhooks (app/voice/agent.py) serve it.
"""

from __future__ import annotations

from flask import Blueprint

from app.calls import reactions
from app.calls import service as calls
from app.logs import get_logger
from app.models import Leg, LegRole, LegStatus, Transfer
from app.primitives.legs import RINGING_LEG_STATUSES
from app.telephony import urls
from app.telephony.outcomes import Missed
from app.transfers import service
from app.transfers.parties import Prompt
from app.voice.agent import after_fallback, rejoin
from app.voice.forms import TwilioForm
from app.voice.guard import ServesLeg, twilio_webhook
from app.voice.twiml import empty_twiml, hold_context, twiml_response
from app.web.unit_of_work import telephony

blueprint = Blueprint("target_voice", __name__)
log = get_logger("switchboard.webhooks")


def _where_it_is(leg: Leg):
    """The harmless answer to a webhook that does not fit where the target's leg is: the answer while it still
    rings (a key before the answer counts for nothing), else where rejoin puts it."""
    if leg.status == LegStatus.DIALING:
        return _answered(leg)
    return rejoin(leg)


# What the target webhooks serve (the guard loads, locks and checks the leg: app/voice/guard.py).
RINGING_TARGET = ServesLeg(roles=(LegRole.TARGET,), fits=RINGING_LEG_STATUSES, misfit=_where_it_is)
WHISPERED_TARGET = ServesLeg(roles=(LegRole.TARGET,), fits=(LegStatus.WHISPER,), misfit=_where_it_is)
TARGET = ServesLeg(roles=(LegRole.TARGET,))


@blueprint.post(urls.TRANSFER_ANSWER)
@twilio_webhook(serves=RINGING_TARGET)
def target_answer(form: TwilioForm, leg: Leg):
    """The target picked up: the whisper if the summary is ready, else a greeting and a short wait."""
    return _answered(leg)


def _answered(leg: Leg):
    """The target is on the line: the whisper now, or a greeting now and the summary on a later turn.

    No request waits for the LLM: while the summary is not stored, the
    target hears who the transfer is from at once, then short pauses, each
    ending in a look at the database (TRANSFER_SUMMARY_WAIT), until the
    summary is there or SUMMARY_DEADLINE_SECONDS after answering the
    fallback is stored and spoken.
    """
    t = telephony()
    transfer = service.target_answered(t, leg)
    if transfer is None:
        return _no_longer_waiting()
    transcribe = calls.transcribed(t, leg.call)
    transcription_url = t.urls.transcription(leg.call_id, leg.id) if transcribe else None
    if service.summary_ready_for_target(t, leg, transfer):
        return _whisper(leg, transfer, transcription_url=transcription_url)
    return _wait_for_summary(leg, transfer, greet=True, transcription_url=transcription_url)


def _no_longer_waiting():
    t = telephony()
    return twiml_response("common/goodbye.xml", **hold_context(t), text="This transfer is no longer waiting. Goodbye.")


# How long each wait turn pauses before looking again (<Pause length>, whole seconds).
SUMMARY_WAIT_TURN_SECONDS = 1


def _wait_for_summary(leg: Leg, transfer: Transfer, *, greet: bool, transcription_url: str | None = None):
    t = telephony()
    return twiml_response(
        "transfers/summary_wait.xml",
        **hold_context(t),
        greet=greet,
        from_name=_from_name(transfer),
        pause_seconds=SUMMARY_WAIT_TURN_SECONDS,
        wait_url=t.urls.transfer_summary_wait(leg.id),
        transcription_url=transcription_url,
    )


def _from_name(transfer: Transfer) -> str:
    return transfer.from_agent.name if transfer.from_agent else "a colleague"


def _whisper(leg: Leg, transfer: Transfer, transcription_url: str | None = None, *, greeted: bool = False):
    t = telephony()
    return twiml_response(
        "transfers/whisper.xml",
        **hold_context(t),
        from_name=_from_name(transfer),
        greeted=greeted,
        summary=transfer.summary_spoken or "No summary is available.",
        action_url=t.urls.transfer_whisper(leg.id),
        transcription_url=transcription_url,
    )


@blueprint.post(urls.TRANSFER_SUMMARY_WAIT)
@twilio_webhook(serves=WHISPERED_TARGET)
def target_summary_wait(form: TwilioForm, leg: Leg):
    """A wait turn of the greeted target: the whisper once the summary (or, past the deadline, the fallback) is stored."""
    t = telephony()
    transfer = service.transfer_of_target_leg(t, leg)
    if transfer is None or transfer.is_final:
        return _no_longer_waiting()
    if service.summary_ready_for_target(t, leg, transfer):
        return _whisper(leg, transfer, greeted=True)
    return _wait_for_summary(leg, transfer, greet=False)


@blueprint.post(urls.TRANSFER_WHISPER)
@twilio_webhook(serves=WHISPERED_TARGET)
def target_whisper(form: TwilioForm, leg: Leg):
    """The target's key: 1 accept, 9 repeat, anything else (or nothing) declines."""
    t = telephony()
    transfer = service.transfer_of_target_leg(t, leg)
    if form.digits == "9" and transfer is not None and not transfer.is_final:
        return _whisper(leg, transfer)
    if form.digits == "1":
        outcome = service.target_accepted(t, leg)
        if outcome == service.Accepted.GONE:
            return twiml_response("common/goodbye.xml", **hold_context(t), text="Sorry, this transfer has ended. Goodbye.")
        return rejoin(leg, Prompt.CONNECTED if outcome == service.Accepted.CONNECTED else Prompt.NONE)
    service.target_declined(t, leg, Missed.DECLINED)
    return twiml_response("common/goodbye.xml", **hold_context(t), text="Transfer declined. Goodbye.")


@blueprint.post(urls.TRANSFER_STATUS)
@twilio_webhook(answer="callback", serves=TARGET)
def target_status(form: TwilioForm, leg: Leg):
    """Status callbacks of the target's leg."""
    reactions.target_leg_status(telephony(), leg, form.call_status)
    return empty_twiml()


@blueprint.post(urls.TRANSFER_FALLBACK)
@twilio_webhook(serves=TARGET)
def target_fallback(form: TwilioForm, leg: Leg):
    """A target call's fallback URL: a step failed or timed out; the whisper again, or where the leg is now."""
    t = telephony()
    resumed = after_fallback(form, leg)
    if resumed is not None:
        return resumed
    transfer = service.target_answered(t, leg)
    if transfer is None:
        return twiml_response("common/goodbye.xml", **hold_context(t), text="This transfer is no longer waiting. Goodbye.")
    return _whisper(leg, transfer)
