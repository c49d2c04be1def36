"""A step on calls outside a web request (the reconciler), and what follows every step's commit.

A web request's step commits once in app/db.py and then runs `follow_up`
(app/telephony/web.py). A background job does the same with `job_step`:
one session and one commit per step, then the effects it recorded, then the
calls and agents it freed are offered, then those effects.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from sqlalchemy.orm import sessionmaker

from app.routing.service import offer_waiting_calls
from app.telephony.context import Telephony
from app.telephony.effects import carry_out
from app.telephony.urls import WebhookUrls
from config import Settings

if TYPE_CHECKING:
    from app.gateways.registry import Gateways


def follow_up(t: Telephony) -> None:
    """After a step committed: Twilio and LiveKit follow it, then freed agents and requeued calls are offered."""
    # The effects run in the order the step recorded them (redirects,
    # hang-ups, rooms closed). Offering records effects of its own.
    carry_out(t)
    if t.freed_agent_ids or t.requeued_call_ids:
        offer_waiting_calls(t)
        t.session.flush()
        carry_out(t)


@dataclass(frozen=True)
class JobTools:
    """What a background job needs to build a Telephony for each of its steps."""

    make_session: sessionmaker
    settings: Settings
    outside: "Gateways"
    summarise_later: Callable[[int], None]


@contextmanager
def job_step(tools: JobTools) -> Iterator[Telephony]:
    """One step of a background job: its own session, committed once, then followed up (effects, offers)."""
    with tools.make_session() as session:
        t = Telephony(
            session=session,
            settings=tools.settings,
            urls=WebhookUrls(tools.settings.public_base_url),
            twilio_gateway=tools.outside.twilio,
            livekit_gateway=tools.outside.livekit,
            llm_gateway=tools.outside.llm,
            summarise_later=tools.summarise_later,
        )
        with session.begin():  # committed here, rolled back if the step raises
            yield t
        with session.begin():  # what Twilio and LiveKit did, and the offers it led to
            follow_up(t)
