"""The calls' history: every call, ended or live, newest first, a page at a time, found by a part of its number,
its agent, its queue, its status and when it started; the voicemail inbox is the same list, of the calls with a
message.

What a page or the API is asked (the query string: number, agent, queue, status, since, until, cursor) is read
here, once (`read_search`), and refused in words (`SearchRefused`), so the supervisor's pages and GET /api/calls
take the same filters and say the same of a bad one. Pages are cut by a keyset, the newest call's start and id
(`ix_calls_created_at_id`): a page goes on where the last one stopped even while calls arrive.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Mapping

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from app.models import Agent, Call, CallDirection, CallStatus, Queue
from app.text import ascii_digits

PAGE_SIZE = 50
# The longest filter text taken (a number, an agent's name, a queue's name, a date).
FILTER_LIMIT = 64
# What a number may be written with besides digits and a leading +.
NUMBER_SEPARATORS = re.compile(r"[\s\-.()/]")
NUMBER_TEXT = re.compile(r"\+?[0-9]{1,20}")
LIKE_ESCAPE = "\\"
FILTERS = ("number", "agent", "queue", "status", "since", "until", "cursor")


class SearchRefused(ValueError):
    """A filter that cannot be read, with what is wrong in words."""


@dataclass(frozen=True)
class Search:
    """What calls to list: each filter set narrows the list; none set lists every call."""

    number: str | None = None  # digits (a leading + kept) somewhere in the customer's number
    agent: str | None = None  # the extension of the call's agent, or a part of their name
    queue: str | None = None  # the call's queue, by name
    status: str | None = None  # a CallStatus
    since: datetime | None = None  # started at or after (UTC)
    until: datetime | None = None  # started at or before (UTC)
    after: tuple[datetime, int] | None = None  # the cursor: calls older than this (start, id)
    voicemail: bool = False  # only calls where the caller left a message
    given: dict[str, str] = field(default_factory=dict)  # the filters as given, for the next page's address


@dataclass(frozen=True)
class CallPage:
    """One page of the history: its rows, newest first, and the cursor of the next page (None: the last)."""

    rows: list[dict]
    next_cursor: str | None


def read_search(values: Mapping[str, object], *, voicemail: bool = False) -> Search:
    """The search VALUES ask for (FILTERS; empty ones are unset); SearchRefused naming the first one wrong."""
    given = {name: str(values.get(name) or "").strip() for name in FILTERS}
    given = {name: text for name, text in given.items() if text}
    for name, text in given.items():
        if len(text) > FILTER_LIMIT and name != "cursor":
            raise SearchRefused(f"{name}: at most {FILTER_LIMIT} characters")
    since = _moment("since", given.get("since"), end_of_day=False)
    until = _moment("until", given.get("until"), end_of_day=True)
    if since and until and since > until:
        raise SearchRefused("since: must not be later than until")
    return Search(
        number=_number(given.get("number")),
        agent=given.get("agent"),
        queue=given.get("queue"),
        status=_status(given.get("status")),
        since=since,
        until=until,
        after=_read_cursor(given.get("cursor")),
        voicemail=voicemail,
        given={name: text for name, text in given.items() if name != "cursor"},
    )


def _number(text: str | None) -> str | None:
    if not text:
        return None
    number = NUMBER_SEPARATORS.sub("", text)
    if not NUMBER_TEXT.fullmatch(number):
        raise SearchRefused("number: digits only (a part of the number is enough: 5550123), with a leading + if "
                            "you like")
    return number


def _status(text: str | None) -> str | None:
    if not text:
        return None
    if text not in CallStatus.__members__.values():
        raise SearchRefused(f"status: one of {', '.join(CallStatus)}")
    return text


def _moment(name: str, text: str | None, *, end_of_day: bool) -> datetime | None:
    """A date (the whole day: its start for since, its end for until) or an ISO 8601 time, in UTC unless it says
    otherwise."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SearchRefused(f"{name}: a date (2026-12-07) or a time (2026-12-07T09:30, UTC unless it carries an "
                            "offset such as +01:00)") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise SearchRefused(f"{name}: out of range") from None


def cursor_of(call: Call) -> str:
    """The cursor of the page after CALL: its start and id, in a form that is only to be given back."""
    text = f"{call.created_at.astimezone(timezone.utc).isoformat()}|{call.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _read_cursor(text: str | None) -> tuple[datetime, int] | None:
    if not text:
        return None
    refused = SearchRefused("cursor: not one this list gave (start again from the first page)")
    if len(text) > 200:
        raise refused
    try:
        moment, _, call_id = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().partition("|")
        at = datetime.fromisoformat(moment)
        number = int(call_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    if at.tzinfo is None or not 0 < number < 2**31:
        raise refused
    return at.astimezone(timezone.utc), number


def like_pattern(text: str) -> str:
    """A LIKE pattern that finds TEXT anywhere, its own % and _ (and the escape) taken literally."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"


def _conditions(search: Search) -> list:
    conditions = []
    if search.number:
        pattern = like_pattern(search.number)
        # The customer's number: who called us, or whom an outbound call dialled (Call.customer_number).
        conditions.append(or_(
            and_(Call.direction == CallDirection.OUTBOUND, Call.to_number.like(pattern, escape=LIKE_ESCAPE)),
            and_(Call.direction != CallDirection.OUTBOUND, Call.from_number.like(pattern, escape=LIKE_ESCAPE)),
        ))
    if search.agent:
        agent = search.agent
        named = (Agent.extension == agent) if ascii_digits(agent) else func.lower(Agent.name).like(
            like_pattern(agent.lower()), escape=LIKE_ESCAPE)
        conditions.append(Call.agent_id.in_(select(Agent.id).where(named)))
    if search.queue:
        conditions.append(Call.queue_id.in_(select(Queue.id).where(func.lower(Queue.name) == search.queue.lower())))
    if search.status:
        conditions.append(Call.status == search.status)
    if search.since:
        conditions.append(Call.created_at >= search.since)
    if search.until:
        conditions.append(Call.created_at <= search.until)
    if search.voicemail:
        conditions.append(Call.voicemail_url.is_not(None))
    if search.after:
        at, call_id = search.after
        conditions.append(or_(Call.created_at < at, and_(Call.created_at == at, Call.id < call_id)))
    return conditions


def search_calls(session: Session, search: Search, page_size: int = PAGE_SIZE) -> CallPage:
    """The page of calls SEARCH asks for, newest first."""
    calls = session.scalars(
        select(Call).options(joinedload(Call.agent), joinedload(Call.queue))
        .where(*_conditions(search))
        .order_by(Call.created_at.desc(), Call.id.desc())
        .limit(page_size + 1)
    ).all()
    more = len(calls) > page_size
    calls = calls[:page_size]
    return CallPage([call_row(call) for call in calls], cursor_of(calls[-1]) if more else None)


def call_row(call: Call) -> dict:
    """A call as the history lists it (never its recording's address)."""
    return {
        "call_sid": call.call_sid,
        "direction": call.direction,
        "status": call.status,
        "number": call.customer_number,
        "caller": call.caller_shown,  # what the pages show: a browser's call is "website visitor"
        "queue": call.queue.name if call.queue else None,
        "agent": call.agent.extension if call.agent else None,
        "agent_name": call.agent.name if call.agent else None,
        "created_at": call.created_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "duration_seconds": int((call.ended_at - call.created_at).total_seconds()) if call.ended_at else None,
        "voicemail": {
            "seconds": call.voicemail_seconds,
            "handled_at": call.voicemail_handled_at,
            "handled_by": call.voicemail_handled_by,
        } if call.voicemail_url else None,
    }
