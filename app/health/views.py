"""Liveness and readiness probes for load balancers and operators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.db import request_session
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
    try:
        request_session().execute(text("SELECT 1"))
        database = "ok"
    except Exception as error:  # noqa: BLE001 - any failure means not ready
        log.warning("database_unreachable", error=type(error).__name__)
        database = "unreachable"
    body = {
        "status": "ok" if database == "ok" else "unavailable",
        "database": database,
        "integrations": {
            "twilio": settings.twilio_configured,
            "livekit": settings.livekit_configured,
            "livekit_sip": settings.sip_configured,
            "llm": settings.llm_provider,
        },
    }
    return jsonify(body), 200 if database == "ok" else 503
