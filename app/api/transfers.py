"""The JSON API for transfers (token or supervisor session): start, status, complete, cancel, three-way, swap.

Requests and answers are the pydantic models of app/api/schemas.py;
spectree checks each request against them and writes the OpenAPI document
from them and these views, served at /api/openapi.json.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, g, jsonify, request
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from sqlalchemy import select

from app.api import schemas
from app.auth.guards import api_token_required
from app.kinds import TransferTrigger
from app.models import Call, Event, Transfer, parse_id
from app.states.transfers import place_in_line
from app.transfers import service
from app.transfers.actions import TRANSFER_ACTIONS, TransferAction, act_on_transfer
from app.transfers.summary import stored_summary
from app.web.unit_of_work import run_step, telephony

blueprint = Blueprint("transfers_api", __name__, url_prefix="/api")


@blueprint.app_errorhandler(404)
def _not_found(error):
    """Under /api, a path no route matches (an id that is not digits) is answered in JSON like the rest."""
    if request.path.startswith("/api/"):
        return jsonify(error="not found"), 404
    return error

def _error_in_words(req, resp, req_validation_error, instance, *_):
    # spectree answers a malformed request with pydantic's error list; the
    # API answers every error as {"error": "..."} (schemas.Error).
    if req_validation_error is None or resp is None:
        return
    problems = json.loads(resp.get_data(as_text=True) or "[]")
    words = "; ".join(_problem_in_words(p) for p in problems) or "send a JSON object"
    resp.set_data(json.dumps({"error": words}))
    resp.mimetype = "application/json"


def _problem_in_words(problem: dict) -> str:
    where = ".".join(str(part) for part in problem.get("loc", ()) if part not in ("body", "__root__"))
    message = str(problem.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"'{where}': {message}" if where else message


spec = SpecTree(
    "flask",
    title="Switchboard transfer API",
    version="1.0.0",
    description=(
        "Start, follow, complete and cancel warm and blind transfers of live calls. Authenticate with "
        "`Authorization: Bearer <token>` (create one with `flask api-tokens create NAME`); a signed-in "
        "supervisor's browser session also works, with the CSRF token in `X-CSRFToken` on POST."
    ),
    mode="strict",
    validation_error_status=400,
    before=_error_in_words,
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer"))],
    security={"bearer": []},
    naming_strategy=lambda model: model.__name__,
)

ERRORS = {"HTTP_400": schemas.Error, "HTTP_401": schemas.Error, "HTTP_403": schemas.Error,
          "HTTP_404": schemas.Error, "HTTP_409": schemas.Error}


def transfer_as_dict(transfer: Transfer) -> dict:
    """A transfer in the API's shape (schemas.Transfer)."""
    session = telephony().session
    events = session.scalars(select(Event).where(Event.transfer_id == transfer.id).order_by(Event.id))
    return schemas.Transfer(
        id=transfer.id,
        call_sid=transfer.call.call_sid,
        mode=transfer.mode,
        trigger=transfer.trigger,
        state=transfer.state,
        from_agent=transfer.from_agent.extension if transfer.from_agent else None,
        target_agent=transfer.target_agent.extension if transfer.target_agent else None,
        target_queue=transfer.target_queue.name if transfer.target_queue else None,
        place_in_line=place_in_line(session, transfer),
        target_number=transfer.target_number,
        answered_by=transfer.target_leg.agent.extension if transfer.target_leg and transfer.target_leg.agent else None,
        notes=transfer.notes,
        summary=schemas.Summary(**stored_summary(transfer)),
        end_reason=transfer.end_reason,
        created_at=transfer.created_at,
        ended_at=transfer.ended_at,
        events=[schemas.TimelineEvent(name=e.name, at=e.created_at, detail=e.detail or {}) for e in events],
    ).model_dump(mode="json")


def _error(status: int, message: str):
    return jsonify(schemas.Error(error=message).model_dump()), status


@blueprint.post("/calls/<call_sid>/transfers")
@api_token_required
@spec.validate(json=schemas.StartTransfer, resp=Response(HTTP_201=schemas.Transfer, **ERRORS), tags=["transfers"])
def start(call_sid: str):
    """Start a transfer of a connected call.

    Checks the call and the target first (a refusal, 409, touches no leg);
    then puts the caller on hold, starts the summary, rings the target and
    moves the call's agent to hold music (warm) or off the call (blind).
    """
    t = telephony()
    call = t.session.scalar(select(Call).where(Call.call_sid == call_sid[:64]))
    if call is None:
        return _error(404, f"no call {call_sid[:64]}")
    body: schemas.StartTransfer = request.context.json
    try:
        target = service.find_target(t.session, extension=(body.extension or "").strip() or None,
                                     queue=(body.queue or "").strip() or None,
                                     number=(body.number or "").strip() or None,
                                     sip_uri=(body.sip_uri or "").strip() or None)
        transfer = run_step(lambda t: service.start_transfer(
            t, call, target, mode=body.mode, trigger=TransferTrigger.API if "api_token_name" in g else TransferTrigger.WEB,
            notes=body.notes))
    except service.TransferRefused as refusal:
        return _error(409, str(refusal))
    return jsonify(transfer_as_dict(transfer)), 201


def _transfer(transfer_id: int) -> Transfer | None:
    if parse_id(transfer_id) is None:  # beyond the database's integers: no transfer (404), not an error
        return None
    return telephony().session.get(Transfer, transfer_id)


@blueprint.get("/transfers/<int:transfer_id>")
@api_token_required
@spec.validate(resp=Response(HTTP_200=schemas.Transfer, **ERRORS), tags=["transfers"])
def status(transfer_id: int):
    """A transfer's state, summary and events."""
    transfer = _transfer(transfer_id)
    if transfer is None:
        return _error(404, f"no transfer {transfer_id}")
    return jsonify(transfer_as_dict(transfer))


def _act(transfer_id: int, name: str):
    if _transfer(transfer_id) is None:
        return _error(404, f"no transfer {transfer_id}")
    try:
        transfer = run_step(lambda t: act_on_transfer(t, transfer_id, name, by="through the API"))
    except service.TransferRefused as refusal:
        return _error(409, str(refusal))
    return jsonify(transfer_as_dict(transfer))


def _action_view(action: TransferAction):
    def view(transfer_id: int):
        return _act(transfer_id, action.name)

    view.__name__ = action.name.replace("-", "_")
    view.__doc__ = action.summary
    guarded = api_token_required(spec.validate(resp=Response(HTTP_200=schemas.Transfer, **ERRORS),
                                               tags=["transfers"])(view))
    blueprint.add_url_rule(f"/transfers/<int:transfer_id>/{action.name}", view_func=guarded, methods=["POST"])


for _action in TRANSFER_ACTIONS.values():
    _action_view(_action)


@blueprint.get("/openapi.json")
def openapi():
    """The API's OpenAPI description, written by spectree from the views and schemas above."""
    return current_app.json.response(spec.spec)
