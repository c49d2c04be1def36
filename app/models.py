"""The data model: agents and queues, calls and their legs, transfers, the timeline.

Every piece of call state lives here, so any worker on any host can take the
next webhook. States are short strings (see the StrEnums) so rows read well in
psql and in the timeline.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.database import Base
from app.hours import Hours


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the model uses (see app/clock.py)."""
    return clock.utcnow()


# Ids are the database's integers: a larger one names no row (and PostgreSQL
# would refuse to compare it), so it is turned away before any query.
MAX_ID = 2**31 - 1


_ID_TEXT = re.compile(r"[0-9]{1,10}")


def parse_id(value: object) -> int | None:
    """VALUE as a row id (1..MAX_ID), or None for anything else."""
    text = str(value).strip() if value is not None else ""
    # ASCII digits only: str.isdigit() is true of "²" and "①", which int() refuses.
    if not _ID_TEXT.fullmatch(text):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


class UTCDateTime(TypeDecorator):
    """A timezone-aware DateTime that comes back aware on SQLite too (which forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Presence(StrEnum):
    AVAILABLE = "available"  # offered calls and transfers whenever idle (Agent.is_free)
    AWAY = "away"  # offered nothing: set by the agent, a supervisor, or missed calls in a row
    OFFLINE = "offline"  # not at work: a new agent's presence; never set from the board (agents.service)


class Activity(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    ON_CALL = "on_call"
    # Their last leg is over for the service but Twilio has not said so yet
    # (a cancel on its way, a goodbye playing, a hang-up that failed): not
    # offered a call until it does.
    LEAVING = "leaving"
    # After-call work: their call is over; offered nothing until wrap_up_until, or until they (or a
    # supervisor) say they are ready.
    WRAP_UP = "wrap_up"


class CallDirection(StrEnum):
    INBOUND = "inbound"  # a caller dialled our number
    OUTBOUND = "outbound"  # the service dialled a customer for an agent (calls/outbound.py)


class CallStatus(StrEnum):
    IVR = "ivr"
    # The IVR chose a queue outside its business hours: the caller hears when it opens, and the options.
    AFTER_HOURS = "after_hours"
    # An outbound call before the customer answers: its agent is rung first, then the customer.
    DIALING = "dialing"
    QUEUED = "queued"
    RINGING_AGENT = "ringing_agent"
    CONNECTED = "connected"
    ON_HOLD = "on_hold"
    VOICEMAIL = "voicemail"
    CALLBACK_REQUESTED = "callback_requested"
    COMPLETED = "completed"
    # An outbound call whose customer did not answer (busy, no answer, the number failed).
    UNANSWERED = "unanswered"
    ABANDONED = "abandoned"
    FAILED = "failed"


# What a browser's call says it is from: Twilio's form for a Voice SDK client ("client:" and its identity,
# calls/web_callers.py). Never shown: pages say WEB_CALLER_SHOWN instead.
CLIENT_PREFIX = "client:"
WEB_CALLER_SHOWN = "website visitor"

FINAL_CALL_STATUSES = frozenset(
    {CallStatus.COMPLETED, CallStatus.ABANDONED, CallStatus.FAILED, CallStatus.VOICEMAIL, CallStatus.CALLBACK_REQUESTED,
     CallStatus.UNANSWERED}
)
# The statuses of a call not yet over. A query for live rows asks for these (`status IN …`), which the status's
# index answers from the few live rows; `NOT IN` the final ones would read the whole history. The same for legs
# and transfers below (tests/test_lookup_indexes.py).
LIVE_CALL_STATUSES = tuple(sorted(set(CallStatus) - FINAL_CALL_STATUSES))


class LegRole(StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    TARGET = "target"


class LegStatus(StrEnum):
    DIALING = "dialing"
    WHISPER = "whisper"
    CONNECTED = "connected"
    ON_HOLD = "on_hold"
    ENDED = "ended"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_LEG_STATUSES = frozenset(
    {LegStatus.ENDED, LegStatus.NO_ANSWER, LegStatus.BUSY, LegStatus.DECLINED, LegStatus.FAILED, LegStatus.CANCELED}
)
LIVE_LEG_STATUSES = tuple(sorted(set(LegStatus) - FINAL_LEG_STATUSES))


class TransferState(StrEnum):
    REQUESTED = "requested"
    WAITING = "waiting"  # at a queue whose agents are all busy, for the first one to be free
    DIALING = "dialing"
    WHISPERING = "whispering"
    CONSULTING = "consulting"
    COMPLETED = "completed"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"
    CALLER_HUNG_UP = "caller_hung_up"
    FAILED = "failed"
    VOICEMAIL = "voicemail"  # an outside target's phone was answered by a machine


FINAL_TRANSFER_STATES = frozenset(
    {
        TransferState.COMPLETED,
        TransferState.DECLINED,
        TransferState.NO_ANSWER,
        TransferState.CANCELLED,
        TransferState.CALLER_HUNG_UP,
        TransferState.FAILED,
        TransferState.VOICEMAIL,
    }
)
LIVE_TRANSFER_STATES = tuple(sorted(set(TransferState) - FINAL_TRANSFER_STATES))


class CallbackState(StrEnum):
    PENDING = "pending"  # in line (from when the caller queued), due at next_attempt_at
    CALLING = "calling"  # an attempt's outbound call is under way: its agent rung, then the customer
    COMPLETED = "completed"  # the customer answered an attempt
    FAILED = "failed"  # every attempt went unanswered, or the number may no longer be dialled


FINAL_CALLBACK_STATES = frozenset({CallbackState.COMPLETED, CallbackState.FAILED})


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    extension: Mapped[str] = mapped_column(String(16), unique=True)
    sip_uri: Mapped[str | None] = mapped_column(String(255))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    presence: Mapped[str] = mapped_column(String(16), default=Presence.OFFLINE)
    activity: Mapped[str] = mapped_column(String(16), default=Activity.IDLE)
    missed_in_row: Mapped[int] = mapped_column(Integer, default=0)
    last_call_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a call they talked on ends and WRAP_UP_SECONDS is on: their after-call work lasts until then.
    wrap_up_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When presence and activity last changed (the board's "away since", "on call 04:12"); written with them,
    # by app/states/agents.py only. None: not since these were kept.
    presence_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    activity_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def is_free(self) -> bool:
        """Available and idle: the agent may be offered a call or a transfer now (states.agents.take_if_idle)."""
        return self.presence == Presence.AVAILABLE and self.activity == Activity.IDLE

    def __repr__(self) -> str:
        return f"<Agent {self.extension} {self.name} {self.presence}/{self.activity}>"


# A queue's own settings (its columns of the same names); each falls back to the service-wide setting
# (WRAP_UP_SECONDS, QUEUE_ANNOUNCE_SECONDS, MAX_QUEUE_WAIT_SECONDS, CALLBACK_ATTEMPTS).
QUEUE_SETTINGS = ("wrap_up_seconds", "announce_seconds", "max_wait_seconds", "callback_attempts")


class Overflow(StrEnum):
    """What a queue does with a caller still waiting past its longest wait; any other value names a queue."""

    OPTIONS = "options"  # offered voicemail or a callback, or more waiting
    VOICEMAIL = "voicemail"  # straight to recording a message
    CALLBACK = "callback"  # a callback asked for on their behalf


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    dtmf_code: Mapped[str] = mapped_column(String(4), unique=True)
    skill: Mapped[str] = mapped_column(String(64))
    speech_hints: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_default: Mapped[bool] = mapped_column(default=False)
    # The queue's own settings; None: the service-wide setting of the same name (QUEUE_SETTINGS).
    wrap_up_seconds: Mapped[int | None] = mapped_column(Integer)
    announce_seconds: Mapped[int | None] = mapped_column(Integer)
    max_wait_seconds: Mapped[int | None] = mapped_column(Integer)
    callback_attempts: Mapped[int | None] = mapped_column(Integer)
    # An agent with the skills of several queues is offered the waiting caller of the highest priority first,
    # then the longest waiting (routing/service.py).
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Business hours (app/hours.py): its time zone (None: CENTRE_TIMEZONE), its weekly hours as
    # {"mon": ["09:00-17:00"], ...} (None: open all week), its holidays as ISO dates (closed all day).
    timezone: Mapped[str | None] = mapped_column(String(64))
    hours: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    holidays: Mapped[list[str] | None] = mapped_column(JSON)
    # Past its longest wait: an Overflow, or the name of the queue the caller moves to (None: options).
    overflow: Mapped[str | None] = mapped_column(String(64))

    def setting(self, name: str, default: int) -> int:
        """The queue's own NAME (one of QUEUE_SETTINGS), or DEFAULT, the service-wide one, when it has none."""
        if name not in QUEUE_SETTINGS:
            raise KeyError(name)
        value = getattr(self, name)
        return default if value is None else value

    def opening_hours(self, default_zone: str) -> Hours:
        """The queue's business hours, on its own time zone or DEFAULT_ZONE (CENTRE_TIMEZONE)."""
        return Hours.of(self.timezone or default_zone, self.hours, self.holidays or ())


class Call(Base):
    __tablename__ = "calls"
    # The call history and the voicemail inbox list calls newest first, a page at a time (calls/history.py).
    # A new call asks for its caller's last call (calls/resume.py), and a customer's calls are found by number
    # (same_customer): by their number and when each ended.
    __table_args__ = (Index("ix_calls_created_at_id", "created_at", "id"),
                      Index("ix_calls_from_number_ended_at", "from_number", "ended_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    # The call's name in pages and the API: an inbound call's is the caller's Twilio CallSid; an outbound call,
    # placed before Twilio names any leg, has its own (OUTBOUND_SID_PREFIX and 32 hex digits).
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(8), default=CallDirection.INBOUND, server_default="inbound")
    # A caller cut off who called straight back (calls/resume.py): the call they were cut off from, and the
    # agent they go back to first.
    resumed_from_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    resume_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # An outbound call made as an attempt of this callback.
    # (use_alter: callbacks name their call too; the constraint is added after both tables exist.)
    callback_id: Mapped[int | None] = mapped_column(
        ForeignKey("callbacks.id", ondelete="SET NULL", use_alter=True, name="fk_calls_callback_id_callbacks"),
        index=True)
    from_number: Mapped[str] = mapped_column(String(32), default="")
    # What an inbound caller's carrier vouched for their number by STIR/SHAKEN: A, B, C, "failed", or NULL when
    # the call came with nothing to verify (telephony.outcomes.caller_attestation).
    caller_attestation: Mapped[str | None] = mapped_column(String(8))
    to_number: Mapped[str] = mapped_column(String(32), default="", index=True)
    # Every LiveKit webhook finds its call by its room (primitives.legs.lock_call_in_room).
    room_name: Mapped[str | None] = mapped_column(String(128), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    ivr_reason: Mapped[str | None] = mapped_column(Text)
    ivr_attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default=CallStatus.IVR, index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # The caller's message: Twilio's RecordingUrl (fetched with the account's credentials, never shown: pages
    # play it through the service's own address, calls/voicemails.py), how long it lasts, and who dealt with it.
    voicemail_url: Mapped[str | None] = mapped_column(String(512))
    voicemail_seconds: Mapped[int | None] = mapped_column(Integer)
    voicemail_handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voicemail_handled_by: Mapped[str | None] = mapped_column(String(64))
    # Twilio's CallToken of the inbound call: with it a call the service places may show the caller's own
    # number (OUTSIDE_TRANSFER_CALLER_ID=caller). Never shown or logged.
    call_token: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the caller joined their queue now (a requeue or a resume moves it), and when they first joined one:
    # the queue figures count a call's answer and service level from the first (calls/figures.py).
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The caller's real-time transcription was stopped while a card number
    # was read (calls/card_pause.py): since when, and when it starts again.
    transcription_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    transcription_resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The SID of the caller's live transcription (its transcription-started callback, or the create that
    # resumed it): a pause stops it by SID, and each resume starts one under a fresh name.
    transcription_sid: Mapped[str | None] = mapped_column(String(64))

    queue: Mapped[Queue | None] = relationship()
    agent: Mapped[Agent | None] = relationship(foreign_keys=[agent_id])
    resume_agent: Mapped[Agent | None] = relationship(foreign_keys=[resume_agent_id])
    resumed_from: Mapped[Call | None] = relationship(foreign_keys=[resumed_from_call_id], remote_side=[id])
    legs: Mapped[list[Leg]] = relationship(back_populates="call", order_by="Leg.id")
    transfers: Mapped[list[Transfer]] = relationship(back_populates="call", order_by="Transfer.id")

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES

    @property
    def is_outbound(self) -> bool:
        return self.direction == CallDirection.OUTBOUND

    @property
    def customer_number(self) -> str:
        """The customer's number: who called us, or whom an outbound call dials."""
        return self.to_number if self.is_outbound else self.from_number

    @property
    def caller_shown(self) -> str:
        """Who the call is with, as pages show it (caller_shown)."""
        return caller_shown(self.direction, self.from_number, self.to_number)


def caller_shown(direction: str, from_number: str, to_number: str) -> str:
    """Who a call is with, as pages show it: the customer's number (whom an outbound call dials), or
    WEB_CALLER_SHOWN for a browser's call (its `client:<identity>` is no number and is not shown)."""
    number = to_number if direction == CallDirection.OUTBOUND else from_number
    return WEB_CALLER_SHOWN if number.startswith(CLIENT_PREFIX) else number


def same_customer(number: str):
    """The SQL condition for calls with the customer NUMBER: inbound from it, or outbound to it."""
    return or_(and_(Call.direction == CallDirection.INBOUND, Call.from_number == number),
               and_(Call.direction == CallDirection.OUTBOUND, Call.to_number == number))


class Leg(Base):
    """One party's connection: a Twilio call (caller, SIP agent) or a LiveKit participant (browser agent)."""

    __tablename__ = "legs"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=LegStatus.DIALING, index=True)  # live legs: by it
    # An agent's other live legs are asked for by several steps (and their last call by wrap-up).
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    twilio_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    livekit_identity: Mapped[str | None] = mapped_column(String(128))
    room_name: Mapped[str | None] = mapped_column(String(128))
    end_reason: Mapped[str | None] = mapped_column(String(64))
    # Bumped whenever the service redirects this leg: a <Dial> action carrying
    # an older number was ended by our own redirect, not by the person.
    placement: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the leg was first connected: its agent talked on the call (a whisper heard and declined is not).
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    call: Mapped[Call] = relationship(back_populates="legs")
    agent: Mapped[Agent | None] = relationship()

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_LEG_STATUSES


ACTIVE_TRANSFER_SQL = "state IN ('requested', 'waiting', 'dialing', 'whispering', 'consulting')"


class Transfer(Base):
    __tablename__ = "transfers"
    # At most one transfer under way per call, even when two requests race.
    __table_args__ = (
        Index(
            "uq_transfers_one_active_per_call",
            "call_id",
            unique=True,
            sqlite_where=text(ACTIVE_TRANSFER_SQL),
            postgresql_where=text(ACTIVE_TRANSFER_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(8))  # warm | blind
    trigger: Mapped[str] = mapped_column(String(8))  # dtmf | web | api
    state: Mapped[str] = mapped_column(String(16), default=TransferState.REQUESTED, index=True)
    from_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    target_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    target_queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    # The target's leg's webhooks find their transfer by it.
    target_leg_id: Mapped[int | None] = mapped_column(ForeignKey("legs.id", ondelete="SET NULL"), index=True)
    # An outside target: the E.164 number or SIP URI rung (its leg has no agent).
    target_number: Mapped[str | None] = mapped_column(String(255))
    consult_room: Mapped[str | None] = mapped_column(String(128), index=True)  # found by LiveKit's webhooks too
    notes: Mapped[str | None] = mapped_column(Text)
    # Who asked for it, as the timeline's `by` names them ("alice", "token:crm", "phone:101"): whose the notes are.
    requested_by: Mapped[str | None] = mapped_column(String(80))
    tried_agent_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Since when it waits at its target queue (state waiting), for its place in line; kept once it rings.
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    summary_spoken: Mapped[str | None] = mapped_column(Text)
    summary_structured: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary_source: Mapped[str | None] = mapped_column(String(16))  # llm | fallback
    summary_provider: Mapped[str | None] = mapped_column(String(32))
    summary_model: Mapped[str | None] = mapped_column(String(128))
    summary_latency_ms: Mapped[int | None] = mapped_column(Integer)
    summary_error: Mapped[str | None] = mapped_column(String(255))
    end_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    call: Mapped[Call] = relationship(back_populates="transfers")
    from_agent: Mapped[Agent | None] = relationship(foreign_keys=[from_agent_id])
    target_agent: Mapped[Agent | None] = relationship(foreign_keys=[target_agent_id])
    target_queue: Mapped[Queue | None] = relationship()
    target_leg: Mapped[Leg | None] = relationship()

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_TRANSFER_STATES


class Callback(Base):
    """A caller's request to be called back: in line from when they queued, then attempts, each an outbound call."""

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The call on which it was asked for (its timeline gets every attempt).
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=CallbackState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # attempts that rang the customer
    # Its place in line: when the caller queued (a callback keeps the place the caller had).
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    call: Mapped[Call] = relationship(foreign_keys=[call_id])
    queue: Mapped[Queue | None] = relationship()

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_CALLBACK_STATES


class WebCaller(Base):
    """A visitor who asked for a token to call from the website (calls/web_callers.py): the random identity
    their browser calls as (`client:<identity>`), what they typed (cleaned and redacted), and the call it
    became once Twilio asked the voice webhook."""

    __tablename__ = "web_callers"

    id: Mapped[int] = mapped_column(primary_key=True)
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))


class Utterance(Base):
    __tablename__ = "utterances"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    speaker: Mapped[str] = mapped_column(String(16))  # caller | agent
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Event(Base):
    """One step of a call: together they are its timeline."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # supervisor | agent
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    agent: Mapped[Agent | None] = relationship()


class LoginSession(Base):
    """A signed-in browser: the session cookie names it, and signing out deletes it, so a copied cookie dies too.

    Only the SHA-256 of the key in the cookie is stored, as for API tokens.
    """

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship()


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What it may do, space-separated (auth/service.py's Scope: read, act); tokens made before scopes
    # existed have both (migration 0024).
    scopes: Mapped[str] = mapped_column(String(32), server_default="read act")
    # Refused (401) from then on; None: never expires.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When a request last used it, to within auth/service.py's LAST_SEEN_RESOLUTION; None: never used.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """A webhook already handled, with the answer given, so a retry gets the same answer and changes nothing."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("source", "delivery_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # twilio | livekit
    delivery_key: Mapped[str] = mapped_column(String(128))
    endpoint: Mapped[str] = mapped_column(String(128))
    status_code: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class OutboxEffect(Base):
    """What a committed step must still do outside the database: written in the step's own transaction,
    deleted once done (app/primitives/effects.py); what a dead worker left is carried out by the reconciler."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    effect: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Set, and committed, before an effect that must not run twice (a dial) goes out.
    tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EventSubscriber(Base):
    """Another system told of what happens to calls (docs: README, "Event webhooks"): its URL, the event types
    it wants, and its signing secret, sealed with a key derived from SECRET_KEY (app/outgoing/secrets.py)."""

    __tablename__ = "event_subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(512))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConfigurationVersion(Base):
    """How often the configuration every call reads (the queues, the event subscribers) has changed: one row,
    bumped by the database's own triggers on those tables whoever changes them (migration 0025). A transaction
    that read it may use what the process read of that configuration under the same version instead of reading it
    again (database.read_configuration)."""

    __tablename__ = "configuration_version"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    version: Mapped[int] = mapped_column(BigInteger)


# The configuration's version now, as a column of another statement: a webhook's delivery claim returns it.
CONFIGURATION_VERSION = (select(ConfigurationVersion.version).where(ConfigurationVersion.id == 1)
                         .scalar_subquery().label("configuration_version"))


class DeliveryState(StrEnum):
    PENDING = "pending"  # not sent yet, or sent and to be tried again at next_attempt_at
    DELIVERED = "delivered"  # a 2xx answered it
    GIVEN_UP = "given_up"  # every attempt of the schedule failed


class EventDelivery(Base):
    """One event for one subscriber: written in the step's own transaction (the outbox of outgoing events),
    sent in order per call and subscriber by the `deliver_events` job, every attempt logged."""

    __tablename__ = "event_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("event_subscribers.id", ondelete="CASCADE"), index=True)
    # No foreign key: a delivery outlives the call it tells of in the subscriber's log.
    call_id: Mapped[int | None] = mapped_column(Integer, index=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # the webhook-id header, kept across retries
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    delivery_state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Set (compare-and-set) by the worker sending it: no other sends it until this is past (sending.CLAIM_SECONDS).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryAttempt(Base):
    """One attempt at sending a delivery: when, the HTTP status (none when no answer came), the error."""

    __tablename__ = "event_delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("event_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(255))
    replay: Mapped[bool] = mapped_column(Boolean, default=False)
