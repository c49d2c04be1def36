"""LiveKit's webhook: signed room and participant events."""

from __future__ import annotations

import structlog
from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.calls.room_events import room_event
from app.gateways.livekit import InvalidLiveKitWebhook
from app.jobs.setup import reconcile_soon
from app.logs import get_logger
from app.models import WebhookDelivery
from app.telephony import urls
from app.web.unit_of_work import request_session, telephony

blueprint = Blueprint("livekit", __name__)
log = get_logger("switchboard.webhooks")


@blueprint.post(urls.LIVEKIT_WEBHOOK)
def livekit_webhook():
    """Verify LiveKit's signed token (with the body's sha256), then record the event once."""
    t = telephony()
    if t.livekit_gateway is None:
        log.warning("livekit_webhook_rejected", reason="livekit not configured")
        return jsonify(error="LiveKit is not configured"), 403
    body = request.get_data(as_text=True)
    try:
        event = t.livekit.verify_webhook(body, request.headers.get("Authorization", ""))
    except InvalidLiveKitWebhook as error:
        log.warning("livekit_webhook_rejected", reason=str(error)[:200])
        return jsonify(error="invalid LiveKit webhook signature"), 403
    structlog.contextvars.bind_contextvars(livekit_event=event.event)
    try:
        return _record_once(t, event)
    except SQLAlchemyError as error:
        # Not stored: the reconciler asks Twilio about the legs once the
        # database is back (app/calls/reconcile.py).
        request_session().rollback()
        log.warning("livekit_webhook_database_failed", error=type(error).__name__)
        reconcile_soon(current_app)
        return jsonify(error="the database is unavailable; the event was not stored"), 503


def _record_once(t, event):
    session = request_session()
    key = event.event_id or None
    if key and session.scalar(
        select(WebhookDelivery.id).where(WebhookDelivery.source == "livekit", WebhookDelivery.delivery_key == key)
    ):
        log.info("webhook_repeated", path=request.path)
        return jsonify(status="ok", repeated=True)
    room_event(t, event)
    if key:
        session.add(WebhookDelivery(source="livekit", delivery_key=key[:128], endpoint=request.path,
                                    status_code=200, content_type="application/json", body="{}"))
    return jsonify(status="ok")
