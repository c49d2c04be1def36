"""No statement of a whole warm transfer, nor of the board's read or the timers that run every 5 s, reads the whole
of a table that grows with every call.

Every statement the service sends while a warm transfer runs (its webhooks,
LiveKit's, the jobs they start) is caught from SQLAlchemy's cursor events,
and the database is asked for its plan, with its own parameters: PostgreSQL
with sequential scans priced out, SQLite's own plan. A plan that still reads
all of one of these tables (or all of one of its indexes) means a lookup no
index serves: harmless on the test's few rows, a read of the whole history
on every such webhook in production (docs/performance.md, "Lookups that grew
with the history"). tests/test_lookup_indexes.py checks the known lookups
one by one; this catches a new one.
"""

from __future__ import annotations

import re

from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.calls.callbacks import offer_due_callbacks
from app.calls.room_events import expire_browser_joins
from app.jobs.setup import jobs_of
from app.jobs.steps import job_step
from app.outgoing.sending import due_lines
from app.primitives.availability import end_due_wrap_ups
from app.sandbox import scenarios
from app.supervisor.board import board_snapshot
from tests.test_lookup_indexes import _reads_whole_table, explain

# The tables that grow with every call (the rest are the configuration and the people: a few rows each).
GROWING = ("calls", "legs", "transfers", "events", "webhook_deliveries", "utterances", "callbacks",
           "event_deliveries")
ASKING = re.compile(r"^\s*(SELECT|UPDATE|DELETE)\b", re.IGNORECASE)


def test_a_warm_transfer_the_board_and_the_timers_read_no_growing_table_whole(centre):
    sent: dict[str, object] = {}

    def caught(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        if not executemany and ASKING.match(statement) and any(
                re.search(rf"\b{table}\b", statement) for table in GROWING):
            sent.setdefault(statement, parameters)

    event.listen(Engine, "before_cursor_execute", caught)
    try:
        _caller, alice, _bob = scenarios.warm_transfer_by_dtmf(centre.network, centre.number)
        with centre.db() as session:  # and the board, read twice a second while calls change
            board_snapshot(session, centre.app.config["SETTINGS"])
            due_lines(session)
        # The timers every 5 s, whatever the load (docs/jobs.md).
        with centre.app.app_context(), job_step(jobs_of(centre.app).context["tools"]) as t:
            end_due_wrap_ups(t)
            offer_due_callbacks(t)
            expire_browser_joins(t)
    finally:
        event.remove(Engine, "before_cursor_execute", caught)
    assert "Transfer complete" in alice.heard_text
    assert len(sent) > 20, f"only {len(sent)} statements caught"

    engine = centre.app.extensions["db_engine"]
    whole = []
    for statement, parameters in sent.items():
        plan = explain(engine, statement, parameters)
        read = [table for table in GROWING if _reads_whole_table(engine, plan, table)]
        if read:
            whole.append(f"{', '.join(read)}: {' '.join(statement.split())[:300]}\n{plan}")
    assert not whole, "statements that read a whole growing table:\n\n" + "\n\n".join(whole)
