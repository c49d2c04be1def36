"""The browser agent's console and its LiveKit token."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.auth.guards import current_agent_id, roles_required
from app.console.service import current_room
from app.telephony.web import telephony

blueprint = Blueprint("console", __name__)

TOKEN_TTL_SECONDS = 600


@blueprint.get("/console/token")
@roles_required("agent")
def livekit_token():
    """A short-lived LiveKit token granting the signed-in agent the room of their current call only."""
    t = telephony()
    if t.livekit_gateway is None:
        return jsonify(error="LiveKit is not configured on this service"), 503
    place = current_room(t.session, current_agent_id())
    if place is None:
        return jsonify(error="you have no call in progress"), 404
    identity = f"agent-{place.extension}"
    token = t.livekit.browser_token(identity, place.agent_name, place.room, TOKEN_TTL_SECONDS)
    return jsonify(url=t.settings.livekit_url, token=token, room=place.room, identity=identity,
                   call_sid=place.call_sid, expires_in=TOKEN_TTL_SECONDS)
