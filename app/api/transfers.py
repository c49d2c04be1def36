"""The JSON API for transfers (token or supervisor session): start, status, complete, cancel, three-way, swap
(read to look, act for the rest)."""

from __future__ import annotations

from flask import g, jsonify, request
from spectree import Response

from app.api import schemas
from app.api.common import ERRORS, api_route, blueprint, error, timeline, transfer_parties
from app.auth.guards import current_actor
from app.auth.service import Scope
from app.kinds import TransferTrigger
from app.models import Event, Transfer, parse_id
from app.states.calls import call_by_sid
from app.states.transfers import place_in_line
from app.transfers import service
from app.transfers.actions import TRANSFER_ACTIONS, TransferAction, act_on_transfer
from app.transfers.summary import stored_summary
from app.web.unit_of_work import run_step, telephony


def transfer_as_dict(transfer: Transfer) -> dict:
    """A transfer in the API's shape (schemas.Transfer)."""
    session = telephony().session
    return schemas.Transfer(
        **transfer_parties(transfer),
        call_sid=transfer.call.call_sid,
        place_in_line=place_in_line(session, transfer),
        notes=transfer.notes,
        requested_by=transfer.requested_by,
        summary=schemas.Summary(**stored_summary(transfer)),
        events=timeline(session, Event.transfer_id == transfer.id),
    ).model_dump(mode="json")


@blueprint.post("/calls/<call_sid>/transfers")
@api_route(Scope.ACT, json=schemas.StartTransfer, resp=Response(HTTP_201=schemas.Transfer, **ERRORS), tags=["transfers"])
def start(call_sid: str):
    """Start a transfer of a connected call.

    Checks the call and the target first (a refusal, 409, touches no leg);
    then puts the caller on hold, starts the summary, rings the target and
    moves the call's agent to hold music (warm) or off the call (blind).
    """
    t = telephony()
    call = call_by_sid(t.session, call_sid)
    if call is None:
        return error(404, f"no call {call_sid[:64]}")
    body: schemas.StartTransfer = request.context.json
    try:
        target = service.find_target(t.session, extension=(body.extension or "").strip() or None,
                                     queue=(body.queue or "").strip() or None,
                                     number=(body.number or "").strip() or None,
                                     sip_uri=(body.sip_uri or "").strip() or None)
        transfer = run_step(lambda t: service.start_transfer(
            t, call, target, mode=body.mode, trigger=TransferTrigger.API if "api_token_name" in g else TransferTrigger.WEB,
            by=current_actor(), notes=body.notes))
    except service.TransferRefused as refusal:
        return error(409, str(refusal))
    return jsonify(transfer_as_dict(transfer)), 201


def _transfer(transfer_id: int) -> Transfer | None:
    if parse_id(transfer_id) is None:  # beyond the database's integers: no transfer (404), not an error
        return None
    return telephony().session.get(Transfer, transfer_id)


@blueprint.get("/transfers/<int:transfer_id>")
@api_route(Scope.READ, resp=Response(HTTP_200=schemas.Transfer, **ERRORS), tags=["transfers"])
def status(transfer_id: int):
    """A transfer's state, summary and events."""
    transfer = _transfer(transfer_id)
    if transfer is None:
        return error(404, f"no transfer {transfer_id}")
    return jsonify(transfer_as_dict(transfer))


def _act(transfer_id: int, name: str):
    if _transfer(transfer_id) is None:
        return error(404, f"no transfer {transfer_id}")
    try:
        transfer = run_step(lambda t: act_on_transfer(t, transfer_id, name, by=current_actor()))
    except service.TransferRefused as refusal:
        return error(409, str(refusal))
    return jsonify(transfer_as_dict(transfer))


def _action_view(action: TransferAction):
    def view(transfer_id: int):
        return _act(transfer_id, action.name)

    view.__name__ = action.name.replace("-", "_")
    view.__doc__ = action.summary
    guarded = api_route(Scope.ACT, resp=Response(HTTP_200=schemas.Transfer, **ERRORS), tags=["transfers"])(view)
    blueprint.add_url_rule(f"/transfers/<int:transfer_id>/{action.name}", view_func=guarded, methods=["POST"])


for _action in TRANSFER_ACTIONS.values():
    _action_view(_action)
