"""Supervisor pages: the call history and the voicemail inbox (its audio, handled, call back).

The lists and their filters are app/calls/history.py's, the inbox's steps app/calls/voicemails.py's; these views
read the request, run the step and render.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from flask import Blueprint, Response, flash, redirect, render_template, request
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField

from app.auth.guards import current_actor, roles_required
from app.auth.service import Role
from app.calls import history, outbound, voicemails
from app.gateways import IntegrationMissing
from app.gateways.twilio import TwilioError
from app.logs import get_logger
from app.models import Agent, Call, CallStatus, Queue
from app.supervisor.board import call_href, label, voicemail_audio_href
from app.supervisor.views import ActionForm
from app.web.errors import error_page
from app.web.unit_of_work import request_session, run_step, telephony

blueprint = Blueprint("history", __name__)
log = get_logger("switchboard.supervisor")

INBOX = "/voicemails"


class CallBackForm(FlaskForm):
    agent = SelectField("Agent who calls back")


def _search_page(path: str, template: str, *, voicemail: bool, **extra):
    """A list page: the filters read (a bad one is said on the page, 400), the page of calls, the next page's link."""
    refusal, page, search = None, history.CallPage([], None), history.Search()
    try:
        search = history.read_search(request.args, voicemail=voicemail)
        page = history.search_calls(request_session(), search)
    except history.SearchRefused as refused:
        refusal = f"Not searched: {refused}."
    session = request_session()
    return render_template(
        template, rows=page.rows, refusal=refusal, given=search.given or _given_as_typed(),
        next_href=f"{path}?{urlencode({**search.given, 'cursor': page.next_cursor})}" if page.next_cursor else None,
        first_href=f"{path}?{urlencode(search.given)}" if search.after else None,
        agents=session.scalars(select(Agent).order_by(Agent.extension)).all(),
        queues=session.scalars(select(Queue).order_by(Queue.name)).all(),
        statuses=[(status.value, label(status.value)) for status in CallStatus],
        href=call_href, audio_href=voicemail_audio_href, label=label, **extra,
    ), 400 if refusal else 200


def _given_as_typed() -> dict:
    # A refused search keeps what was typed in the form, so it can be corrected.
    return {name: request.args.get(name, "")[:history.FILTER_LIMIT] for name in history.FILTERS if name != "cursor"}


@blueprint.get("/calls")
@roles_required(Role.SUPERVISOR)
def history_page():
    """Every call, ended or live, newest first: by a part of its number, agent, queue, outcome, date."""
    return _search_page("/calls", "supervisor/history.html", voicemail=False)


@blueprint.get(INBOX)
@roles_required(Role.SUPERVISOR)
def voicemails_page():
    """Every message callers left, newest first, to hear, mark handled and call back."""
    t = telephony()
    return _search_page(
        INBOX, "supervisor/voicemails.html", voicemail=True,
        outbound_off=outbound.NOT_ENABLED if not t.settings.outbound_call_allow else None,
        call_back_refusal=lambda number: outbound.refusal(t, number),
        free_agents=voicemails.agents_free_to_call(request_session()),
        actions=ActionForm(),
    )


def _of_a_voicemail(view):
    """A view of one message: given the call CALL_SID names, or a 404 page when it holds no message."""

    @wraps(view)
    def found(call_sid: str):
        call = voicemails.find_voicemail(request_session(), call_sid)
        if call is None:
            return error_page(404, "No such voicemail", f"There is no voicemail on call {call_sid[:64]}.")
        return view(call)

    return found


@blueprint.get(f"{INBOX}/<call_sid>/audio")
@roles_required(Role.SUPERVISOR)
@_of_a_voicemail
def voicemail_audio(call: Call):
    """A message's audio, fetched from Twilio with the account's credentials and passed on as it comes."""
    try:
        audio = voicemails.open_audio(telephony(), call)
    except IntegrationMissing as not_configured:
        return error_page(503, "Voicemail unavailable", f"The message cannot be fetched: {not_configured}.")
    except TwilioError as failed:
        log.warning("voicemail_audio_failed", call_sid=call.call_sid, status=failed.status, error=failed.message)
        return error_page(502, "Voicemail unavailable",
                          f"Twilio did not give the message (HTTP {failed.status or 'no answer'}).")
    response = Response(audio.chunks, content_type=audio.content_type,
                        headers={"Cache-Control": "private, no-store"})
    if audio.length is not None:
        response.content_length = audio.length
    response.call_on_close(audio.close)
    return response


@blueprint.post(f"{INBOX}/<call_sid>/handled")
@roles_required(Role.SUPERVISOR)
@_of_a_voicemail
def voicemail_handled(call: Call):
    """Mark a message handled, by the signed-in supervisor."""
    if not ActionForm().validate():
        return error_page(400, "Form incomplete", "This button's form was not accepted. Reload the page and try again.")
    if run_step(lambda t: voicemails.mark_handled(t, call, by=current_actor())):
        flash(f"The message from {call.customer_number} is marked handled.")
    else:
        flash(f"The message from {call.customer_number} was already handled by {call.voicemail_handled_by}.")
    return redirect(INBOX)


@blueprint.post(f"{INBOX}/<call_sid>/call-back")
@roles_required(Role.SUPERVISOR)
@_of_a_voicemail
def voicemail_call_back(call: Call):
    """Call a message's caller back: the chosen agent's phone rings first, then the caller, as any outbound call."""
    session = request_session()
    form = CallBackForm()
    form.agent.choices = [agent.extension for agent in voicemails.agents_free_to_call(session)]
    if not form.validate():
        flash("Not called back: the form expired, try again." if form.csrf_token.errors
              else "Not called back: choose an agent who is free now.")
        return redirect(INBOX)
    agent = session.scalar(select(Agent).where(Agent.extension == form.agent.data))
    try:
        placed = run_step(lambda t: voicemails.call_back(t, call, agent, by=current_actor()))
    except outbound.OutboundRefused as refused:
        flash(f"Not called back: {refused}.")
        return redirect(INBOX)
    except IntegrationMissing as not_configured:
        flash(f"Not called back: {not_configured}.")
        return redirect(INBOX)
    flash(f"Calling back {call.customer_number}: {agent.name}'s phone rings first.")
    return redirect(call_href(placed.call_sid))
