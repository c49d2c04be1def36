"""What the supervisor pages show, read from the database: the live board and one call's page.

Everything here returns plain dicts and lists of JSON-ready values, so the
same data renders the page on the server and refreshes it in the browser
through server-sent events.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import bindparam, exists, func, or_, select
from sqlalchemy.orm import Session, joinedload

from app.agents.service import SUPERVISOR_PRESENCES
from app.calls.figures import QueueFigures, live_call_times, queue_figures
from app.clock import utcnow
from app.events import shown_detail
from app.kinds import SummarySource
from app.models import (
    LIVE_CALL_STATUSES,
    LIVE_LEG_STATUSES,
    LIVE_TRANSFER_STATES,
    Agent,
    Call,
    CallStatus,
    Event,
    Leg,
    Queue,
    Transfer,
    Utterance,
    caller_shown,
)
from app.primitives.availability import free_agents
from app.summaries.compose import SUMMARY_FIELDS
from app.transfers.actions import possible_actions
from app.transfers.outside import is_sip_uri
from app.transfers.service import TransferRefused, find_target
from app.transfers.summary import stored_summary


def label(value: str | None) -> str:
    """A state or event name as words: 'ringing_agent' -> 'ringing agent'."""
    return (value or "").replace("_", " ")


def call_href(call_sid: str) -> str:
    """The address of a call's page."""
    return f"/calls/{call_sid}"


def voicemail_audio_href(call_sid: str) -> str:
    """The service's own address of a call's voicemail audio (the recording's at Twilio is never shown)."""
    return f"/voicemails/{call_sid}/audio"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment else ""


def _utc_clock(moment: datetime | None) -> str | None:
    """The hour and minute in UTC, labelled: what a page shows until its script shows the viewer's own time."""
    return moment.astimezone(timezone.utc).strftime("%H:%M UTC") if moment else None


def _agent_name(agent: Agent | None) -> str | None:
    return f"{agent.name} ({agent.extension})" if agent else None


def _target_name(transfer: Transfer) -> str:
    if transfer.target_agent is not None:
        return _agent_name(transfer.target_agent)
    if transfer.target_queue is not None:
        return f"{transfer.target_queue.name} queue"
    if transfer.target_number:
        # An outside number is the company's contact, not caller data: shown as dialled.
        return f"outside {transfer.target_number}"
    return "not chosen yet"


def digest(data: dict) -> str:
    """A short fingerprint of page data, to tell whether anything a viewer sees has changed."""
    encoded = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def board_cursor(session: Session) -> str:
    """The newest event id: every step of every call writes one, so it moves whenever a call changes."""
    return str(session.scalar(select(func.max(Event.id))) or 0)


def _live(queue: Queue | None):
    live = Call.status.in_(LIVE_CALL_STATUSES)
    return (live, Call.queue_id == queue.id) if queue is not None else (live,)


_calls = Call.__table__.c
# What the board lists of each call: its own columns, its queue's and its agent's names (rows, not objects).
_LISTED = (select(_calls.id, _calls.call_sid, _calls.direction, _calls.from_number, _calls.to_number, _calls.status,
                  _calls.created_at, Queue.name.label("queue"), Agent.name.label("agent_name"),
                  Agent.extension.label("agent_extension"))
           .select_from(Call).outerjoin(Queue, Queue.id == _calls.queue_id)
           .outerjoin(Agent, Agent.id == _calls.agent_id))
_transfers = Transfer.__table__.c


def live_calls(session: Session, queue: Queue | None = None, limit: int | None = None) -> list[dict]:
    """Calls not yet over (only QUEUE's, when given), oldest first, at most LIMIT: caller, queue, agent, state,
    start time, and their IVR, queue, talk and hold times (figures.live_call_times)."""
    # Rows of the columns shown, not ORM objects: a board read lists up to BOARD_CALLS_SHOWN calls twice a second,
    # and making a Call (with its queue, agent and transfers) of each cost the read most of its CPU. Their open
    # transfers and timelines come in one more statement each, not one per call, each asking for "the calls of
    # this list" by the list's own query, not by an IN-list of their ids: its text stays the same from one read
    # to the next, so neither SQLAlchemy nor the database parses it anew.
    order = (Call.created_at, Call.id)
    calls = session.execute(_LISTED.where(*_live(queue)).order_by(*order).limit(limit)).all()
    shown = select(_calls.id).where(*_live(queue)).order_by(*order).limit(limit).subquery()
    times = live_call_times(session, calls, shown)
    transfer_states: dict[int, str] = {}
    if calls:
        for call_id, state in session.execute(
                select(_transfers.call_id, _transfers.state)
                .where(_transfers.call_id.in_(select(shown.c.id)), _transfers.state.in_(LIVE_TRANSFER_STATES))
                .order_by(_transfers.id)):
            transfer_states.setdefault(call_id, state)  # the oldest open one, as the call's page shows it
    rows = []
    for call in calls:
        transfer_state = transfer_states.get(call.id)
        rows.append(
            {
                "call_sid": call.call_sid,
                "href": call_href(call.call_sid),
                "caller": caller_shown(call.direction, call.from_number, call.to_number),
                "direction": call.direction,
                "queue": call.queue,
                "agent": f"{call.agent_name} ({call.agent_extension})" if call.agent_extension is not None else None,
                "state": call.status,
                "state_label": label(call.status),
                "transfer_state": transfer_state,
                "started_at": _iso(call.created_at),
                "transferable": call.status == CallStatus.CONNECTED and transfer_state is None,
                # Whole seconds before the stretch the call is in now, which counts from phase_since.
                "times": times[call.id].seconds,
                "phase": times[call.id].phase,
                "phase_since": _iso(times[call.id].phase_since),
            }
        )
    return rows


def agents(session: Session, queue: Queue | None = None) -> list[dict]:
    """Every agent (only those with QUEUE's skill, when given): presence and activity, each with since when, the
    call they are on, calls missed in a row."""
    live_legs = session.execute(
        select(Leg.agent_id, _calls.call_sid, _calls.direction, _calls.from_number, _calls.to_number)
        .join(Call, Leg.call_id == _calls.id)
        .where(Leg.agent_id.is_not(None), Leg.status.in_(LIVE_LEG_STATUSES))
        .order_by(Leg.id)
    ).all()
    current = {leg.agent_id: (leg.call_sid, caller_shown(leg.direction, leg.from_number, leg.to_number))
               for leg in live_legs}
    rows = []
    for agent in session.scalars(select(Agent).order_by(Agent.extension)):
        if queue is not None and queue.skill not in (agent.skills or ()):
            continue
        call_sid, caller = current.get(agent.id, (None, None))
        rows.append(
            {
                "name": agent.name,
                "extension": agent.extension,
                "presence": agent.presence,
                "presence_since": _iso(agent.presence_changed_at),
                "presence_since_utc": _utc_clock(agent.presence_changed_at),
                "activity": agent.activity,
                "activity_label": label(agent.activity),
                "activity_since": _iso(agent.activity_changed_at),
                # The presences a supervisor may set them to from the board, other than the one they have.
                "presence_choices": [p for p in SUPERVISOR_PRESENCES if p != agent.presence],
                "current_call": call_sid,
                "current_call_caller": caller or "unknown number",
                "current_call_href": call_href(call_sid) if call_sid else None,
                "missed_in_row": agent.missed_in_row,
            }
        )
    return rows


def transfers_under_way(session: Session, queue: Queue | None = None) -> list[dict]:
    """Transfers not yet finished (only those of QUEUE's calls or to QUEUE, when given), oldest first."""
    # Their calls and parties come joined in the same statement (one row per transfer), not one per transfer nor
    # by lists of ids; of each only what the board shows.
    query = (select(Transfer).where(Transfer.state.in_(LIVE_TRANSFER_STATES)).order_by(Transfer.id)
             .options(joinedload(Transfer.call).load_only(Call.call_sid),
                      joinedload(Transfer.from_agent).load_only(Agent.name, Agent.extension),
                      joinedload(Transfer.target_agent).load_only(Agent.name, Agent.extension),
                      joinedload(Transfer.target_queue).load_only(Queue.name)))
    if queue is not None:
        query = query.join(Call, Transfer.call_id == Call.id).where(
            or_(Call.queue_id == queue.id, Transfer.target_queue_id == queue.id))
    transfers = session.scalars(query)
    return [
        {
            "id": transfer.id,
            "call_sid": transfer.call.call_sid,
            "href": call_href(transfer.call.call_sid),
            "mode": transfer.mode,
            "trigger": transfer.trigger,
            "state": transfer.state,
            "state_label": label(transfer.state),
            "from_agent": _agent_name(transfer.from_agent),
            "target": _target_name(transfer),
            "started_at": _iso(transfer.created_at),
        }
        for transfer in transfers
    ]


class UnknownQueue(LookupError):
    """A filter names a queue that does not exist; the message says so in words."""


def queue_named(session: Session, name: str | None) -> Queue | None:
    """The queue a filter names, None for no filter ('' or None); UnknownQueue when there is no such queue."""
    if not name:
        return None
    queue = session.scalar(select(Queue).where(Queue.name == name[:64]))
    if queue is None:
        known = ", ".join(session.scalars(select(Queue.name).order_by(Queue.name))) or "none"
        raise UnknownQueue(f"there is no queue {name[:64]!r} (the queues: {known})")
    return queue


def figures_view(figures: QueueFigures) -> dict:
    """A queue's figures as the board and the wallboard draw them: the longest wait as a moment, which the
    page counts from, so the data changes only when the figures do."""
    return {
        "queue": figures.queue,
        "waiting": figures.waiting,
        "longest_waiting_since": _iso(figures.longest_waiting_since),
        "average_answer_seconds": figures.average_answer_seconds,
        "service_level": figures.service_level,
        "service_level_seconds": figures.service_level_seconds,
        "answered": figures.answered,
        "abandoned": figures.abandoned,
        "voicemail": figures.voicemail,
        "callbacks": figures.callbacks,
    }


def strip(session: Session, settings, queue: Queue | None = None) -> list[dict]:
    """The queue strip: every queue's figures (only QUEUE's, when given)."""
    figures = queue_figures(session, zone=settings.centre_timezone, threshold_seconds=settings.service_level_seconds,
                            now=utcnow(), queue=queue.name if queue is not None else None)
    return [figures_view(f) for f in figures]


def queue_choices(session: Session) -> list[str]:
    """The names of the queues, for the filter."""
    return list(session.scalars(select(Queue.name).order_by(Queue.name)))


def wallboard_snapshot(session: Session, settings, queue: Queue | None = None) -> dict:
    """Everything the wallboard shows: the queue strip."""
    return {"queues": strip(session, settings, queue), "queue_filter": queue.name if queue is not None else None}


def board_snapshot(session: Session, settings, queue: Queue | None = None) -> dict:
    """Everything the board shows (only QUEUE's calls, agents and transfers, when given)."""
    # BOARD_CALLS_SHOWN of them, the longest-running; past that the board says how many more there are. A floor of
    # thousands is followed by its figures, the queue filter and the call history: a list of every call would
    # cost every open board its whole size at each change (850 KB at 2,000 calls).
    shown = settings.board_calls_shown
    calls = live_calls(session, queue, shown)
    total = len(calls) if len(calls) < shown else session.scalar(
        select(func.count(Call.id)).where(*_live(queue)))
    return {
        **wallboard_snapshot(session, settings, queue),
        "calls": calls,
        "calls_total": total,
        "agents": agents(session, queue),
        "transfers": transfers_under_way(session, queue),
    }


def agent_may_read(session: Session, call: Call, agent_id: int | None) -> bool:
    """Whether this agent may read the call's page: while a leg of theirs is on it (ringing, hearing the whisper,
    talking, held), or for good once a leg of theirs was connected (they talked on it). Being rung and
    declining, missing it or being cancelled leaves nothing open once that leg is over."""
    if agent_id is None:
        return False
    return bool(session.scalar(select(exists().where(
        Leg.call_id == call.id, Leg.agent_id == agent_id,
        or_(Leg.status.in_(LIVE_LEG_STATUSES), Leg.connected_at.is_not(None))))))


# The newest event and utterance of the call named by `call`, in one statement.
_CALL_CURSOR = select(
    select(func.max(Event.id)).where(Event.call_id == bindparam("call")).scalar_subquery(),
    select(func.max(Utterance.id)).where(Utterance.call_id == bindparam("call")).scalar_subquery(),
)


def call_cursor(session: Session, call_id: int) -> str:
    """Moves whenever the call's timeline or transcript grows."""
    event_id, utterance_id = session.execute(_CALL_CURSOR, {"call": call_id}).one()
    return f"{event_id or 0}.{utterance_id or 0}"


# The timeline events that measure how long someone on the call heard nothing.
DEAD_AIR_EVENTS = {
    "caller_heard_hold": ("silent_ms", "The caller, from being put on hold to the hold message"),
    "summary_whispered": ("waited_ms", "The transfer's target, from answering (greeted at once) to the summary"),
}


def dead_air(session: Session, call: Call) -> list[dict]:
    """Each step's dead air on this call, from its timeline: who, when, and how long (ms)."""
    events = session.scalars(
        select(Event).where(Event.call_id == call.id, Event.name.in_(tuple(DEAD_AIR_EVENTS))).order_by(Event.id)
    )
    rows = []
    for event in events:
        key, who = DEAD_AIR_EVENTS[event.name]
        milliseconds = int((event.detail or {}).get(key) or 0)
        rows.append({"who": who, "time": _clock(event.created_at), "at": _iso(event.created_at),
                     "ms": milliseconds, "seconds": f"{milliseconds / 1000:.1f} s"})
    return rows


def timeline(session: Session, call: Call) -> list[dict]:
    """Every event of the call with its time, oldest first."""
    events = session.scalars(select(Event).where(Event.call_id == call.id).order_by(Event.id))
    return [
        {
            "id": event.id,
            "at": _iso(event.created_at),
            "time": _clock(event.created_at),
            "name": event.name,
            "label": label(event.name),
            "transfer_id": event.transfer_id,
            # Who asked for the step (a username, token:<name>, phone:<extension>), in its own column.
            "by": (event.detail or {}).get("by") or "",
            "detail": [[key, _detail_text(value)] for key, value in shown_detail(event).items()
                       if value not in (None, "") and key != "by"],
        }
        for event in events
    ]


def _detail_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def transcript(session: Session, call: Call) -> list[dict]:
    """What the caller and the agent said (already redacted when stored), oldest first."""
    utterances = session.scalars(select(Utterance).where(Utterance.call_id == call.id).order_by(Utterance.id))
    return [
        {"speaker": u.speaker, "text": u.text, "at": _iso(u.created_at), "time": _clock(u.created_at)}
        for u in utterances
    ]


def summary_view(transfer: Transfer) -> dict:
    """A transfer's summary as shown: spoken text, fields, and where it came from."""
    summary = stored_summary(transfer)
    structured = summary["structured"] or {}
    source = summary["source"]
    return {
        **summary,
        "ready": source is not None,
        "fields": [[title, str(structured[key])] for key, title in SUMMARY_FIELDS if structured.get(key)],
        "source_label": SummarySource(source).label if source else "Not ready yet",
    }


def transfer_view(transfer: Transfer) -> dict:
    """One transfer of a call: who, how, where it stands, its summary."""
    answered_by = transfer.target_leg.agent if transfer.target_leg and transfer.target_leg.agent else None
    return {
        "id": transfer.id,
        "mode": transfer.mode,
        "trigger": transfer.trigger,
        "state": transfer.state,
        "state_label": label(transfer.state),
        "final": transfer.is_final,
        "from_agent": _agent_name(transfer.from_agent),
        "target": _target_name(transfer),
        "answered_by": _agent_name(answered_by),
        "notes": transfer.notes,
        "requested_by": transfer.requested_by,
        "end_reason": transfer.end_reason,
        "started": _clock(transfer.created_at),
        "ended": _clock(transfer.ended_at),
        "started_at": _iso(transfer.created_at),
        "ended_at": _iso(transfer.ended_at),
        "summary": summary_view(transfer),
        **possible_actions(transfer),
    }


def call_page_as_seen(session: Session, call_id: int, may_act: bool, agent_id: int | None) -> dict | None:
    """The call page's data as its viewer sees it (MAY_ACT: a supervisor); None when the call's records are gone
    or an agent may no longer read it (they declined)."""
    call = session.get(Call, call_id, populate_existing=True)
    if call is None or not (may_act or agent_may_read(session, call, agent_id)):
        return None
    return {**call_page(session, call), "may_act": may_act}


def call_page(session: Session, call: Call) -> dict:
    """Everything a call's page shows, of CALL as the session holds it (read it afresh first if need be)."""
    active = next((t for t in call.transfers if not t.is_final), None)
    return {
        "call": {
            "call_sid": call.call_sid,
            "caller": call.caller_shown,
            "direction": call.direction,
            "queue": call.queue.name if call.queue else None,
            "agent": _agent_name(call.agent),
            "ivr_reason": call.ivr_reason,
            "state": call.status,
            "state_label": label(call.status),
            "live": not call.is_final,
            "started_at": _iso(call.created_at),
            "ended_at": _iso(call.ended_at),
            "started": _clock(call.created_at),
            "ended": _clock(call.ended_at),
            "voicemail": {
                "audio": voicemail_audio_href(call.call_sid),
                "seconds": call.voicemail_seconds,
                "handled_by": call.voicemail_handled_by,
                "handled_at": _iso(call.voicemail_handled_at),
            } if call.voicemail_url else None,
        },
        "timeline": timeline(session, call),
        "dead_air": dead_air(session, call),
        "transcript": transcript(session, call),
        "transfers": [transfer_view(t) for t in call.transfers],
        "can_transfer": call.status == CallStatus.CONNECTED and active is None,
    }


def transfer_targets(session: Session, call: Call) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Choices for the transfer form: (value, label) for every agent and every queue, with their state now."""
    agent_choices = []
    for agent in session.scalars(select(Agent).order_by(Agent.extension)):
        if agent.id == call.agent_id:
            state = "on this call"
        elif agent.is_free:
            state = "free"
        else:
            state = f"{agent.presence}, {label(agent.activity)}"
        agent_choices.append((f"agent:{agent.extension}", f"{agent.extension} · {agent.name} ({state})"))
    queue_choices = []
    for queue in session.scalars(select(Queue).order_by(Queue.name)):
        free = len(free_agents(session, queue.skill, exclude={call.agent_id} if call.agent_id else ()))
        queue_choices.append((f"queue:{queue.name}", f"{queue.name} queue ({free} free)"))
    return agent_choices, queue_choices


def target_of_choice(session: Session, choice: str):
    """The transfer target a form choice ('agent:102', 'queue:billing', 'outside:+44…') names; TransferRefused if none."""

    kind, _, key = (choice or "").partition(":")
    if kind == "outside" and key.strip():
        # Free text from the form: a number, or a SIP URI (checked against the allow-list when started).
        key = key.strip()
        return find_target(session, **{"sip_uri" if is_sip_uri(key) else "number": key})
    if kind not in ("agent", "queue") or not key:
        raise TransferRefused("choose an agent or a queue")
    return find_target(session, extension=key if kind == "agent" else None, queue=key if kind == "queue" else None)


def find_transfer(session: Session, call: Call, transfer_id: int) -> Transfer | None:
    """The transfer with this id, if it belongs to the call."""
    transfer = session.get(Transfer, transfer_id)
    return transfer if transfer is not None and transfer.call_id == call.id else None
