"""The lookups a call's webhooks, the board and the reconciler make on tables that grow with every call are
answered through an index, never by reading the whole table (migrations 0026 and 0027): found by asking the
database for each one's plan, with sequential scans priced out on PostgreSQL (a plan that still scans the table,
or all of an index, has no index to use) and SQLite's own plan read."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.sql import Select

from app.database import make_engine
from app.models import (
    FINAL_CALL_STATUSES,
    LIVE_LEG_STATUSES,
    LIVE_TRANSFER_STATES,
    Call,
    Event,
    Leg,
    Transfer,
    same_customer,
    utcnow,
)
from app.primitives.legs import _LOCK_CALL_IN_ROOM
from app.states.calls import _CALLERS_LAST_CALL
from app.supervisor.board import _live


def _plan(engine, statement: Select, params: dict) -> str:
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    values = {**compiled.params, **params}
    if engine.dialect.name == "postgresql":
        return explain(engine, compiled.string, values)
    return explain(engine, compiled.string, tuple(values[name] for name in compiled.positiontup))


def explain(engine, statement: str, parameters) -> str:
    """The database's plan of STATEMENT (as the driver is given it) with PARAMETERS: PostgreSQL's with sequential
    scans priced out, SQLite's own."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            with connection.begin():
                connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
                rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        else:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    return "\n".join(" | ".join(str(part) for part in row) for row in rows)


def _reads_whole_table(engine, plan: str, table: str) -> bool:
    if engine.dialect.name == "postgresql":
        # A sequential scan, or an index scan with no condition on the index (it reads all of the index).
        lines = plan.splitlines()
        for number, line in enumerate(lines):
            node = re.search(rf"(Seq Scan|Index Scan|Index Only Scan) (?:using \S+ )?on {table}\b", line)
            if node is None:
                continue
            if node.group(1) == "Seq Scan":
                return True
            details = []
            for following in lines[number + 1:]:
                if "->" in following:
                    break
                details.append(following)
            if not any("Index Cond:" in detail for detail in details):
                return True
        return False
    # SQLite: "SCAN calls" reads the table, and "SCAN calls USING [COVERING] INDEX …" all of an index (as many
    # rows); "SEARCH calls USING INDEX …" looks up only what it asks for.
    return any(re.fullmatch(rf"SCAN {table}( USING .*)?", line.split(" | ")[-1].strip())
               for line in plan.splitlines())


@pytest.fixture
def engine(clean_database):
    engine = make_engine(clean_database, pooled=False)
    yield engine
    engine.dispose()


since = utcnow() - timedelta(seconds=120)
LOOKUPS = {
    # Every LiveKit webhook: the call whose room, or whose transfer's consult room, the event is about.
    "a LiveKit event's call, by room": (_LOCK_CALL_IN_ROOM, {"room": "room-1"}, ("calls", "transfers")),
    # Every new call: did this caller hang up on us moments ago (calls/resume.py)? Asked by the call's INSERT.
    "a new caller's last call": (select(_CALLERS_LAST_CALL), {"resume_number": "+15550001111", "resume_since": since},
                                 ("calls",)),
    # A transfer's summary: the customer's earlier calls.
    "a customer's calls, by number": (select(Call.id).where(same_customer("+15550001111")), {}, ("calls",)),
    # Several steps: is this agent on another live leg?
    "an agent's legs": (select(Leg.id).where(Leg.agent_id == 1), {}, ("legs",)),
    # A transfer's summary turn: the events of the transfer.
    "a transfer's events": (select(Event.detail).where(Event.transfer_id == 1, Event.name == "summary_asked"), {},
                            ("events",)),
    # The board (twice a second while it changes), the reconciler and the consoles: what is not over yet.
    "the live calls": (select(Call.id).where(*_live(None)), {}, ("calls",)),
    "the live legs": (select(Leg.id).where(Leg.status.in_(LIVE_LEG_STATUSES)), {}, ("legs",)),
    "the live transfers": (select(Transfer.id).where(Transfer.state.in_(LIVE_TRANSFER_STATES)), {}, ("transfers",)),
}


@pytest.mark.parametrize("name", list(LOOKUPS))
def test_a_lookup_on_the_call_path_uses_an_index(engine, name):
    statement, params, tables = LOOKUPS[name]
    plan = _plan(engine, statement, params)
    assert plan, "the database gave no plan"
    for table in tables:
        assert not _reads_whole_table(engine, plan, table), f"{name} reads all of {table}:\n{plan}"


def test_the_check_sees_a_lookup_without_an_index(engine):
    # The check itself: a lookup by a column no index covers reads the whole table, and is caught; so is asking
    # for live calls as `NOT IN` the final statuses, which reads all of the status's index.
    plan = _plan(engine, select(Call.id).where(Call.ivr_reason == "billing"), {})
    assert _reads_whole_table(engine, plan, "calls"), plan
    plan = _plan(engine, select(Call.id).where(Call.status.not_in(sorted(FINAL_CALL_STATUSES))), {})
    assert _reads_whole_table(engine, plan, "calls"), plan

