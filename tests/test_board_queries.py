"""The board's data costs a fixed number of database statements, however many calls and transfers are live.

Counted with SQLAlchemy's cursor events on the board's own session: a query
per live call (a call's transfers loaded one by one, say) would make the
count grow with the calls, and 50 boards on a busy floor would cost the
webhooks their speed (issue 23: pages whose cost does not grow with live
calls). Statements are counted, never timed.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import event, func, select

from app.auth.service import create_user
from app.db import session_scope
from app.models import Agent, Call, CallStatus, Leg, LegRole, LegStatus, Queue, Transfer
from app.supervisor.board import board_snapshot
from tests.test_supervisor_pages import PASSWORD, signed_in


def _add_live_calls(app, calls: int) -> None:
    """CALLS more live calls in billing, each connected to an agent, every other one with a warm transfer dialing."""
    with session_scope(app) as session:
        billing = session.scalar(select(Queue).where(Queue.name == "billing"))
        agents = list(session.scalars(select(Agent).order_by(Agent.extension)))
        first = session.scalar(select(func.count()).select_from(Call))
        for n in range(first, first + calls):
            agent = agents[n % len(agents)]
            call = Call(call_sid=f"CA{n:032d}", from_number=f"+1555000{n:04d}", to_number="+15550100000",
                        status=CallStatus.CONNECTED, queue_id=billing.id, agent_id=agent.id)
            session.add(call)
            session.flush()
            session.add(Leg(call_id=call.id, role=LegRole.CALLER, status=LegStatus.CONNECTED))
            session.add(Leg(call_id=call.id, role=LegRole.AGENT, status=LegStatus.CONNECTED, agent_id=agent.id))
            if n % 2:
                session.add(Transfer(call_id=call.id, mode="warm", trigger="api", state="dialing",
                                     from_agent_id=agent.id, target_agent_id=agents[(n + 1) % len(agents)].id,
                                     tried_agent_ids=[]))


def _statements_of_a_snapshot(app) -> int:
    with session_scope(app) as session:
        counted = []
        listener = lambda *args: counted.append(1)  # noqa: E731 - one per statement sent
        bind = session.get_bind()
        event.listen(bind, "before_cursor_execute", listener)
        try:
            snapshot = board_snapshot(session, app.config["SETTINGS"])
        finally:
            event.remove(bind, "before_cursor_execute", listener)
        assert snapshot["calls"]
        return len(counted)


def test_the_boards_snapshot_costs_the_same_statements_for_4_live_calls_as_for_40(centre):
    _add_live_calls(centre.app, 4)
    few = _statements_of_a_snapshot(centre.app)
    _add_live_calls(centre.app, 36)
    many = _statements_of_a_snapshot(centre.app)
    assert many == few, f"{few} statements for 4 live calls, {many} for 40"


def test_past_its_page_of_calls_the_board_lists_the_longest_running_and_counts_the_rest(centre):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], board_calls_shown=3)
    _add_live_calls(centre.app, 2)
    few = _statements_of_a_snapshot(centre.app)
    _add_live_calls(centre.app, 38)
    many = _statements_of_a_snapshot(centre.app)
    assert many == few + 1, "one count of the calls left out, whatever their number"
    with session_scope(centre.app) as session:
        snapshot = board_snapshot(session, centre.app.config["SETTINGS"])
        oldest = list(session.scalars(select(Call.call_sid).order_by(Call.created_at, Call.id).limit(3)))
    assert [row["call_sid"] for row in snapshot["calls"]] == oldest and snapshot["calls_total"] == 40

    with centre.db() as session:
        create_user(session, "sam", PASSWORD, "supervisor")
    html = " ".join(signed_in(centre, "sam").get("/board").get_data(as_text=True).split())
    assert 'data-count="calls">40<' in html
    assert "Showing the <span data-calls-shown>3</span> longest-running of <span data-calls-total>40</span>" in html
