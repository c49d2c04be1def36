"""The JSON API for calls (token or supervisor session): place an outbound call (act), search the calls' history,
read a call whole (its legs, transcript, transfers and summaries, timeline), list the callbacks (read)."""

from __future__ import annotations

from flask import jsonify, request
from spectree import Response
from sqlalchemy import select

from app.api import schemas
from app.api.common import ERRORS, api_route, blueprint, error, timeline, transfer_parties
from app.auth.guards import current_actor
from app.auth.service import Scope
from app.calls import history, outbound
from app.models import Agent, Call, Event, Leg, Transfer, Utterance
from app.routing.callbacks import callbacks_by_state
from app.states.calls import call_by_sid
from app.transfers.summary import stored_summary
from app.web.unit_of_work import run_step, telephony


def call_as_dict(call: Call) -> dict:
    """A call in the API's shape (schemas.Call), whole: its legs, transcript, transfers and their summaries, and
    its timeline."""
    session = telephony().session
    utterances = session.scalars(select(Utterance).where(Utterance.call_id == call.id).order_by(Utterance.id))
    return schemas.Call(
        call_sid=call.call_sid,
        direction=call.direction,
        status=call.status,
        from_number=call.from_number,
        caller_attestation=call.caller_attestation,
        to_number=call.to_number,
        queue=call.queue.name if call.queue else None,
        agent=call.agent.extension if call.agent else None,
        reason=call.ivr_reason,
        created_at=call.created_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        legs=[_leg(leg) for leg in call.legs],
        transcript=[schemas.TranscriptLine(speaker=u.speaker, words=u.text, at=u.created_at) for u in utterances],
        summaries=[schemas.TransferSummary(transfer_id=transfer.id, **stored_summary(transfer))
                   for transfer in call.transfers if transfer.summary_source is not None],
        transfers=[_transfer(transfer) for transfer in call.transfers],
        events=timeline(session, Event.call_id == call.id),
    ).model_dump(mode="json")


def _leg(leg: Leg) -> schemas.CallLeg:
    return schemas.CallLeg(role=leg.role, agent=leg.agent.extension if leg.agent else None, status=leg.status,
                           end_reason=leg.end_reason, created_at=leg.created_at, answered_at=leg.answered_at,
                           connected_at=leg.connected_at, ended_at=leg.ended_at)


def _transfer(transfer: Transfer) -> schemas.CallTransfer:
    return schemas.CallTransfer(**transfer_parties(transfer), summary=transfer.summary_spoken,
                                source=transfer.summary_source)


@blueprint.post("/calls")
@api_route(Scope.ACT, json=schemas.PlaceCall, resp=Response(HTTP_201=schemas.Call, **ERRORS), tags=["calls"])
def place_call():
    """Place an outbound call: the agent's phone (or console) rings first, then the customer.

    Refused (409, nothing rung) when OUTBOUND_CALL_ALLOW does not name the
    number's prefix, or the agent is not available and free.
    """
    t = telephony()
    body: schemas.PlaceCall = request.context.json
    agent = t.session.scalar(select(Agent).where(Agent.extension == body.agent.strip()))
    if agent is None:
        return error(404, f"no agent with extension {body.agent.strip()[:16]}")
    by = current_actor()
    try:
        call = run_step(lambda t: outbound.place_call(t, agent, body.to, reason=body.reason, by=by))
    except outbound.OutboundRefused as refusal:
        return error(409, str(refusal))
    return jsonify(call_as_dict(call)), 201


@blueprint.get("/calls")
@api_route(Scope.READ, query=schemas.CallSearch, resp=Response(HTTP_200=schemas.CallList, **ERRORS), tags=["calls"])
def list_calls():
    """Calls, ended and live, newest first, 50 a page: by a part of the number, agent, queue, status and start."""
    query: schemas.CallSearch = request.context.query
    try:
        page = history.search_calls(telephony().session, history.read_search(query.model_dump()))
    except history.SearchRefused as refused:
        return error(400, str(refused))
    return jsonify(schemas.CallList(calls=[schemas.CallSummary(**row) for row in page.rows],
                                    next_cursor=page.next_cursor).model_dump(mode="json"))


@blueprint.get("/calls/<call_sid>")
@api_route(Scope.READ, resp=Response(HTTP_200=schemas.Call, **ERRORS), tags=["calls"])
def call_status(call_sid: str):
    """A call whole: its status and parties, its legs, transcript, transfers and their summaries, and its
    timeline."""
    call = call_by_sid(telephony().session, call_sid)
    if call is None:
        return error(404, f"no call {call_sid[:64]}")
    return jsonify(call_as_dict(call))


@blueprint.get("/callbacks")
@api_route(Scope.READ, query=schemas.CallbackQuery, resp=Response(HTTP_200=schemas.CallbackList, **ERRORS), tags=["calls"])
def callbacks():
    """Callbacks, as the supervisor's list shows them (at most 100 of each finished state)."""
    query: schemas.CallbackQuery = request.context.query
    rows = [row for state, rows in callbacks_by_state(telephony().session).items()
            if query.state is None or state == query.state for row in rows]
    return jsonify(schemas.CallbackList(callbacks=[schemas.Callback(**row) for row in rows]).model_dump(mode="json"))
