"""Liveness and readiness probes for load balancers and operators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.database import schema_state
from app.logs import get_logger

blueprint = Blueprint("health", __name__)
log = get_logger(__name__)


@blueprint.get("/health")
def health():
    """The process is up."""
    return jsonify(status="ok")


@blueprint.get("/ready")
def ready():
    """The database answers; which integrations are configured (never their secrets)."""
    settings = current_app.config["SETTINGS"]
    state = schema_state(current_app.extensions["db_engine"])
    database = "ok" if state.ready else ("unreachable" if not state.reachable else "not migrated")
    if not state.ready:
        log.warning("database_not_ready", problem=state.problem)
    body = {
        "status": "ok" if state.ready else "unavailable",
        "database": database,
        # Anyone may ask: where the database is and the driver's words stay in the log (database_not_ready).
        "problem": state.problem if state.reachable else "the database is not reachable: see database_not_ready in "
                                                          "the service's log",
        "revision": state.revision,
        "integrations": {
            "twilio": settings.twilio_configured,
            "livekit": settings.livekit_configured,
            "livekit_sip": settings.sip_configured,
            "llm": settings.llm_provider,
        },
    }
    return jsonify(body), 200 if database == "ok" else 503
