"""A supervisor listening to a live call, whispering to its agent, or joining it (barge), from the call page.

The supervisor's browser joins the call's LiveKit room with a token of its own
(listen: subscribe only, hidden); a switch to whisper or barge is granted on
the connected participant by the server (LiveKitGateway.set_supervisor_mode).
Who hears a whisper is the publisher's to say: the page allows the agent's
participant alone to subscribe to its microphone before publishing it, and
LiveKit refuses that track to everyone else, the caller's SIP participant
included (livekit-server `pkg/rtc/uptrackmanager.go`, hasPermissionLocked).
Every start, switch and stop is on the call's timeline with who did it.
"""

from __future__ import annotations

from typing import NamedTuple

from app.events import record_event
from app.gateways.livekit import LiveKitError
from app.models import Call, LegRole, LegStatus
from app.primitives.context import Telephony
from app.primitives.effects import remove_from_room

MODES = ("listen", "whisper", "barge")
# Only for joining, as the console's token (app/console/views.py).
TOKEN_TTL_SECONDS = 60


class SupervisionRefused(Exception):
    """Listening, whispering or barging cannot be done, with the reason in words (and the HTTP status to say it)."""

    status = 409


class BadMode(SupervisionRefused):
    status = 400


class LiveKitUnavailable(SupervisionRefused):
    status = 502


class Pass(NamedTuple):
    """What the supervisor's page connects with, and who a whisper goes to."""

    url: str
    token: str
    room: str
    identity: str
    agent_identity: str


def supervisor_identity(username: str) -> str:
    """The supervisor's participant identity: never `agent-…` (a console) nor `sip_…` (a phone leg)."""
    return f"supervisor-{username}"


def _agent_identity(call: Call) -> str:
    """The LiveKit identity of the agent talking with the caller in the call's room; refused when there is none."""
    if call.is_final or not call.room_name:
        raise SupervisionRefused("the call is not live in a room")
    for leg in call.legs:
        if (leg.role == LegRole.AGENT and leg.status == LegStatus.CONNECTED and leg.room_name == call.room_name
                and leg.livekit_identity and not leg.is_final):
            return leg.livekit_identity
    raise SupervisionRefused("no agent is talking with the caller in the call's room now")


def read_mode(value: str) -> str:
    """The mode named in a form; refused in words otherwise."""
    if value not in MODES:
        raise BadMode("the mode must be listen, whisper or barge")
    return value


def start(t: Telephony, call: Call, username: str) -> Pass:
    """A supervisor starts listening: a join token for the call's room, in listen mode."""
    agent = _agent_identity(call)
    identity = supervisor_identity(username)
    token = t.livekit.supervisor_token(identity, username, call.room_name, TOKEN_TTL_SECONDS)
    record_event(t.session, call, "supervisor_listening", by=username, room=call.room_name)
    return Pass(t.settings.livekit_url, token, call.room_name, identity, agent)


def switch(t: Telephony, call: Call, username: str, mode: str) -> str:
    """Grant the connected supervisor MODE's permissions; the agent's identity (whom a whisper goes to).

    A named commit-before-network place (tests/test_commit_points.py): the request's transaction so far (its
    reads; nothing is written before LiveKit answers) ends first, because on SQLite every transaction holds
    the database's write lock from its BEGIN IMMEDIATE, and every webhook would wait for LiveKit's answer.
    """
    agent = _agent_identity(call)
    # The exception to one commit per step, named in tests/test_architecture.py: no transaction (SQLite's write
    # lock) is held while LiveKit answers; nothing is written before it, and the event after is the step's own.
    t.session.commit()
    try:
        t.livekit.set_supervisor_mode(call.room_name, supervisor_identity(username), mode)
    except LiveKitError as error:
        if error.code == "not_found":
            raise SupervisionRefused("you are not connected to the call's room: start listening first") from None
        raise LiveKitUnavailable(f"LiveKit did not change your permissions: {error}") from None
    record_event(t.session, call, f"supervisor_{_EVENT[mode]}", by=username, room=call.room_name)
    return agent


def stop(t: Telephony, call: Call, username: str) -> None:
    """The supervisor stops: LiveKit removes their participant once the step is committed, whatever their page
    does (a removal of someone already gone is nothing)."""
    remove_from_room(t, call, call.room_name, supervisor_identity(username))
    record_event(t.session, call, "supervisor_stopped", by=username, room=call.room_name)


_EVENT = {"listen": "listening", "whisper": "whispering", "barge": "barged_in"}
