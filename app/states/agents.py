"""An agent's state: the one writer of `Agent.activity` and `Agent.presence` (and of when each last changed,
`activity_changed_at` and `presence_changed_at`), and the moves they allow.

Presence is the agent's own choice (available, away, offline), or set away
by the service after missed calls. Activity is what the service has them
doing: `idle`, `ringing` (reserved for one call: only `take_if_idle` puts
them there, by a compare-and-set), `on_call`, `leaving` (their last
phone leg is over for the service, not yet for Twilio), and `wrap_up`
(after-call work, offered nothing until it ends).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from app.events import record_event
from app.models import Activity, Agent, Call, Presence, utcnow
from app.states.moves import check_move

ACTIVITY_MOVES: dict[str, frozenset[str]] = {
    # Idle to on a call or leaving: a leg the reconciler had already given
    # up on (and freed its agent for) that Twilio then reports answered or over.
    Activity.IDLE: frozenset({Activity.RINGING, Activity.ON_CALL, Activity.LEAVING}),
    Activity.RINGING: frozenset({Activity.ON_CALL, Activity.IDLE, Activity.LEAVING}),
    Activity.ON_CALL: frozenset({Activity.IDLE, Activity.LEAVING, Activity.WRAP_UP}),
    Activity.LEAVING: frozenset({Activity.IDLE, Activity.ON_CALL, Activity.WRAP_UP}),
    # On a call again from wrap-up: a leg the reconciler had given up on that Twilio reports answered.
    Activity.WRAP_UP: frozenset({Activity.IDLE, Activity.ON_CALL, Activity.LEAVING}),
}
PRESENCE_MOVES: dict[str, frozenset[str]] = {
    presence: frozenset(Presence) - {presence} for presence in Presence
}


def new_agent(session: Session, extension: str) -> Agent:
    """A new agent of the roster: idle, offline until the roster or they say otherwise."""
    now = utcnow()
    agent = Agent(extension=extension, activity=Activity.IDLE, presence=Presence.OFFLINE,
                  activity_changed_at=now, presence_changed_at=now)
    session.add(agent)
    return agent


# Built once: the agent named by `agent`, held unless another transaction holds them (SKIP LOCKED), moved from
# idle and available to ringing by a compare-and-set, and read back as the session's Agent in the same statement.
_TAKE_IF_IDLE = (
    update(Agent)
    .where(Agent.id == select(Agent.id).where(Agent.id == bindparam("agent"))
           .with_for_update(key_share=True, skip_locked=True).scalar_subquery(),
           Agent.activity == Activity.IDLE, Agent.presence == Presence.AVAILABLE)
    .values(activity=Activity.RINGING, activity_changed_at=bindparam("now"))
    .returning(Agent)
    .execution_options(synchronize_session=False, populate_existing=True)
)


def take_if_idle(session: Session, agent_id: int) -> Agent | None:
    """Reserve the agent (idle and available -> ringing) if no other transaction holds or took them first: the
    agent, read afresh, or None.

    The only way to RINGING, in one statement. SKIP LOCKED: an agent row
    another transaction holds is passed over, never waited for, so a
    reservation closes no deadlock (PostgreSQL; SQLite's write lock already
    serialises writers). The compare-and-set UPDATE is won by one
    transaction only, and its RETURNING refreshes the session's Agent.
    """
    return session.scalars(_TAKE_IF_IDLE, {"agent": agent_id, "now": utcnow()}).first()


def move_activity(agent: Agent, to: Activity) -> bool:
    """Move the agent's activity to TO (not RINGING: that is take_if_idle's); False if they already are in TO."""
    if to == Activity.RINGING:
        raise ValueError("an agent is reserved by take_if_idle, never set ringing")
    moved = check_move("agent", agent.id, ACTIVITY_MOVES, agent.activity, to)
    if moved:
        agent.activity = to
        agent.activity_changed_at = utcnow()
    return moved


def set_presence(session: Session, agent: Agent, presence: Presence, *, call: Call | None = None,
                 event: str | None = None, **detail: Any) -> bool:
    """Set the agent's presence; becoming available clears their missed calls. EVENT goes on CALL's timeline."""
    if presence not in PRESENCE_MOVES:
        raise ValueError(f"presence must be one of {', '.join(Presence)}")
    moved = check_move("agent_presence", agent.id, PRESENCE_MOVES, agent.presence, presence)
    if moved:
        agent.presence = presence
        agent.presence_changed_at = utcnow()
    if presence == Presence.AVAILABLE:
        agent.missed_in_row = 0
    if event is not None:
        record_event(session, call, event, agent=agent.extension, **detail)
    return moved
