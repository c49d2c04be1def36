"""The JSON API for transfers (token or supervisor session): start, status, complete, cancel.

Documented in app/transfers/openapi.json, served at /api/openapi.json.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, jsonify, request, send_file
from sqlalchemy import select

from app.auth.guards import api_token_required
from app.models import Call, Event, Transfer
from app.telephony.web import telephony
from app.transfers import service

blueprint = Blueprint("transfers_api", __name__, url_prefix="/api")
OPENAPI = Path(__file__).with_name("openapi.json")


def transfer_as_dict(transfer: Transfer) -> dict:
    """A transfer in the API's shape."""
    session = telephony().session
    events = session.scalars(select(Event).where(Event.transfer_id == transfer.id).order_by(Event.id))
    return {
        "id": transfer.id,
        "call_sid": transfer.call.call_sid,
        "mode": transfer.mode,
        "trigger": transfer.trigger,
        "state": transfer.state,
        "from_agent": transfer.from_agent.extension if transfer.from_agent else None,
        "target_agent": transfer.target_agent.extension if transfer.target_agent else None,
        "target_queue": transfer.target_queue.name if transfer.target_queue else None,
        "answered_by": transfer.target_leg.agent.extension if transfer.target_leg and transfer.target_leg.agent else None,
        "notes": transfer.notes,
        "summary": {
            "spoken": transfer.summary_spoken,
            "structured": transfer.summary_structured,
            "source": transfer.summary_source,
            "provider": transfer.summary_provider,
            "model": transfer.summary_model,
            "latency_ms": transfer.summary_latency_ms,
            "error": transfer.summary_error,
        },
        "end_reason": transfer.end_reason,
        "created_at": transfer.created_at.isoformat(),
        "ended_at": transfer.ended_at.isoformat() if transfer.ended_at else None,
        "events": [{"name": e.name, "at": e.created_at.isoformat(), "detail": e.detail} for e in events],
    }


def _error(status: int, message: str):
    return jsonify(error=message), status


def _target(body: dict) -> service.Target:
    extension, queue = body.get("extension"), body.get("queue")
    if not extension and not queue:
        raise ValueError("give a target: 'extension' or 'queue'")
    return service.find_target(telephony().session, extension=str(extension or "") or None,
                               queue=str(queue or "") or None)


@blueprint.post("/calls/<call_sid>/transfers")
@api_token_required
def start(call_sid: str):
    """Start a warm or blind transfer of a live call."""
    t = telephony()
    call = t.session.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is None:
        return _error(404, f"no call {call_sid}")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "send a JSON object")
    mode = body.get("mode", "warm")
    notes = body.get("notes")
    if notes is not None and not isinstance(notes, str):
        return _error(400, "'notes' must be text")
    try:
        target = _target(body)
        transfer = service.start_transfer(t, call, target, mode=mode,
                                          trigger="api" if "api_token_name" in g else "web", notes=notes)
    except ValueError as error:
        return _error(400, str(error))
    except service.TransferRefused as refusal:
        return _error(409, str(refusal))
    return jsonify(transfer_as_dict(transfer)), 201


def _transfer(transfer_id: int) -> Transfer | None:
    return telephony().session.get(Transfer, transfer_id)


@blueprint.get("/transfers/<int:transfer_id>")
@api_token_required
def status(transfer_id: int):
    """A transfer's state, summary and events."""
    transfer = _transfer(transfer_id)
    if transfer is None:
        return _error(404, f"no transfer {transfer_id}")
    return jsonify(transfer_as_dict(transfer))


@blueprint.post("/transfers/<int:transfer_id>/complete")
@api_token_required
def complete(transfer_id: int):
    """Connect the caller with the target; the transferring agent leaves."""
    transfer = _transfer(transfer_id)
    if transfer is None:
        return _error(404, f"no transfer {transfer_id}")
    try:
        service.complete(telephony(), transfer, requester=None)
    except service.TransferRefused as refusal:
        return _error(409, str(refusal))
    return jsonify(transfer_as_dict(transfer))


@blueprint.post("/transfers/<int:transfer_id>/cancel")
@api_token_required
def cancel(transfer_id: int):
    """Abort: the target is released and the transferring agent returns to the caller."""
    transfer = _transfer(transfer_id)
    if transfer is None:
        return _error(404, f"no transfer {transfer_id}")
    try:
        service.cancel(telephony(), transfer, "cancelled through the API", requester=None)
    except service.TransferRefused as refusal:
        return _error(409, str(refusal))
    return jsonify(transfer_as_dict(transfer))


@blueprint.get("/openapi.json")
def openapi():
    """The API's OpenAPI description."""
    return send_file(OPENAPI, mimetype="application/json")
