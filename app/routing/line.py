"""A queue's line as a caller hears it: their place, and how long callers there have waited lately.

Never a guess: the place counts the transfers waiting at the queue (they go
first) and the callers queued there before this one; the wait is the median
of what this queue's callers answered in the last RECENT_WINDOW waited, said
only once there are MIN_SAMPLES of them. Otherwise the caller hears
nothing about the wait.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.database import count_ahead
from app.models import Call, CallStatus, Transfer, TransferState
from app.states.transfers import waiting_transfers

# How far back the answered calls that make the recent wait go.
RECENT_WINDOW = timedelta(hours=1)
# How many answered calls it takes before a wait is said.
MIN_SAMPLES = 3


def place_in_queue(session: Session, call: Call) -> int | None:
    """A queued caller's place at their queue (1: next); None when they are not queued."""
    if call.status != CallStatus.QUEUED or call.queue is None or call.queued_at is None:
        return None
    ahead = count_ahead(session, (Call.queued_at, Call.id), (call.queued_at, call.id),
                        Call.status == CallStatus.QUEUED, Call.queue_id == call.queue_id)
    return ahead + len(waiting_transfers(session, [call.queue.skill])) + 1


def waiting_now(session: Session, queue_id: int) -> int:
    """How many wait at the queue now: its callers queued there, and the transfers waiting for it."""
    callers = session.scalar(select(func.count()).select_from(Call).where(
        Call.status == CallStatus.QUEUED, Call.queue_id == queue_id))
    transfers = session.scalar(select(func.count()).select_from(Transfer).where(
        Transfer.state == TransferState.WAITING, Transfer.target_queue_id == queue_id))
    return callers + transfers


def recent_wait(session: Session, queue_id: int, now: datetime) -> timedelta | None:
    """The median wait of the queue's callers answered within RECENT_WINDOW; None with fewer than MIN_SAMPLES."""
    rows = session.execute(
        select(Call.queued_at, Call.answered_at).where(
            Call.queue_id == queue_id,
            Call.answered_at.is_not(None),
            Call.queued_at.is_not(None),
            Call.answered_at >= now - RECENT_WINDOW,
        )
    ).all()
    waits = [(answered - queued).total_seconds() for queued, answered in rows if answered >= queued]
    if len(waits) < MIN_SAMPLES:
        return None
    return timedelta(seconds=median(waits))


def wait_words(wait: timedelta | None) -> str | None:
    """A recent wait as said to a caller ("about 3 minutes", "under a minute"); None when not known."""
    if wait is None:
        return None
    minutes = round(wait.total_seconds() / 60)
    if minutes < 1:
        return "under a minute"
    return "about 1 minute" if minutes == 1 else f"about {minutes} minutes"
