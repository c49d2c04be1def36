"""What the webhooks of one whole warm transfer cost in database statements, counted, never timed.

Every statement a webhook sends is a round trip to the database while
Twilio waits (issue 23: webhooks at the cost of a lean correct one). The
counts come from SQLAlchemy's cursor events, grouped by the request's path;
SQLite's `BEGIN IMMEDIATE` is left out so both databases count the same.
The ceilings are today's counts (the larger of the two databases'): a change that adds a statement to a
webhook fails here and says which, so it is a choice and not an accident.
"""

from __future__ import annotations

import threading
from collections import Counter

from flask import has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.sandbox import scenarios

# The most statements one request of each path may send, and what a whole transfer's webhooks may send in all.
CEILINGS = {
    "/twilio/voice": 5,  # the call (unless its CallSid is stored already; its INSERT also asks for the caller's
                         # last call, to resume, and the configuration's version), its leg, its first event, who is
                         # subscribed to events, the IVR's queues; the first call since the configuration changed
                         # (the next ones send 3: two are kept, tests/test_configuration_version.py); no delivery
                         # claim (app/voice/guard.py, ServesArrival)
    "/twilio/ivr": 22,
    "/twilio/transfer/menu": 24,
    "/twilio/transfer/consult-menu": 20,
    "/twilio/transfer/whisper": 13,
    "/twilio/transfer/answer": 9,
}
# Paths asked several times in one transfer: the most all their requests may send together.
TOTALS = {
    # 8 events: a chunk or the caller's transcription starting locks its call without the agents
    # (ServesCall(agents=False)); one that changes nothing (an agent's starting, one stopped) sends none (acts_on)
    "/twilio/transcription": 27,
    # 19 events: a phone leg's or a room's is told by two statements without the call's lock (room_events);
    # one the service does not act on sends none
    "/livekit/webhook": 39,
    # 7 status callbacks of the agents' and the target's legs: one before the end of a leg Twilio knows by its
    # CallSid is one read, unlocked (ServesLeg.acts_on, voice/status.ends_the_leg); the end goes the whole way
    "/twilio/agent/status": 15,
    "/twilio/transfer/status": 3,
}
WHOLE_TRANSFER = 265


def _count_statements(centre, scenario) -> tuple[Counter, Counter]:
    statements, requests = Counter(), Counter()
    serving: dict[int, str] = {}  # thread -> the path it serves (background jobs see the request's context too)

    def counted(_conn, _cursor, statement, *_args) -> None:
        path = serving.get(threading.get_ident())
        if path is not None and has_request_context() and not statement.startswith("BEGIN"):
            statements[path] += 1

    def arrived() -> None:
        requests[request.path] += 1
        serving[threading.get_ident()] = request.path

    centre.app.before_request(arrived)
    event.listen(Engine, "before_cursor_execute", counted)
    try:
        scenario()
    finally:
        event.remove(Engine, "before_cursor_execute", counted)
    return statements, requests


def test_a_whole_warm_transfer_costs_no_more_statements_than_today(centre):
    def warm_transfer() -> None:
        _caller, alice, _bob = scenarios.warm_transfer_by_dtmf(centre.network, centre.number)
        assert "Transfer complete" in alice.heard_text

    statements, requests = _count_statements(centre, warm_transfer)
    for path, ceiling in CEILINGS.items():
        assert requests[path] == 1, f"{path} was asked {requests[path]} times"
        assert statements[path] <= ceiling, f"{path} sent {statements[path]} statements (at most {ceiling})"
    for path, total in TOTALS.items():
        assert statements[path] <= total, f"{path}'s {requests[path]} requests sent {statements[path]} statements"
    webhooks = {path: n for path, n in statements.items() if path.startswith(("/twilio/", "/livekit/"))}
    assert sum(webhooks.values()) <= WHOLE_TRANSFER, sorted(webhooks.items(), key=lambda item: -item[1])
