"""What the JSON API's views share: the blueprint under /api, each route's scope, spectree's document and checks,
errors in words, and one log line per request.

Requests and answers are the pydantic models of app/api/schemas.py;
spectree checks each request against them and writes the OpenAPI document
from them and the views (app/api/calls.py, app/api/transfers.py,
app/api/roster.py), served at /api/openapi.json and listed for people at
/api/docs. Every route declares the scope it needs (`api_route`): GET
routes read, the others act; the document names it on each operation.
Every error is answered as {"error": "..."}.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from flask import Blueprint, current_app, jsonify, render_template, request
from spectree import SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.api import schemas
from app.auth.guards import api_token_required, roles_required
from app.auth.service import Role, Scope
from app.events import shown_detail
from app.logs import get_logger
from app.models import Agent, Event, Transfer
from app.web.errors import error_page

log = get_logger("switchboard.api")

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
        "Place outbound calls, read calls whole (legs, transcript, summaries, transfers, timeline), read each "
        "queue's figures, start, "
        "follow, complete and cancel warm and blind transfers of live calls, read agents and queues and set "
        "an agent's presence. Authenticate with `Authorization: Bearer <token>` (create one with "
        "`flask api-tokens create NAME --scope read --scope act [--expires-in 30d]`). Each operation names "
        "the scope it needs as its bearer requirement: `read` for GET, `act` for POST and PUT; a token "
        "without it is refused 403, an expired or revoked one 401. A signed-in supervisor's browser session "
        "also works (every scope), with the CSRF token in `X-CSRFToken` on POST and PUT."
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


def api_route(scope: Scope, **validate: Any) -> Callable[[Callable], Callable]:
    """A JSON API view that needs SCOPE: the token guard (auth.guards.api_token_required), then spectree's
    checks with VALIDATE (json, query, resp, tags), the scope written as the operation's bearer requirement."""
    scope = Scope(scope)

    def decorate(view: Callable) -> Callable:
        return api_token_required(scope)(spec.validate(security={"bearer": [scope.value]}, **validate)(view))

    return decorate


def scope_of_method(method: str) -> Scope:
    """The scope a route of METHOD needs: read to look, act to change anything."""
    return Scope.READ if method.upper() in ("GET", "HEAD", "OPTIONS") else Scope.ACT


@blueprint.after_request
def _log_request(response):
    # One line per API request; the guard bound the token's name (api_client) or the supervisor's
    # (api_user) into the context, never the token itself.
    log.info("api_request", method=request.method, path=request.path, status=response.status_code)
    return response


def error(status: int, message: str):
    """The API's answer to a request it cannot do: STATUS, and what went wrong in words."""
    return jsonify(schemas.Error(error=message).model_dump()), status


@blueprint.get("/openapi.json")
def openapi():
    """The API's OpenAPI description, written by spectree from the views and their schemas."""
    return current_app.json.response(spec.spec)


@blueprint.get("/docs")
@roles_required(Role.SUPERVISOR)
def docs():
    """The API's routes for people (supervisors): each with its scope, summary, parameters and answers, read
    from the OpenAPI document; no script."""
    return render_template("api/docs.html", routes=document_routes(spec.spec), title=spec.config.title)


def document_routes(document: dict) -> list[dict]:
    """Each operation of an OpenAPI DOCUMENT, in path order: method, path, scope, summary, description,
    parameters, request body and answers (schema names)."""
    routes = []
    for path, operations in sorted(document.get("paths", {}).items()):
        for method, operation in operations.items():
            scopes = [scope for requirement in operation.get("security", document.get("security", []))
                      for scope in requirement.get("bearer", [])]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            routes.append({
                "method": method.upper(),
                "path": path,
                "scopes": scopes,
                "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": [(p["name"], p["in"], p.get("description", "")) for p in operation.get("parameters", [])],
                "body": _schema_name(body),
                "answers": [(status, answer.get("description", ""), _schema_name(
                    answer.get("content", {}).get("application/json", {}).get("schema", {})))
                    for status, answer in sorted(operation.get("responses", {}).items())],
            })
    return routes


def _schema_name(schema: dict) -> str | None:
    reference = schema.get("$ref")
    return reference.rsplit("/", 1)[-1] if reference else None


def timeline(session: Session, which: ColumnElement[bool]) -> list[schemas.TimelineEvent]:
    """The events WHICH picks (a call's, a transfer's), in the order they happened, in the API's shape (what
    a page may show of each: events.shown_detail)."""
    events = session.scalars(select(Event).where(which).order_by(Event.id))
    return [schemas.TimelineEvent(name=e.name, at=e.created_at, detail=shown_detail(e)) for e in events]


# The columns a transfer's answer shows as they are stored (schemas.TransferParties).
TRANSFER_COLUMNS = ("id", "mode", "trigger", "state", "target_number", "end_reason", "created_at", "ended_at")


def transfer_parties(transfer: Transfer) -> dict:
    """What every answer about a transfer says of it (schemas.TransferParties): its columns, and its agents by
    extension and its queue by name."""
    answered_by = transfer.target_leg.agent if transfer.target_leg else None
    return schemas.TransferParties(
        **{column: getattr(transfer, column) for column in TRANSFER_COLUMNS},
        from_agent=_extension(transfer.from_agent), target_agent=_extension(transfer.target_agent),
        target_queue=transfer.target_queue.name if transfer.target_queue else None,
        answered_by=_extension(answered_by),
    ).model_dump()


def _extension(agent: Agent | None) -> str | None:
    return agent.extension if agent else None
