"""The JSON API for the roster (token or supervisor session): agents with their presence and activity, setting an
agent's presence as a supervisor does from the board, and the queues with who waits and who could answer."""

from __future__ import annotations

from flask import current_app, jsonify, request
from spectree import Response

from app.agents import service as agents
from app.api import schemas
from app.api.common import ERRORS, api_route, blueprint, error
from app.auth.guards import current_actor
from app.auth.service import Scope
from app.models import Agent, Queue, utcnow
from app.primitives.availability import free_agents
from app.routing.line import waiting_now
from app.web.unit_of_work import run_step, telephony

# An extension is at most this long (Agent.extension); a longer one names no agent.
EXTENSION_LIMIT = 16


def agent_as_dict(agent: Agent) -> dict:
    """An agent in the API's shape (schemas.Agent): the roster's fields (agents.agent_as_dict, as the CLI prints
    them) and since when they have had their presence and activity."""
    return schemas.Agent(**agents.agent_as_dict(agent), presence_since=agent.presence_changed_at,
                         activity_since=agent.activity_changed_at).model_dump(mode="json")


def queue_as_dict(queue: Queue) -> dict:
    """A queue in the API's shape (schemas.Queue): the roster's fields (agents.queue_as_dict, as the CLI prints
    them), whether it is open, who waits there and who could answer now."""
    session = telephony().session
    shown = agents.queue_as_dict(queue)
    zone = shown.pop("timezone") or current_app.config["SETTINGS"].centre_timezone
    code = shown.pop("dtmf_code")
    return schemas.Queue(**shown, code=code, timezone=zone,
                         open_now=queue.opening_hours(zone).is_open(utcnow()),
                         waiting=waiting_now(session, queue.id),
                         agents_available=len(free_agents(session, queue.skill))).model_dump(mode="json")


@blueprint.get("/agents")
@api_route(Scope.READ, resp=Response(HTTP_200=schemas.AgentList, **ERRORS), tags=["agents and queues"])
def list_agents():
    """Every agent, by extension: skills, presence and activity, each with since when."""
    return jsonify(schemas.AgentList(agents=[schemas.Agent(**agent_as_dict(agent))
                                             for agent in agents.list_agents(telephony().session)])
                   .model_dump(mode="json"))


def _agent(extension: str) -> Agent | None:
    try:
        return agents.find_agent(telephony().session, extension[:EXTENSION_LIMIT])
    except agents.RosterError:
        return None


def _no_agent(extension: str):
    return error(404, f"no agent with extension {extension[:EXTENSION_LIMIT]}")


@blueprint.get("/agents/<extension>")
@api_route(Scope.READ, resp=Response(HTTP_200=schemas.Agent, **ERRORS), tags=["agents and queues"])
def agent_status(extension: str):
    """One agent: skills, presence and activity, each with since when."""
    agent = _agent(extension)
    return _no_agent(extension) if agent is None else jsonify(agent_as_dict(agent))


def set_presence(extension: str):
    """Set an agent available or away, as a supervisor does from the board: one made available and idle is
    offered what waits for their skills; one on a call stays on it. The timeline keeps who
    (presence_set, by token:NAME)."""
    if _agent(extension) is None:
        return _no_agent(extension)
    body: schemas.SetPresence = request.context.json
    by = current_actor()
    try:
        agent = run_step(lambda t: agents.set_presence_by_supervisor(t, extension[:EXTENSION_LIMIT], body.presence,
                                                                     by=by))
    except agents.RosterError as refusal:
        return error(400, str(refusal))
    return jsonify(agent_as_dict(agent))


# PUT states the presence; POST, the same, for clients that only post (the board's form posts too).
blueprint.add_url_rule("/agents/<extension>/presence", view_func=api_route(
    Scope.ACT, json=schemas.SetPresence, resp=Response(HTTP_200=schemas.Agent, **ERRORS),
    tags=["agents and queues"])(set_presence), methods=["PUT", "POST"])


@blueprint.get("/queues")
@api_route(Scope.READ, resp=Response(HTTP_200=schemas.QueueList, **ERRORS), tags=["agents and queues"])
def list_queues():
    """Every queue, by IVR code: its code, skill, hours and priority, how many wait there now and how many
    agents with its skill are available and idle."""
    return jsonify(schemas.QueueList(queues=[schemas.Queue(**queue_as_dict(queue))
                                             for queue in agents.list_queues(telephony().session)])
                   .model_dump(mode="json"))
