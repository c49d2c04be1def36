"""The browser agent's console: its page, its state, its buttons, and the LiveKit token."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, jsonify, render_template, request

from app.auth.guards import current_actor, current_agent_id, roles_required
from app.console import service
from app.gateways import IntegrationMissing
from app.kinds import TransferMode
from app.models import Presence, parse_id
from app.web.errors import error_page
from app.web.unit_of_work import request_session, run_step, telephony

blueprint = Blueprint("console", __name__)

# Only for joining: "expiration time only impacts the initial connection, and
# not subsequent reconnects" (LiveKit's authentication docs), so the service
# also removes a console from a room its agent has left, and refuses it there
# again on reconnection (app/calls/room_events.py).
TOKEN_TTL_SECONDS = 60


def _agent_or_refusal():
    agent_id = current_agent_id()
    if agent_id is None:
        return None, error_page(403, "No agent", "This account is not linked to an agent of the roster.")
    return agent_id, None


def _with_agent(view):
    """VIEW, given the signed-in user's agent id; a 403 page for a user linked to no agent."""
    @wraps(view)
    def with_agent():
        agent_id, refused = _agent_or_refusal()
        return refused or view(agent_id)
    return with_agent


def _act(action, done: str):
    """Run one console action (CSRF already checked): JSON {"message"} on success, {"error"} in words otherwise."""
    agent_id, refused = _agent_or_refusal()
    if refused:
        return refused
    try:
        message = run_step(lambda t: action(t, agent_id))
    except service.ConsoleRefused as refusal:
        return jsonify(error=str(refusal)), refusal.status
    except IntegrationMissing as missing:
        return jsonify(error=str(missing)), 503
    return jsonify(message=message or done)


def _int_field(name: str) -> int:
    value = request.form.get(name, "")
    number = parse_id(value)
    if number is None:
        problem = "is not an id" if value.strip() else "is missing"
        raise service.ConsoleRefused(f"{name.replace('_', ' ')} {problem}", 400)
    return number


@blueprint.get("/console")
@roles_required("agent")
@_with_agent
def console_page(agent_id: int):
    """The agent console: presence, the call or transfer offered, the live call, the transfer form."""
    settings = current_app.config["SETTINGS"]
    return render_template(
        "console/console.html",
        presences=list(Presence),
        targets=service.transfer_targets(request_session(), agent_id),
        outside={"enabled": settings.outside_transfers_enabled, "prefixes": settings.outside_transfer_prefixes,
                 "domains": settings.outside_transfer_sip_domains},
        outbound={"enabled": bool(settings.outbound_call_allow), "prefixes": settings.outbound_call_allow},
    )


@blueprint.get("/console/state")
@roles_required("agent")
@_with_agent
def console_state(agent_id: int):
    """The agent's offer, call and transfer right now (polled by the console)."""
    return jsonify(service.console_state(telephony(), agent_id))


@blueprint.post("/console/presence")
@roles_required("agent")
def presence():
    """Set the signed-in agent available, away or offline."""
    def act(t, agent_id):
        agent = service.change_presence(t, agent_id, request.form.get("presence", ""), by=current_actor())
        return f"You are {agent.presence}."

    return _act(act, "")


@blueprint.post("/console/ready")
@roles_required("agent")
def ready():
    """End the signed-in agent's after-call work, with a disposition code and notes."""
    def act(t, agent_id):
        service.finish_wrap_up(t, agent_id, request.form.get("disposition", ""), request.form.get("notes", ""),
                               by=current_actor())

    return _act(act, "Ready: calls are offered to you again.")


@blueprint.post("/console/accept")
@roles_required("agent")
def accept():
    """Take the call or transfer offered in the browser."""
    return _act(lambda t, agent_id: service.accept_offer(t, agent_id, _int_field("leg_id")).capitalize() + ".", "")


@blueprint.post("/console/decline")
@roles_required("agent")
def decline():
    """Decline the call or transfer offered in the browser: it goes to the next agent."""
    return _act(lambda t, agent_id: service.decline_offer(t, agent_id, _int_field("leg_id")), "Declined.")


@blueprint.post("/console/hangup")
@roles_required("agent")
def hang_up():
    """Leave the call from the browser."""
    return _act(lambda t, agent_id: service.hang_up(t, agent_id, _int_field("leg_id")), "You left the call.")


@blueprint.post("/console/call")
@roles_required("agent")
def call_customer():
    """Place an outbound call from the signed-in agent to a customer's number."""
    def act(t, agent_id):
        number = request.form.get("number", "").strip()[:40]
        if not number:
            raise service.ConsoleRefused("enter the number to call", 400)
        return service.call_customer(t, agent_id, number, request.form.get("reason", "")[:200], by=current_actor())

    return _act(act, "")


@blueprint.post("/console/transfer")
@roles_required("agent")
def transfer():
    """Transfer the agent's own call to an extension or a queue, or an outside number or SIP URI, warm or blind."""
    def act(t, agent_id):
        mode = request.form.get("mode", TransferMode.WARM)
        if mode not in set(TransferMode):
            raise service.ConsoleRefused("the kind of transfer must be warm or blind", 400)
        code = request.form.get("target", "").strip()
        outside = request.form.get("outside", "").strip()[:200]
        if code and outside:
            raise service.ConsoleRefused("enter an extension or a queue number, or an outside number: not both", 400)
        if not (code or outside):
            raise service.ConsoleRefused("enter an extension or a queue number, or an outside number or SIP URI", 400)
        notes = request.form.get("notes", "")[:2000]
        done = service.transfer_call(t, agent_id, code, mode, notes, by=current_actor(), outside=outside)
        return f"Transfer started ({done.mode})."

    return _act(act, "")


@blueprint.post("/console/transfer/<action>")
@roles_required("agent")
def transfer_action(action: str):
    """Complete, cancel, make three-way or swap the agent's transfer (the actions of app/transfers/actions.py)."""
    return _act(lambda t, agent_id: service.finish_transfer(t, agent_id, _int_field("transfer_id"), action,
                                                             by=current_actor()), "")


@blueprint.get("/console/token")
@roles_required("agent")
def livekit_token():
    """A short-lived LiveKit token granting the signed-in agent the room of their current call only."""
    t = telephony()
    if t.livekit_gateway is None:
        return jsonify(error="LiveKit is not configured on this service"), 503
    place = service.current_room(t.session, current_agent_id())
    if place is None:
        return jsonify(error="you have no call in progress"), 404
    identity = f"agent-{place.extension}"
    token = t.livekit.browser_token(identity, place.agent_name, place.room, TOKEN_TTL_SECONDS)
    return jsonify(url=t.settings.livekit_url, token=token, room=place.room, identity=identity,
                   call_sid=place.call_sid, expires_in=TOKEN_TTL_SECONDS)
