"""What the agent console needs to know about an agent's current call."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import FINAL_LEG_STATUSES, Agent, Leg, LegRole


@dataclass(frozen=True)
class AgentPlace:
    """The room an agent is in (or meant to be in) right now."""

    extension: str
    agent_name: str
    room: str
    call_sid: str


def current_room(session: Session, agent_id: int | None) -> AgentPlace | None:
    """The room of the agent's live leg on a live call, if any."""
    if agent_id is None:
        return None
    leg = session.scalar(
        select(Leg)
        .where(Leg.agent_id == agent_id, Leg.role.in_((LegRole.AGENT, LegRole.TARGET)),
               Leg.status.not_in(FINAL_LEG_STATUSES), Leg.room_name.is_not(None))
        .order_by(Leg.id.desc())
    )
    if leg is None or leg.call.is_final:
        return None
    agent = session.get(Agent, agent_id)
    return AgentPlace(agent.extension, agent.name, leg.room_name, leg.call.call_sid)
