"""A step on calls outside a web request (the reconciler), and what follows every step's commit.

A web request's step commits once in app/db.py and then runs `follow_up`
(app/web/unit_of_work.py). A background job does the same with `job_step`:
one session and one commit per step, then the effects it recorded, then the
calls and agents it freed are offered, then those effects.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from sqlalchemy.orm import sessionmaker

from app.calls.callbacks import offer_due_callbacks
from app.calls.reactions import dial_refused
from app.logs import get_logger
from app.primitives.context import Telephony
from app.primitives.effects import carry_out
from app.primitives.legs import lock_leg
from app.routing.service import offer_waiting_calls
from app.telephony.urls import WebhookUrls
from app.transfers.service import offer_waiting_transfers
from config import Settings

if TYPE_CHECKING:
    from app.gateways.registry import Gateways

log = get_logger("switchboard.steps")


# Rounds of effects and reactions one step's follow-up runs at most: each
# round's effects come from the one before (a refused dial rings the next
# agent), and the dial budget ends them long before this.
MAX_FOLLOW_UP_ROUNDS = 5


def follow_up(t: Telephony) -> bool:
    """After a step committed: Twilio and LiveKit follow it; dials Twilio refused are reacted to; freed agents
    and requeued calls are offered; and so on while that records more effects. False when a webhook's time
    budget ran out first: what is left (effects, offers) is the caller's to finish once its answer has gone.

    The effects run in the order the step recorded them (redirects, dials,
    hang-ups, rooms closed). A refused dial is a failed call (the next agent,
    or the transfer's next target), and offering rings agents: both record
    effects of their own, carried out in the next round. Each dial spends
    the request's budget (Telephony.dials_left), so the rounds end.
    """
    for _ in range(MAX_FOLLOW_UP_ROUNDS):
        carry_out(t)
        if t.out_of_time:
            return False
        refused, t.refused_dials = t.refused_dials, []
        for leg_id, error in refused:
            leg = lock_leg(t, leg_id)
            if leg is not None:
                dial_refused(t, leg, error)
        if t.freed_agent_ids:
            offer_waiting_transfers(t)  # transfers waiting at a queue go before its callers
        if t.freed_agent_ids or t.callbacks_due:
            offer_due_callbacks(t)  # a callback asked for before a caller queued goes before them
        if t.freed_agent_ids or t.requeued_call_ids:
            offer_waiting_calls(t)
        t.session.flush()
        if not len(t.effects):
            return True
    # Left in the outbox: the reconciler carries them out (app/jobs/reconciler.py).
    log.warning("follow_up_rounds_exhausted", effects_left=len(t.effects))
    return True


@dataclass(frozen=True)
class JobTools:
    """What a background job needs to build a Telephony for each of its steps."""

    make_session: sessionmaker
    settings: Settings
    outside: "Gateways"
    summarise_later: Callable[[int], None]
    deliver_later: Callable[[int, int | None], None]


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
            summarise_later=tools.summarise_later,
        )
        try:
            yield t
            session.commit()
        except BaseException:
            session.rollback()
            raise
        follow_up(t)  # what Twilio and LiveKit did, and the offers it led to
        session.commit()
