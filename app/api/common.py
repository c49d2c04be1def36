"""What the JSON API's views share: the blueprint under /api, spectree's document and checks, errors in words.

Requests and answers are the pydantic models of app/api/schemas.py;
spectree checks each request against them and writes the OpenAPI document
from them and the views (app/api/calls.py, app/api/transfers.py), served at
/api/openapi.json. Every error is answered as {"error": "..."}.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request
from spectree import SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.api import schemas
from app.events import shown_detail
from app.models import Event
from app.web.errors import error_page

blueprint = Blueprint("api", __name__, url_prefix="/api")


@blueprint.app_errorhandler(404)
def _not_found(_error):
    """Under /api, a path no route matches (an id that is not digits) is answered in JSON like the rest; elsewhere
    with the error page and its links back."""
    if request.path.startswith("/api/"):
        return jsonify(error="not found"), 404
    return error_page(404, "Page not found", f"There is no page at {request.path[:200]}.")


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
    title="Switchboard API",
    version="1.0.0",
    description=(
        "Place outbound calls, follow calls, read each queue's figures, and start, follow, complete and cancel warm "
        "and blind transfers "
        "of live calls. Authenticate with "
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


def error(status: int, message: str):
    """The API's answer to a request it cannot do: STATUS, and what went wrong in words."""
    return jsonify(schemas.Error(error=message).model_dump()), status


@blueprint.get("/openapi.json")
def openapi():
    """The API's OpenAPI description, written by spectree from the views and their schemas."""
    return current_app.json.response(spec.spec)


def timeline(session: Session, which: ColumnElement[bool]) -> list[schemas.TimelineEvent]:
    """The events WHICH picks (a call's, a transfer's), in the order they happened, in the API's shape (what
    a page may show of each: events.shown_detail)."""
    events = session.scalars(select(Event).where(which).order_by(Event.id))
    return [schemas.TimelineEvent(name=e.name, at=e.created_at, detail=shown_detail(e)) for e in events]
