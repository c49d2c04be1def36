"""The JSON API's request and response shapes (pydantic); spectree validates with them and writes the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.kinds import Speaker, SummarySource, TransferMode, TransferTrigger
from app.models import Activity, CallbackState, CallDirection, CallStatus, LegRole, LegStatus, Presence, TransferState
from app.telephony.numbers import DestinationRefused, normalise_number
from app.transfers.outside import normalise_outside_number, normalise_sip_uri

# Bounded, so an oversized field is refused before it reaches the database.
NOTES_LIMIT = 2000


class StartTransfer(BaseModel):
    """Who to transfer to, and how."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    extension: str | None = Field(None, max_length=16, description="target agent's extension (give this or queue)")
    queue: str | None = Field(
        None, max_length=64,
        description="target queue's name or IVR code: its next free agent is rung, then the next on decline")
    number: str | None = Field(
        None, max_length=64,
        description="an outside E.164 number (+442079460000), with an extension if it has one (+12125550100,123# "
                    "or +12125550100;ext=123: keys sent once answered); rung only if OUTSIDE_TRANSFER_ALLOW names "
                    "the number's prefix")
    sip_uri: str | None = Field(
        None, max_length=255,
        description="an outside SIP URI (sip:desk@pbx.example.com); rung only if OUTSIDE_TRANSFER_ALLOW names its host")
    mode: Literal[TransferMode.WARM, TransferMode.BLIND] = TransferMode.WARM
    notes: str | None = Field(None, max_length=NOTES_LIMIT, description="added to the summary's input")

    @model_validator(mode="after")
    def _one_target(self) -> "StartTransfer":
        given = [name for name in TARGET_FIELDS if (getattr(self, name) or "").strip()]
        if len(given) != 1:
            raise ValueError("give a target: 'extension' or 'queue', or an outside 'number' or 'sip_uri' "
                             "(exactly one)")
        try:
            # A malformed destination is a bad request; one the allow-list
            # does not name is a refusal (409), checked with the call.
            if self.number:
                normalise_outside_number(self.number)
            if self.sip_uri:
                normalise_sip_uri(self.sip_uri)
        except DestinationRefused as malformed:
            raise ValueError(str(malformed)) from None
        return self


TARGET_FIELDS = ("extension", "queue", "number", "sip_uri")


class Summary(BaseModel):
    """The summary the target heard (or will hear)."""

    spoken: str | None = None
    structured: dict[str, Any] | None = None
    source: Literal[SummarySource.LLM, SummarySource.FALLBACK] | None = Field(
        None, description="fallback: written without the LLM")
    provider: str | None = None
    model: str | None = None
    latency_ms: int | None = None
    error: str | None = Field(None, description="why the fallback was used")


class TimelineEvent(BaseModel):
    """One step of a call or a transfer, as the call's timeline has it."""

    name: str
    at: datetime
    detail: dict[str, Any]


class TransferParties(BaseModel):
    """What every answer about a transfer says: how it goes, where it stands, who is in it, when."""

    id: int
    mode: Literal[TransferMode.WARM, TransferMode.BLIND]
    trigger: Literal[TransferTrigger.DTMF, TransferTrigger.WEB, TransferTrigger.API]
    state: TransferState
    from_agent: str | None = Field(None, description="extension of the transferring agent")
    target_agent: str | None = None
    target_queue: str | None = None
    target_number: str | None = Field(None, description="the outside number or SIP URI rung")
    answered_by: str | None = Field(None, description="extension of the agent who answered")
    end_reason: str | None = None
    created_at: datetime
    ended_at: datetime | None = None


class Transfer(TransferParties):
    """A transfer: its state, the parties, the summary and its events."""

    call_sid: str
    place_in_line: int | None = Field(None, description="while waiting at a busy queue: 1 is next")
    notes: str | None = None
    requested_by: str | None = Field(None, description="who asked for it, as the timeline's `by` says: a "
                                     "username, token:<API token name> or phone:<extension>; whose the notes are")
    summary: Summary
    events: list[TimelineEvent]


class PlaceCall(BaseModel):
    """An outbound call: whom to call, which agent makes it, and why."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    to: str = Field(..., max_length=32, description=(
        "the customer's E.164 number (+15551234567); dialled only if OUTBOUND_CALL_ALLOW names its prefix"))
    agent: str = Field(..., max_length=16, description=(
        "extension of the agent making the call: their phone (or console) rings first, then the customer"))
    reason: str | None = Field(None, max_length=200, description="why the call is made: told to the agent, kept "
                                                                 "with the call")

    @model_validator(mode="after")
    def _a_number(self) -> "PlaceCall":
        # A malformed number is a bad request; one the allow-list does not name is a refusal (409).
        try:
            normalise_number(self.to)
        except DestinationRefused as malformed:
            raise ValueError(str(malformed)) from None
        return self


class CallLeg(BaseModel):
    """One party's connection to a call: the caller's, an agent's, a transfer target's."""

    role: LegRole
    agent: str | None = Field(None, description="extension of the leg's agent (none: the caller, an outside party)")
    status: LegStatus
    end_reason: str | None = None
    created_at: datetime = Field(..., description="when it was dialled or joined")
    answered_at: datetime | None = None
    connected_at: datetime | None = Field(None, description="when it first talked on the call")
    ended_at: datetime | None = None


class TranscriptLine(BaseModel):
    """Words said on the call, as transcribed (card numbers and the like redacted before they were stored)."""

    speaker: Speaker
    words: str
    at: datetime


class TransferSummary(Summary):
    """The summary of one transfer of the call, once written."""

    transfer_id: int


class CallTransfer(TransferParties):
    """A transfer of the call: where it went, where it stands and its summary (its own events: GET
    /api/transfers/<id>)."""

    summary: str | None = Field(None, description="the summary the target heard (or will hear)")
    source: Literal[SummarySource.LLM, SummarySource.FALLBACK] | None = Field(
        None, description="where the summary came from (fallback: written without the LLM); none: not written yet")


class Call(BaseModel):
    """A call, inbound or outbound, whole: where it is, who has it, its legs, transcript, transfers with their
    summaries, and its timeline."""

    call_sid: str = Field(..., description="an inbound call's Twilio CallSid; an outbound call's own id (OB...)")
    direction: Literal[CallDirection.INBOUND, CallDirection.OUTBOUND]
    status: CallStatus
    from_number: str
    caller_attestation: Literal["A", "B", "C", "failed"] | None = Field(None, description=(
        "what an inbound caller's carrier vouched for their number by STIR/SHAKEN, as Twilio verified it: A (the "
        "caller and their right to the number known), B, C; failed: Twilio could not verify it; none: the call "
        "came with nothing to verify"))
    to_number: str
    queue: str | None = None
    agent: str | None = Field(None, description="extension of the agent who has the call")
    reason: str | None = Field(None, description="what the caller said in the IVR, or why an outbound call is made")
    created_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    legs: list[CallLeg] = Field(..., description="every leg, in the order they were made")
    transcript: list[TranscriptLine] = Field(..., description="oldest first")
    summaries: list[TransferSummary] = Field(..., description="each transfer's summary once written, oldest first")
    transfers: list[CallTransfer] = Field(..., description="oldest first")
    events: list[TimelineEvent]


# A moment a filter names (calls/history.py reads it).
MOMENT = "a date (2026-12-07) or an ISO 8601 time (2026-12-07T09:30:00, UTC unless it carries an offset: +01:00)"


class CallSearch(BaseModel):
    """Which calls to list; every filter given narrows the list (none: every call), newest first, 50 a page."""

    model_config = ConfigDict(extra="forbid")  # an unknown parameter is a 400, never silently ignored

    number: str | None = Field(None, max_length=64, description=(
        "digits anywhere in the customer's number (the caller's, or the number an outbound call dialled): 5550123 "
        "finds +15555550123; spaces, dashes, dots and brackets are ignored, a leading + kept"))
    agent: str | None = Field(None, max_length=64, description=(
        "the call's agent: an extension (101), or a part of their name (alice), case aside"))
    queue: str | None = Field(None, max_length=64, description="the call's queue, by name (case aside)")
    status: CallStatus | None = Field(None, description="the call's status now: its outcome once it ended")
    since: str | None = Field(None, max_length=64, description=f"calls started at or after: {MOMENT}, a day from its start")
    until: str | None = Field(None, max_length=64, description=f"calls started at or before: {MOMENT}, a day to its end")
    cursor: str | None = Field(None, max_length=200, description="the next_cursor of the page before")


class VoicemailSummary(BaseModel):
    """The message a caller left (its audio stays at Twilio: the supervisor's voicemail inbox plays it)."""

    seconds: int | None = Field(None, description="how long it lasts")
    handled_at: datetime | None = None
    handled_by: str | None = Field(None, description="the user who marked it handled")


class CallSummary(BaseModel):
    """A call as the history lists it."""

    call_sid: str
    direction: Literal[CallDirection.INBOUND, CallDirection.OUTBOUND]
    status: CallStatus
    number: str = Field(..., description="the customer's number: the caller's, or the one an outbound call dialled")
    queue: str | None = None
    agent: str | None = Field(None, description="extension of the agent who had the call")
    agent_name: str | None = None
    created_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: int | None = Field(None, description="from its start to its end; none while it is live")
    voicemail: VoicemailSummary | None = Field(None, description="the caller's message, if they left one")


class CallList(BaseModel):
    """A page of calls, newest first; next_cursor asks for the page after it (none: this is the last)."""

    calls: list[CallSummary]
    next_cursor: str | None = None


class Callback(BaseModel):
    """A caller's request to be called back: its place in line, attempts and what came of them."""

    id: int
    state: CallbackState
    number: str
    queue: str | None = None
    reason: str | None = Field(None, description="what the caller said in the IVR")
    attempts: int = Field(..., description="attempts that rang the customer")
    requested_at: datetime = Field(..., description="its place in line: when the caller queued")
    next_attempt_at: datetime | None = Field(None, description="while pending: when it may be offered next")
    end_reason: str | None = Field(None, description="reached, not_answered, number_not_allowed or queue_gone")
    ended_at: datetime | None = None
    call_sid: str | None = Field(None, description="the call on which the callback was asked for")
    latest_attempt_call_sid: str | None = Field(None, description="the outbound call of the latest attempt")


class CallbackQuery(BaseModel):
    """Which callbacks to list."""

    model_config = ConfigDict(extra="forbid")  # an unknown parameter is a 400, never silently ignored

    state: CallbackState | None = Field(None, description="only callbacks in this state")


class CallbackList(BaseModel):
    """Callbacks: calling and pending in their place in line, then failed and completed, newest first."""

    callbacks: list[Callback]


class Agent(BaseModel):
    """An agent of the roster: who, what they can take, and their presence and activity, each with since when."""

    extension: str
    name: str
    sip_uri: str | None = Field(None, description="their softphone; none: they work in the browser's console")
    skills: list[str]
    presence: Presence = Field(..., description="the agent's own choice (or away after missed calls)")
    presence_since: datetime | None = Field(None, description="when the presence last changed (none: not known)")
    activity: Activity = Field(..., description="what the service has them doing")
    activity_since: datetime | None = Field(None, description="when the activity last changed (none: not known)")
    missed_in_row: int = Field(..., description="calls missed in a row since they were last available")


class AgentList(BaseModel):
    """Every agent, by extension."""

    agents: list[Agent]


class SetPresence(BaseModel):
    """The presence to set: as a supervisor does from the board (offline is the agent's own to say)."""

    model_config = ConfigDict(extra="forbid")

    presence: Literal[Presence.AVAILABLE, Presence.AWAY]


class Queue(BaseModel):
    """A queue: how callers reach it, whom it needs, when it is open, and who waits and who could answer now."""

    name: str
    code: str = Field(..., description="the key a caller presses in the IVR")
    skill: str = Field(..., description="the skill its agents need")
    speech_hints: list[str] = Field(..., description="words that choose it when a caller says why they call")
    priority: int = Field(..., description="higher is offered first to an agent who serves several queues")
    default: bool = Field(..., description="where a caller who chooses nothing goes")
    wrap_up_seconds: int | None = Field(None, description="its own; none: WRAP_UP_SECONDS")
    announce_seconds: int | None = Field(None, description="its own; none: QUEUE_ANNOUNCE_SECONDS")
    max_wait_seconds: int | None = Field(None, description="its own; none: MAX_QUEUE_WAIT_SECONDS")
    callback_attempts: int | None = Field(None, description="its own; none: CALLBACK_ATTEMPTS")
    overflow: str | None = Field(None, description="past the longest wait: options, voicemail, callback or a "
                                                   "queue's name; none: options")
    timezone: str = Field(..., description="the time zone of its hours (CENTRE_TIMEZONE unless it has its own)")
    hours: dict[str, list[str]] | None = Field(
        None, description="weekly hours by day ({\"mon\": [\"09:00-17:00\"]}); none: open all week")
    holidays: list[str] = Field(..., description="days it is closed all day (ISO dates)")
    open_now: bool
    waiting: int = Field(..., description="callers queued there now, and transfers waiting for it")
    agents_available: int = Field(..., description="available, idle agents with its skill now")


class QueueList(BaseModel):
    """Every queue, by IVR code."""

    queues: list[Queue]


class Error(BaseModel):
    """What went wrong, in words."""

    error: str


class FiguresQuery(BaseModel):
    """Which queue's figures."""

    model_config = ConfigDict(extra="forbid")  # an unknown parameter is a 400, never silently ignored

    queue: str | None = Field(None, max_length=64, description="only this queue's figures (its name)")


class QueueFigures(BaseModel):
    """One queue's line now and its day so far (the centre's day in CENTRE_TIMEZONE, by the calls' arrival)."""

    queue: str
    waiting: int = Field(..., description="callers in its line now: queued, or an agent's phone ringing for them")
    longest_wait_seconds: int | None = Field(None, description="how long the first caller in line has held their "
                                                               "place; none when nobody waits")
    longest_waiting_since: datetime | None = Field(None, description="since when they have held it")
    answered: int = Field(..., description="calls today an agent answered")
    abandoned: int = Field(..., description="callers today who hung up after joining the queue, never answered")
    voicemail: int = Field(..., description="calls today that ended with a message, never answered")
    callbacks: int = Field(..., description="calls today that ended with a callback asked for, never answered")
    average_answer_seconds: int | None = Field(
        None, description="mean time from first joining a queue to an agent's answer, of the calls answered today")
    service_level: int | None = Field(
        None, description="percent: answered within service_level_seconds / (answered + callers who left the "
                          "queue unanswered after waiting longer); none when no call counts")
    service_level_seconds: int = Field(..., description="the threshold, SERVICE_LEVEL_SECONDS")
    answered_within: int = Field(..., description="calls today answered within the threshold")
    service_level_calls: int = Field(..., description="the calls the service level counts")


class QueueFiguresList(BaseModel):
    """Every queue's figures (or the one asked for), by name."""

    day_started_at: datetime = Field(..., description="the centre's midnight that today's figures count from")
    at: datetime = Field(..., description="the moment the figures were read")
    queues: list[QueueFigures]
