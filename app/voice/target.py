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
from app.voice.status import leg_status_callback
from app.voice.twiml import hold_context, twiml_response
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
    """The target picked up: who the transfer is from, and "press 1 to hear the summary"; a machine hears nothing."""
    answerer = form.answerer()
    if answerer.is_machine:
        return _machine_answered(leg, answerer)
    return _answered(leg)


def _machine_answered(leg: Leg, answerer):
    """Twilio's answering-machine detection heard a machine: the attempt ends, and the machine hears nothing."""
    t = telephony()
    service.target_reached_machine(t, leg, answerer)
    return twiml_response("common/hang_up.xml")


def _answered(leg: Leg):
    """The target is on the line: they hear who is transferring and the offer of the summary, nothing more.

    Nothing of the caller (words, number, summary) is said before a key:
    whatever answered may be a voicemail or an IVR that records. The
    summary follows their 1 (target_intro).
    """
    t = telephony()
    transfer = service.target_answered(t, leg)
    if transfer is None:
        return _no_longer_waiting()
    transcribe = calls.transcribed(t, leg.call)
    return _intro(leg, transfer, transcription_url=t.urls.transcription(leg.call_id, leg.id) if transcribe else None)


def _intro(leg: Leg, transfer: Transfer, transcription_url: str | None = None):
    t = telephony()
    return twiml_response(
        "transfers/intro.xml",
        **hold_context(t),
        from_name=_from_name(transfer),
        action_url=t.urls.transfer_intro(leg.id),
        transcription_url=transcription_url,
    )


def _under_way(leg: Leg) -> Transfer | None:
    """The transfer whose target LEG is, while it is not over."""
    transfer = service.transfer_of_target_leg(leg)
    return None if transfer is None or transfer.is_final else transfer


def _no_longer_waiting():
    t = telephony()
    return twiml_response("common/goodbye.xml", **hold_context(t), text="This transfer is no longer waiting. Goodbye.")


@blueprint.post(urls.TRANSFER_INTRO)
@twilio_webhook(serves=WHISPERED_TARGET)
def target_intro(form: TwilioForm, leg: Leg):
    """The target's key after the greeting: 1 the summary (then accept or decline); any other key declines,
    and so does none."""
    t = telephony()
    transfer = _under_way(leg)
    if transfer is None:
        return _no_longer_waiting()
    if form.digits != "1":
        return _declined(leg)
    service.target_asked_for_summary(t, leg, transfer)
    return _summary_or_wait(leg, transfer, greet=True)


# How long each wait turn listens for a key before looking again (the <Gather>'s timeout, whole seconds).
SUMMARY_WAIT_TURN_SECONDS = 1


def _summary_or_wait(leg: Leg, transfer: Transfer, *, greet: bool = False, settle_now: bool = False):
    """The whisper if the summary is ready (SETTLE_NOW: whatever is ready), else a wait turn.

    No request waits for the LLM: while the summary is not stored, the
    target hears "one moment", then short turns, each a <Gather> that takes
    their key (1 accept, 2 decline) and ends in a look at the database
    (TRANSFER_SUMMARY_WAIT), until the summary is there or
    SUMMARY_DEADLINE_SECONDS after they asked the fallback is stored and
    spoken.
    """
    t = telephony()
    if service.summary_ready_for_target(t, leg, transfer, settle_now=settle_now):
        return _whisper(leg, transfer)
    return twiml_response(
        "transfers/summary_wait.xml",
        **hold_context(t),
        greet=greet,
        turn_seconds=SUMMARY_WAIT_TURN_SECONDS,
        key_url=t.urls.transfer_whisper(leg.id),
        wait_url=t.urls.transfer_summary_wait(leg.id),
    )


def _from_name(transfer: Transfer) -> str:
    return transfer.from_agent.name if transfer.from_agent else "a colleague"


def _whisper(leg: Leg, transfer: Transfer):
    t = telephony()
    return twiml_response(
        "transfers/whisper.xml",
        **hold_context(t),
        summary=transfer.summary_spoken or "No summary is available.",
        action_url=t.urls.transfer_whisper(leg.id),
    )


@blueprint.post(urls.TRANSFER_SUMMARY_WAIT)
@twilio_webhook(serves=WHISPERED_TARGET)
def target_summary_wait(form: TwilioForm, leg: Leg):
    """A wait turn ended with no key: the whisper once the summary (or, past the deadline, the fallback) is stored."""
    transfer = _under_way(leg)
    if transfer is None:
        return _no_longer_waiting()
    if not service.asked_for_summary(telephony(), leg, transfer):
        return _intro(leg, transfer)
    return _summary_or_wait(leg, transfer)


@blueprint.post(urls.TRANSFER_WHISPER)
@twilio_webhook(serves=WHISPERED_TARGET)
def target_whisper(form: TwilioForm, leg: Leg):
    """The target's key in the whisper or a wait turn: 1 accept, 9 the summary again, anything else (or nothing)
    declines."""
    t = telephony()
    transfer = _under_way(leg)
    if form.digits == "9" and transfer is not None:
        if not service.asked_for_summary(t, leg, transfer):
            return _intro(leg, transfer)
        return _summary_or_wait(leg, transfer)
    if form.digits == "1":
        outcome = service.target_accepted(t, leg)
        if outcome == service.Accepted.GONE:
            return twiml_response("common/goodbye.xml", **hold_context(t), text="Sorry, this transfer has ended. Goodbye.")
        return rejoin(leg, Prompt.CONNECTED if outcome == service.Accepted.CONNECTED else Prompt.NONE)
    return _declined(leg)


def _declined(leg: Leg):
    t = telephony()
    service.target_declined(t, leg, Missed.DECLINED)
    return twiml_response("common/goodbye.xml", **hold_context(t), text="Transfer declined. Goodbye.")


target_status = leg_status_callback(blueprint, urls.TRANSFER_STATUS, "target_status", TARGET,
                                    reactions.target_leg_status)


@blueprint.post(urls.TRANSFER_FALLBACK)
@twilio_webhook(serves=TARGET)
def target_fallback(form: TwilioForm, leg: Leg):
    """A target call's fallback URL: a step failed or timed out.

    Before the target asked for the summary, the greeting again (nothing of
    the caller); after, whatever summary is ready now, never "no summary"
    when it was stored a moment later; once accepted, where the leg is now.
    """
    t = telephony()
    resumed = after_fallback(form, leg)
    if resumed is not None:
        return resumed
    answerer = form.answerer()
    if answerer.is_machine and leg.status == LegStatus.DIALING:
        return _machine_answered(leg, answerer)
    transfer = service.target_answered(t, leg)
    if transfer is None:
        return _no_longer_waiting()
    if not service.asked_for_summary(t, leg, transfer):
        return _intro(leg, transfer)
    return _summary_or_wait(leg, transfer, settle_now=True)
