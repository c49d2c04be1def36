"""How each topic is read: the same snapshot functions as the Flask pages' own streams and polls, each read in
a short session of its own (run in a worker thread by its topic); a board's or a call page's in one consistent
view of the database (database.read_as_one), so its cursor, lists and figures agree."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.console.service import console_state
from app.database import read_as_one
from app.jobs.steps import job_step
from app.live.topics import Read, Reading
from app.models import LIVE_LEG_STATUSES, Agent, Leg
from app.supervisor import board

OFFER_REFRESH_SECONDS = 1.0


def board_reader(app: Flask, kind: str, queue_name: str) -> Read:
    """The board's or the wallboard's data (KIND), for one queue's name or every queue ('')."""
    settings, make_session = app.config["SETTINGS"], app.extensions["db_sessionmaker"]
    snapshot_of = board.board_snapshot if kind == "board" else board.wallboard_snapshot

    def read() -> Reading:
        with read_as_one(make_session()) as session:
            try:
                queue = board.queue_named(session, queue_name)
            except board.UnknownQueue:  # removed while the page watched
                return Reading("", None)
            return Reading(board.board_cursor(session), snapshot_of(session, settings, queue))

    return read


def call_reader(app: Flask, call_id: int, may_act: bool, agent_id: int | None) -> Read:
    """One call's page, as a supervisor (MAY_ACT) or as agent AGENT_ID sees it."""
    make_session = app.extensions["db_sessionmaker"]

    def read() -> Reading:
        with read_as_one(make_session()) as session:
            return Reading(board.call_cursor(session, call_id),
                           board.call_page_as_seen(session, call_id, may_act, agent_id))

    return read


def console_reader(app: Flask, agent_id: int) -> Read:
    """One agent's console, as /console/state answers it: a step of its own (it gives up rings nobody will answer
    any more, and stores a summary's fallback past its deadline), committed and followed up."""
    tools = app.extensions["jobs"].context["tools"]

    def read() -> Reading:
        with app.app_context(), job_step(tools) as t:
            if t.session.get(Agent, agent_id) is None:  # removed from the roster while the console watched
                return Reading("", None)
            snapshot = console_state(t, agent_id)
            calls = frozenset(t.session.scalars(select(Leg.call_id).where(
                Leg.agent_id == agent_id, Leg.status.in_(LIVE_LEG_STATUSES))))
            # While a call is offered, its ring's end is checked every second, as the console's poll did.
            return Reading(board.board_cursor(t.session), snapshot, calls,
                           refresh_seconds=OFFER_REFRESH_SECONDS if snapshot["offer"] is not None else None)

    return read
