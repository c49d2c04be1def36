"""Whether an agent can take a call: reserving one (idle -> ringing) and making one idle again.

An agent is reserved by a compare-and-set UPDATE (idle -> ringing) that only
one transaction can win, on PostgreSQL (row lock) and on SQLite (whose write
lock is taken at BEGIN), so no agent ever gets two calls.

Lock order (app/calls/legs.py): a step holds its call's row and its live
legs' agents, by id, before it frees or connects any of them. Reserving
comes later and may need an agent that is not in that order, so it never
waits for one: an agent row another transaction holds (reserving, freeing,
changing presence) is skipped for the next candidate. The agent is taken
once that transaction commits: freed, it is offered the waiting calls
(routing.offer_waiting_calls).
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import select, update

from app.events import record_event
from app.models import Activity, Agent, Call, Presence, utcnow
from app.telephony.context import Telephony


def free_agents(session, skill: str, exclude: Iterable[int] = ()) -> list[int]:
    """The ids of available idle agents with SKILL, longest idle first (a look: nothing is reserved)."""
    excluded = set(exclude)
    candidates = session.execute(
        select(Agent.id, Agent.skills)
        .where(Agent.presence == Presence.AVAILABLE, Agent.activity == Activity.IDLE)
        .order_by(Agent.last_call_ended_at.asc().nulls_first(), Agent.id)
    ).all()
    return [agent_id for agent_id, skills in candidates if agent_id not in excluded and skill in (skills or [])]


def reserve_agent(session, skill: str, exclude: Iterable[int] = ()) -> Agent | None:
    """Reserve (idle -> ringing) the longest-idle available agent with SKILL; None if nobody is free."""
    for agent_id in free_agents(session, skill, exclude):
        # SKIP LOCKED: no wait on another transaction's agent row, so no
        # deadlock through it (PostgreSQL; SQLite ignores it and needs none).
        held = session.scalar(
            select(Agent.id).where(Agent.id == agent_id).with_for_update(key_share=True, skip_locked=True)
        )
        if held is None:
            continue
        won = session.execute(
            update(Agent)
            .where(Agent.id == agent_id, Agent.activity == Activity.IDLE, Agent.presence == Presence.AVAILABLE)
            .values(activity=Activity.RINGING)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            agent = session.get(Agent, agent_id)
            session.refresh(agent)
            return agent
    return None


def release_agent(t: Telephony, agent: Agent | None, *, missed: bool = False, call: Call | None = None,
                  until_twilio_confirms: bool = False) -> None:
    """Make an agent idle again; a missed call counts towards being set away.

    UNTIL_TWILIO_CONFIRMS: their phone leg is over for the service, but
    Twilio still carries it (a goodbye playing, a cancel on its way); they
    are LEAVING, offered nothing, until the leg's final status callback (or
    the reconciler) says it is over (app/calls/reactions.leg_confirmed_over).
    """
    if agent is None:
        return
    agent.last_call_ended_at = utcnow()
    if until_twilio_confirms:
        agent.activity = Activity.LEAVING
        t.freed_agent_ids.discard(agent.id)
    else:
        agent.activity = Activity.IDLE
        t.freed_agent_ids.add(agent.id)
    if not missed:
        return
    agent.missed_in_row += 1
    limit = t.settings.missed_calls_before_away
    if limit and agent.missed_in_row >= limit and agent.presence == Presence.AVAILABLE:
        agent.presence = Presence.AWAY
        record_event(t.session, call, "agent_set_away", agent=agent.extension, missed_in_row=agent.missed_in_row)
