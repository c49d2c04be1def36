"""The queues' figures, for the board, the wallboard and the API: each queue's line now and its day so far, and
how long each live call has spent in the IVR, waiting, talking and on hold.

Read in one place with aggregate queries: the day's figures are one grouped query over the calls that arrived
today (the index on the calls' start), each call's first moment in a queue kept on the call (`first_queued_at`,
written with its first `call_queued` event); the line now is one grouped query over the waiting calls (the index
on the calls' status).

The definitions (the README's "Queue figures" says the same):

- *Today* is the centre's day in CENTRE_TIMEZONE, from its midnight: the day's figures count the inbound calls
  that *arrived* today, at the queue they are at now (the one the IVR chose, or the one they overflowed to).
- *Waiting now*: callers in the queue's line (queued, or an agent's phone ringing for them).
- *Longest wait now*: since when the first of them has held their place in line (their queued_at: a caller
  cut off who called back keeps the place they had).
- *Answered*: calls an agent answered (accepted at the whisper), however they ended.
- *Abandoned*: callers who hung up after joining the queue, never answered.
- *Voicemail*, *callbacks*: calls that ended with a message left, or a callback asked for, never answered
  (after waiting, or at a closed queue).
- *Answer time* of an answered call: from when it first joined a queue (its first call_queued) to when an
  agent first answered it; the *average answer time* is their mean.
- *Service level*: answered within SERVICE_LEVEL_SECONDS of first joining a queue, divided by those calls plus
  the callers who left the queue unanswered (abandoned, voicemail or a callback) after waiting longer than that.
  Callers who left sooner, and voicemails and callbacks from a closed queue, count on neither side. None when
  no call counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Subquery, and_, case, func, select
from sqlalchemy.orm import Session

from app.models import Call, CallDirection, CallStatus, Event, Queue

# The caller is in a queue's line: waiting, or an agent's phone ringing for them.
WAITING = (CallStatus.QUEUED, CallStatus.RINGING_AGENT)
# How a caller who joined a queue can leave it unanswered.
LEFT_UNANSWERED = (CallStatus.ABANDONED, CallStatus.VOICEMAIL, CallStatus.CALLBACK_REQUESTED)
# A queue no call arrived at today: no counts, and no average.
NO_CALLS = (0, 0, 0, 0, None, 0, 0)

# The four times of a live call, and the timeline events that start each (None: a stretch none of them
# counts, such as hearing that the queue is closed). Every inbound call starts in the IVR; an outbound call
# starts dialling, which counts as none of them.
IVR, QUEUE, TALK, HOLD = "ivr", "queue", "talk", "hold"
PHASES = (IVR, QUEUE, TALK, HOLD)
PHASE_EVENTS = {
    "call_queued": QUEUE,
    "call_requeued": QUEUE,
    "agent_accepted": TALK,
    "customer_answered": TALK,
    "caller_off_hold": TALK,
    "caller_on_hold": HOLD,
    "queue_closed": None,
}


@dataclass(frozen=True)
class QueueFigures:
    """One queue's line now and its day so far."""

    queue: str
    waiting: int
    longest_waiting_since: datetime | None
    answered: int
    abandoned: int
    voicemail: int
    callbacks: int
    average_answer_seconds: int | None
    answered_within: int
    service_level_calls: int
    service_level_seconds: int

    @property
    def service_level(self) -> int | None:
        """The service level in whole percent, or None when no call counts."""
        if not self.service_level_calls:
            return None
        return round(100 * self.answered_within / self.service_level_calls)

    def longest_wait_seconds(self, now: datetime) -> int | None:
        """How long the first caller in line has waited at NOW, or None when nobody waits."""
        if self.longest_waiting_since is None:
            return None
        return max(0, int((now - self.longest_waiting_since).total_seconds()))


def centre_day(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """Today in the centre's time zone ZONE, as NOW falls: from its midnight to the next, in UTC."""
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def _seconds_between(session: Session, start, end):
    """The SQL for the seconds from START to END (two timestamp columns)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def queue_figures(session: Session, *, zone: str, threshold_seconds: int, now: datetime,
                  queue: str | None = None) -> list[QueueFigures]:
    """Every queue's figures (only QUEUE's, when named), by name."""
    queues = select(Queue.id, Queue.name).order_by(Queue.name)
    if queue is not None:
        queues = queues.where(Queue.name == queue)
    names = dict(session.execute(queues).all())
    if not names:
        return []
    waiting = {
        queue_id: (count, since)
        for queue_id, count, since in session.execute(
            select(Call.queue_id, func.count(), func.min(Call.queued_at))
            .where(Call.status.in_(WAITING), Call.queue_id.in_(list(names)))
            .group_by(Call.queue_id))
    }
    day = _today(session, names, *centre_day(now, zone), threshold_seconds)
    figures = []
    for queue_id, name in names.items():
        count, since = waiting.get(queue_id, (0, None))
        answered, abandoned, voicemail, callbacks, average, within, counted = day.get(queue_id, NO_CALLS)
        figures.append(QueueFigures(
            queue=name, waiting=count, longest_waiting_since=since, answered=int(answered or 0),
            abandoned=int(abandoned or 0), voicemail=int(voicemail or 0), callbacks=int(callbacks or 0),
            average_answer_seconds=round(average) if average is not None else None,
            answered_within=int(within or 0), service_level_calls=int(counted or 0),
            service_level_seconds=threshold_seconds))
    return figures


def _today(session: Session, names: dict[int, str], start: datetime, end: datetime, threshold: int) -> dict:
    """Per queue id: answered, abandoned, voicemail, callbacks, average answer seconds, answered within the
    threshold, and the calls the service level counts; of the inbound calls that arrived from START to END."""
    # When each call first joined a queue is kept on the call (migration 0028): no timeline is read.
    calls = (select(Call.queue_id, Call.status, Call.answered_at, Call.ended_at,
                    Call.first_queued_at.label("queued_at"))
             .where(Call.created_at >= start, Call.created_at < end, Call.direction == CallDirection.INBOUND,
                    Call.queue_id.in_(list(names)))
             .subquery())
    answered = calls.c.answered_at.is_not(None)
    unanswered = calls.c.answered_at.is_(None)
    queued = calls.c.queued_at.is_not(None)
    answer_seconds = _seconds_between(session, calls.c.queued_at, calls.c.answered_at)
    # Compared in whole seconds: SQLite's day fractions are not exact, and a call answered on the threshold's
    # second is within it.
    left_after = func.round(_seconds_between(session, calls.c.queued_at, calls.c.ended_at))

    def counted(condition):
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(
            calls.c.queue_id,
            counted(answered),
            counted(and_(unanswered, queued, calls.c.status == CallStatus.ABANDONED)),
            counted(and_(unanswered, calls.c.status == CallStatus.VOICEMAIL)),
            counted(and_(unanswered, calls.c.status == CallStatus.CALLBACK_REQUESTED)),
            func.avg(case((and_(answered, queued), answer_seconds))),
            counted(and_(answered, queued, func.round(answer_seconds) <= threshold)),
            counted(and_(answered, queued))
            + counted(and_(unanswered, queued, calls.c.status.in_(LEFT_UNANSWERED), left_after > threshold)),
        ).group_by(calls.c.queue_id))
    return {row[0]: tuple(row[1:]) for row in rows}


@dataclass(frozen=True)
class CallTimes:
    """A live call's time so far in each phase, the stretch it is in now left out: that one is PHASE's,
    counting from PHASE_SINCE (None: a stretch no phase counts)."""

    seconds: dict[str, int]
    phase: str | None
    phase_since: datetime

    def at(self, now: datetime) -> dict[str, int]:
        """Each phase's whole seconds at NOW, the current stretch included."""
        totals = dict(self.seconds)
        if self.phase is not None:
            totals[self.phase] += max(0, int((now - self.phase_since).total_seconds()))
        return totals


def live_call_times(session: Session, calls: list, ids: Subquery) -> dict[int, CallTimes]:
    """Each of CALLS' times, by call id, from their timelines (one query for all of them, which finds their
    events by IDS: the query that gave CALLS, as a subquery of their ids). A call of CALLS is anything with the
    call's `id`, `direction` and `created_at`: a Call, or a row of those columns.

    IDS is asked again by this statement, which may see a caller who arrived since CALLS were read (each
    statement sees the database as it is when it starts): the events of a call not among CALLS are passed over.
    A call of CALLS that IDS no longer holds (pushed past the list's end) has its times from its start alone,
    until the next read.

    IVR: from the call's start until it first joins a queue (or hears its queue is closed). Queue: from
    joining a queue (again, after a transfer or an agent lost) until an agent answers. Talk: connected to an
    agent, off hold. Hold: on hold during a transfer, until taken off hold or back to the queue.
    """
    stretches: dict[int, list[tuple[str, datetime]]] = {call.id: [] for call in calls}
    if calls:
        events = session.execute(
            select(Event.call_id, Event.name, Event.created_at)
            .where(Event.call_id.in_(select(ids.c.id)), Event.name.in_(tuple(PHASE_EVENTS)))
            .order_by(Event.id))
        for call_id, name, at in events:
            if call_id in stretches:
                stretches[call_id].append((name, at))
    return {call.id: _times(call, stretches[call.id]) for call in calls}


def _times(call, events: list[tuple[str, datetime]]) -> CallTimes:
    totals = dict.fromkeys(PHASES, 0.0)
    phase, since = (None if call.direction == CallDirection.OUTBOUND else IVR), call.created_at
    for name, at in events:
        if phase is not None:
            totals[phase] += max(0.0, (at - since).total_seconds())
        phase, since = PHASE_EVENTS[name], at
    return CallTimes({name: int(seconds) for name, seconds in totals.items()}, phase, since)
