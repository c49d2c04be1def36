"""LiveKit's webhook: signed room and participant events.

Each event is handled once, known by its event id, or by the SHA-256 of its
body when it has none: a replay of the body, or the same event re-sent, is
answered `repeated` and changes nothing. One key is enough: the id is part
of the body LiveKit's token signs, so a replay cannot change it. An event
the service does not act on (a track published, say) is answered without
touching the database.
"""

from __future__ import annotations

import hashlib

import structlog
from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from app.calls.room_events import acted_on, room_event
from app.database import insert_new_rows
from app.gateways.livekit import InvalidLiveKitWebhook
from app.jobs.setup import reconcile_soon
from app.logs import get_logger
from app.models import WebhookDelivery, utcnow
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
    if not acted_on(event):
        # Nothing of it is kept (a track published, say), so a repeat could change nothing either: answered
        # without a statement, where its claim would have been one write and a commit (a quarter of a call's
        # LiveKit webhooks).
        return jsonify(status="ok", acted_on=False)
    try:
        return _record_once(t, event, body)
    except SQLAlchemyError as error:
        # Not stored: the reconciler asks Twilio about the legs once the
        # database is back (app/calls/reconcile.py).
        request_session().rollback()
        log.warning("livekit_webhook_database_failed", error=type(error).__name__)
        reconcile_soon(current_app)
        return jsonify(error="the database is unavailable; the event was not stored"), 503


def _record_once(t, event, body: str):
    session = request_session()
    key = event.event_id[:128] if event.event_id else "sha256:" + hashlib.sha256(body.encode()).hexdigest()
    # Claimed first, in the event's own transaction: a repeat finds its key (on PostgreSQL, one that arrives
    # while the first is being recorded waits for it).
    claim = dict(source="livekit", delivery_key=key, endpoint=request.path, status_code=200,
                 content_type="application/json", body="{}", created_at=utcnow())
    if not insert_new_rows(session, WebhookDelivery, ("source", "delivery_key"), claim):
        session.rollback()
        log.info("webhook_repeated", path=request.path)
        return jsonify(status="ok", repeated=True)
    room_event(t, event)
    return jsonify(status="ok")
