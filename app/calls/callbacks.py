"""Offering callbacks: each due callback, in its place in line, goes to a free agent with its queue's skill.

Run after every step that freed an agent or put a callback back in line
(jobs/steps.follow_up), and by a timer (the `offer_callbacks` job), which
finds the retries that fell due while every agent stayed idle. A caller who
queued before the callback was asked for goes first; a waiting transfer goes
before both (it is offered earlier in the follow-up). A callback whose queue
is closed (its business hours, app/hours.py) waits until it opens.
"""

from __future__ import annotations

from app.calls import outbound
from app.logs import get_logger
from app.models import Callback, CallbackState, utcnow
from app.primitives.availability import reserve_agent
from app.primitives.context import Telephony
from app.routing.callbacks import (
    agents_to_skip,
    caller_ahead_of,
    due_callbacks,
    give_up,
)

log = get_logger("switchboard.callbacks")


def offer_due_callbacks(t: Telephony) -> int:
    """Offer each due callback to a free agent of its queue's skill, oldest place first; returns how many."""
    t.callbacks_due = False
    offered = 0
    now = utcnow()
    for callback in due_callbacks(t.session, now):
        if t.dials_left <= 0:
            t.callbacks_due = True  # past this step's dial budget: the next step or the timer goes on
            break
        # Another worker offering the same callback holds its row: skip it, never wait.
        locked = t.session.get(Callback, callback.id, populate_existing=True,
                               with_for_update={"skip_locked": True})
        if locked is None or locked.state != CallbackState.PENDING:
            continue
        if callback.queue is None:
            give_up(t, callback, "queue_gone")
            continue
        if not callback.queue.opening_hours(t.settings.centre_timezone).is_open(now):
            continue  # asked for after hours, or the queue closed since: it waits for the queue to open
        try:
            customer = outbound.callback_number(t, callback)
        except outbound.OutboundRefused as refusal:
            # The allow-list changed since it was asked for: nobody rings, the callback fails in words.
            log.warning("callback_not_dialled", callback_id=callback.id, reason=str(refusal))
            give_up(t, callback, "number_not_allowed", error=str(refusal))
            continue
        if caller_ahead_of(t.session, callback):
            continue
        agent = reserve_agent(t.session, skill=callback.queue.skill, exclude=agents_to_skip(t.session, callback, now))
        if agent is None:
            continue
        outbound.place_callback(t, callback, agent, customer)
        offered += 1
    return offered
