"""Who may follow which live page: decided by the Flask app itself.

A stream's opening request is answered, with its own cookie, by the Flask
view that serves the same page's JSON (/board/snapshot, /wallboard/snapshot,
/calls/<sid>/snapshot, /console/state): the same session cookie, user
loader, roles and access rules, so the live process cannot drift from the
pages. A refusal (a redirect to sign in, a 403, a 404, a 400 for an unknown
queue) is passed on as the view gave it; an admission names the topic the
viewer follows and how it is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from flask_login import current_user
from werkzeug.test import EnvironBuilder

from app.auth.guards import current_agent_id
from app.auth.service import Role
from app.live import readers
from app.live.topics import Read, TopicKey
from app.states.calls import call_by_sid
from app.web.unit_of_work import request_session


@dataclass(frozen=True)
class Refusal:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Admission:
    key: TopicKey
    read: Read


# The page kinds the live process serves: the Flask view that answers each one's JSON. The board is let in by the
# wallboard's, which has the same guard (supervisors) and queue filter, for a fraction of the cost: the board's
# own reads every live call.
SNAPSHOT_PATHS = {"board": "/wallboard/snapshot", "wallboard": "/wallboard/snapshot", "console": "/console/state"}
PASSED_ON = ("Content-Type", "Location", "Retry-After", "Cache-Control")


def snapshot_path(kind: str, call_sid: str | None = None) -> str:
    return f"/calls/{call_sid}/snapshot" if kind == "call" else SNAPSHOT_PATHS[kind]


def admit(app: Flask, kind: str, call_sid: str | None, query_string: str, headers: dict[str, str],
          client: str) -> Admission | Refusal:
    """Ask the Flask app whether this viewer may see page KIND (a call's: CALL_SID); run in a worker thread."""
    environ = EnvironBuilder(path=snapshot_path(kind, call_sid), query_string=query_string,
                             headers={name: value for name, value in headers.items() if name.lower() != "host"},
                             environ_base={"REMOTE_ADDR": client}).get_environ()
    # An application context of its own: `g` (and with it the request's unit of work) is never shared with
    # another admission running in another thread, whatever context the server was started in.
    with app.app_context(), app.request_context(environ):
        response = app.full_dispatch_request()
        if response.status_code != 200:
            return Refusal(response.status_code, {name: response.headers[name] for name in PASSED_ON
                                                  if name in response.headers}, response.get_data())
        return _admitted(app, kind, call_sid)


def _admitted(app: Flask, kind: str, call_sid: str | None) -> Admission:
    from flask import request

    if kind in ("board", "wallboard"):
        queue_name = request.args.get("queue", "").strip()[:64]
        return Admission(TopicKey(kind, queue_name), readers.board_reader(app, kind, queue_name))
    agent_id = current_agent_id()
    if kind == "console":
        return Admission(TopicKey("console", agent_id), readers.console_reader(app, agent_id))
    call = call_by_sid(request_session(), call_sid)
    may_act = current_user.role == Role.SUPERVISOR
    viewer = "supervisor" if may_act else f"agent:{agent_id}"
    return Admission(TopicKey("call", call.id, viewer), readers.call_reader(app, call.id, may_act, agent_id))
