"""Whether an agent can take a call: reserving one (idle -> ringing) and making one idle again.

An agent is reserved by a compare-and-set UPDATE (idle -> ringing) that only
one transaction can win, on PostgreSQL (row lock) and on SQLite (whose write
lock is taken at BEGIN), so no agent ever gets two calls.

Lock order (app/primitives/legs.py): a step holds its call's row and its live
legs' agents, by id, before it frees or connects any of them. Reserving
comes later and may need an agent that is not in that order, so it never
waits for one: an agent row another transaction holds (reserving, freeing,
changing presence) is skipped for the next candidate. The agent is taken
once that transaction commits: freed, it is offered the waiting calls
(routing.offer_waiting_calls).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Iterable

from sqlalchemy import select

from app.actors import Actor, by_detail
from app.events import record_event
from app.models import Activity, Agent, Call, Leg, Presence, utcnow
from app.primitives.context import Telephony
from app.states.agents import move_activity, set_presence, take_if_idle


def free_agents(session, skill: str, exclude: Iterable[int] = ()) -> list[int]:
    """The ids of available idle agents with SKILL, longest idle first (a look: nothing is reserved)."""
    excluded = set(exclude)
    return [agent_id for agent_id, skills in _free(session) if agent_id not in excluded and skill in skills]


def free_agent_skills(session, skill: str) -> list[list[str]]:
    """The skills of each available idle agent with SKILL (a look: nothing is reserved)."""
    return [skills for _agent_id, skills in _free(session) if skill in skills]


def _free(session) -> list[tuple[int, list[str]]]:
    candidates = session.execute(
        select(Agent.id, Agent.skills)
        .where(Agent.presence == Presence.AVAILABLE, Agent.activity == Activity.IDLE)
        .order_by(Agent.last_call_ended_at.asc().nulls_first(), Agent.id)
    ).all()
    return [(agent_id, skills or []) for agent_id, skills in candidates]


def staffed_agents(session, skill: str, exclude: Iterable[int] = ()) -> list[int]:
    """The ids of available agents with SKILL, busy or not (a look): who could take a call waiting for SKILL."""
    excluded = set(exclude)
    candidates = session.execute(select(Agent.id, Agent.skills).where(Agent.presence == Presence.AVAILABLE)).all()
    return [agent_id for agent_id, skills in candidates if agent_id not in excluded and skill in (skills or [])]


def reserve_agent(session, *, skill: str | None = None, agent_id: int | None = None,
                  exclude: Iterable[int] = ()) -> Agent | None:
    """Reserve (idle -> ringing) the agent AGENT_ID, or the longest-idle available agent with SKILL; None if
    nobody is free.

    The one reservation, for a call's next agent and a transfer's named or
    queue target alike: each candidate is taken by states.agents.take_if_idle
    (SKIP LOCKED, then a compare-and-set), so it never waits for another
    transaction's agent row and no agent is reserved twice.
    """
    if agent_id is not None:
        candidates = [] if agent_id in set(exclude) else [agent_id]
    elif skill is not None:
        candidates = free_agents(session, skill, exclude)
    else:
        raise ValueError("reserve_agent needs a skill or an agent")
    for candidate in candidates:
        agent = take_if_idle(session, candidate)
        if agent is not None:
            return agent
    return None


def lock_agent(session, agent_id: int) -> Agent | None:
    """The agent's row locked (FOR NO KEY UPDATE) and read again into the session's Agent; None if removed. For a
    decision about an agent read earlier without the lock: a step may have reserved them since (reservations skip
    a locked agent, so none can while this transaction holds them)."""
    return session.get(Agent, agent_id, with_for_update={"key_share": True}, populate_existing=True)


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
        move_activity(agent, Activity.LEAVING)
        t.freed_agent_ids.discard(agent.id)
    elif agent.wrap_up_until is not None and agent.wrap_up_until > utcnow():
        move_activity(agent, Activity.WRAP_UP)  # offered nothing until end_wrap_up
        t.freed_agent_ids.discard(agent.id)
    else:
        agent.wrap_up_until = None
        move_activity(agent, Activity.IDLE)
        t.freed_agent_ids.add(agent.id)
    if not missed:
        return
    agent.missed_in_row += 1
    limit = t.settings.missed_calls_before_away
    if limit and agent.missed_in_row >= limit and agent.presence == Presence.AVAILABLE:
        set_presence(t.session, agent, Presence.AWAY, call=call, event="agent_set_away",
                     missed_in_row=agent.missed_in_row)


def owe_wrap_up(t: Telephony, agent: Agent | None, call: Call) -> None:
    """A call AGENT talked on is over for them: with WRAP_UP_SECONDS on, after-call work until then (the agent
    goes to wrap-up instead of idle once their leg is over; release_agent)."""
    seconds = (call.queue.setting("wrap_up_seconds", t.settings.wrap_up_seconds) if call.queue
               else t.settings.wrap_up_seconds)
    if agent is None or seconds <= 0:
        return
    agent.wrap_up_until = utcnow() + timedelta(seconds=seconds)
    record_event(t.session, call, "wrap_up_started", agent=agent.extension, seconds=seconds)


def end_wrap_up(t: Telephony, agent: Agent, why: str, *, by: Actor | None = None, **detail) -> bool:
    """End the agent's after-call work (its time is up, or they or a supervisor say they are ready): idle, and
    offered the waiting transfers and callers once the step commits; False if they were not in wrap-up. BY is
    who asked (none when its time is up), the timeline's `by`.

    The agent's row is locked and read again first: AGENT may have been read without it (a console's Ready,
    the board's button, a returning caller), and a step meanwhile may have ended the wrap-up and rung them for
    a caller; writing idle over that would offer them a second caller while the first rings.
    """
    agent = lock_agent(t.session, agent.id)
    if agent is None:  # removed from the roster meanwhile
        return False
    if agent.activity == Activity.LEAVING and agent.wrap_up_until is not None:
        # Still on the phone (their keys at the end of the call): ready, and idle once Twilio says the leg is
        # over (reactions.leg_confirmed_over), with no after-call work left.
        agent.wrap_up_until = None
    elif agent.activity != Activity.WRAP_UP:
        agent.wrap_up_until = None
        return False
    else:
        agent.wrap_up_until = None
        move_activity(agent, Activity.IDLE)
        t.freed_agent_ids.add(agent.id)
    last_call = t.session.scalar(select(Call).join(Leg, Leg.call_id == Call.id).where(Leg.agent_id == agent.id)
                                 .order_by(Leg.id.desc()).limit(1))
    record_event(t.session, last_call, "wrap_up_ended", agent=agent.extension, why=why, **by_detail(by), **detail)
    return True


def in_after_call_work(agent: Agent | None) -> bool:
    """Whether AGENT owes after-call work now (in wrap-up, or about to be once their phone leg is over)."""
    return (agent is not None and agent.wrap_up_until is not None and agent.wrap_up_until > utcnow()
            and agent.activity in (Activity.WRAP_UP, Activity.LEAVING))


def end_due_wrap_ups(t: Telephony) -> int:
    """Every agent whose after-call work is over by now goes idle (the timer's job, and each queue turn)."""
    due = t.session.scalars(
        select(Agent).where(Agent.activity == Activity.WRAP_UP, Agent.wrap_up_until <= utcnow())
        .order_by(Agent.id).with_for_update(skip_locked=True)
    ).all()
    return sum(1 for agent in due if end_wrap_up(t, agent, "time"))
