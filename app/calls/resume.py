"""Dropped-caller resume: a caller cut off who calls straight back skips the IVR and goes back where they were.

A caller whose call ended while they were with an agent (connected, on hold,
in a transfer) or waiting in a queue, and who calls again from the same
number within RESUME_WINDOW_SECONDS, is not asked again why they call: the
new call takes the old one's queue, reason and place in line (its queued
time), and is offered first to the agent who had them, who hears that this
caller was cut off and how long ago. If that agent is not free (on another
call, away, gone), the caller waits in their old place for the next agent
with the skill. An agent still in after-call work for the dropped call is
taken out of it for this.

Twilio does not say whether a caller hung up or was cut off, so any end of
an answered or waiting call counts: a caller who hung up on purpose and
calls back at once reaches the agent they spoke to, which is what
"sticky agent" routing does on purpose.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from app.calls.service import enqueue_call
from app.events import record_event
from app.models import Activity, Call, CallStatus, Event, utcnow
from app.primitives.availability import end_wrap_up
from app.primitives.context import Telephony

# What the caller was doing when the call ended, for it to be taken up again (the `was` of `call_ended`).
WITH_AN_AGENT = frozenset({CallStatus.CONNECTED, CallStatus.ON_HOLD})
IN_LINE = frozenset({CallStatus.QUEUED, CallStatus.RINGING_AGENT})


_HOW_IT_ENDED = (select(Event).where(Event.call_id == bindparam("call"), Event.name == "call_ended")
                 .order_by(Event.id.desc()).limit(1))


def dropped_call(t: Telephony, last_call_id: int | None) -> tuple[Call, str] | None:
    """The caller's last call, LAST_CALL_ID (within RESUME_WINDOW_SECONDS, asked when the new call was recorded:
    service.receive_call), with what they were doing when it ended, if they were cut off from it with an agent or
    in line; None otherwise."""
    if last_call_id is None:
        return None
    earlier = t.session.get(Call, last_call_id)
    ended = t.session.scalar(_HOW_IT_ENDED, {"call": earlier.id})
    was = (ended.detail or {}).get("was") if ended is not None else None
    return (earlier, was) if was in WITH_AN_AGENT | IN_LINE else None


def resume(t: Telephony, call: Call, last_call_id: int | None) -> bool:
    """Take CALL (just arrived, in the IVR) back to where its caller was cut off from LAST_CALL_ID, their last call
    (service.receive_call); False when it is a new call."""
    dropped = dropped_call(t, last_call_id) if call.status == CallStatus.IVR else None
    if dropped is None:
        return False
    earlier, was = dropped
    agent = earlier.agent if was in WITH_AN_AGENT else None
    call.queue_id = earlier.queue_id
    call.ivr_reason = earlier.ivr_reason
    call.resumed_from_call_id = earlier.id
    call.resume_agent_id = agent.id if agent is not None else None
    t.session.flush()
    t.session.refresh(call)
    seconds = int((utcnow() - earlier.ended_at).total_seconds())
    record_event(t.session, earlier, "caller_called_back", call_sid=call.call_sid, after_seconds=seconds)
    record_event(t.session, call, "caller_resumed", from_call_sid=earlier.call_sid, was=was,
                 cut_off_seconds_ago=seconds, agent=agent.extension if agent is not None else None)
    if agent is not None and agent.activity == Activity.WRAP_UP:
        end_wrap_up(t, agent, "caller_resumed")  # their after-call work was for this very caller
    # Their old place in line: the time they first queued.
    enqueue_call(t, call, since=earlier.queued_at)
    return True
