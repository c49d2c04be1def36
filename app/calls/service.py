"""A caller's way through the service: arrival, IVR, the queue, the room, voicemail, the end."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, func, select

from app.agents import service as agents
from app.calls import card_pause, web_callers
from app.calls.inputs import (
    Arrival,
    BridgeEnd,
    FallbackReport,
    IvrAnswer,
    Recording,
    TranscriptChunk,
)
from app.clock import utcnow
from app.database import insert_now, read_configuration
from app.events import record_event
from app.hours import closed_words as hours_words
from app.kinds import Speaker
from app.logs import get_logger
from app.models import Call, CallStatus, Event, Leg, LegRole, LegStatus, Overflow, Queue, TransferState, Utterance
from app.primitives.availability import end_due_wrap_ups
from app.primitives.context import Telephony
from app.primitives.effects import close_room, hang_up, open_room
from app.primitives.legs import (
    WAITING_STATUSES,
    caller_leg,
    close_leg,
    lock_call,
    ringing_leg,
)
from app.primitives.moves import placement_answered, redirect_leg
from app.routing.callbacks import callback_possible, request_callback
from app.routing.ivr import choose_queue, default_queue, in_line_words
from app.routing.line import place_in_queue, recent_wait, wait_words
from app.routing.service import offer_call
from app.states.calls import call_by_sid, move_call, new_call
from app.states.transfers import active_transfer, place_in_line
from app.summaries.redaction import redact, redact_run
from app.telephony.outcomes import CallProgress
from app.telephony.sip import call_room_user, leg_identity, room_name
from app.transfers.parties import Prompt, caller_hears_hold
from app.transfers.service import caller_left_during_transfer, expire_stale_transfer

log = get_logger("switchboard.calls")

# Statuses that end a call but say more than "completed".
KEEP_FINAL = (CallStatus.VOICEMAIL, CallStatus.CALLBACK_REQUESTED)
# Callers who may answer the options (voicemail, a callback): waiting in a queue, or at a closed one.
AT_THE_OPTIONS = (*WAITING_STATUSES, CallStatus.AFTER_HOURS)
# How often a caller at a closed queue who presses nothing hears the options before goodbye.
CLOSED_OPTIONS_TIMES = 2

BUSY_OPTIONS = ("All of our agents are still busy. To leave a message, press 1. To have us call you back, press 2. "
                "To keep holding, press 3 or stay on the line.")
CLOSED_OPTIONS = "To leave a message, press 1. To have us call you back, press 2."
# Without the callback: only to a number outbound calls may dial (OUTBOUND_CALL_ALLOW) is one offered.
BUSY_OPTIONS_NO_CALLBACK = ("All of our agents are still busy. To leave a message, press 1. "
                            "To keep holding, press 3 or stay on the line.")
CLOSED_OPTIONS_NO_CALLBACK = "To leave a message, press 1."


def receive_call(t: Telephony, arrival: Arrival) -> tuple[Call, int | None]:
    """A call arrived on the number: record it (once, however often Twilio asks). With it, the id of its caller's
    last call that reached a queue and ended within RESUME_WINDOW_SECONDS (calls/resume.py), or None; asked by
    the same statement, and only of a call recorded now."""
    window = t.settings.resume_window_seconds
    # With RESUME_REQUIRES_ATTESTATION only a number its carrier vouched for (STIR/SHAKEN A) may resume a call.
    vouched = arrival.attestation == "A" or not t.settings.resume_requires_attestation
    since = utcnow() - timedelta(seconds=window) if window > 0 and arrival.from_number and vouched else None
    call, last_call_id = new_call(t.session, arrival.call_sid, arrival.from_number, arrival.to_number,
                                  arrival.call_token, attestation=arrival.attestation, last_call_since=since)
    if call is None:
        # Twilio asked again (a retry of an answer it never received): the call as it is, nothing written.
        log.info("webhook_repeated")
        return call_by_sid(t.session, arrival.call_sid), None
    if web_callers.is_web_caller(call.from_number):
        web_callers.arrived(t, call)
    return call, last_call_id


def transcribed(t: Telephony, call: Call) -> bool:
    """Whether the call's words are transcribed (TRANSCRIPTION: every call, none, or some queues')."""
    return t.settings.transcribes_queue(call.queue.name if call.queue else None)


_queues = Queue.__table__.c
_IVR_MENU = select(_queues.name, _queues.dtmf_code, _queues.speech_hints).order_by(_queues.dtmf_code)


def list_queues(t: Telephony) -> list[Queue]:
    """Queues in the order the IVR reads them."""
    return agents.list_queues(t.session)


def ivr_menu(t: Telephony) -> list:
    """What the IVR's greeting reads out, asked of every new call: each queue's name, key and speech hints, in
    the order of its key (rows, not Queue objects: nothing is changed through them)."""
    return read_configuration(t.session, "ivr_menu", lambda: t.session.execute(_IVR_MENU).all())


@dataclass(frozen=True)
class IvrOutcome:
    """What the IVR does next: ask again (attempt), or the call was queued, or its queue is closed."""

    ask_again: bool
    attempt: int = 1
    closed: bool = False


def handle_ivr_input(t: Telephony, call: Call, answer: IvrAnswer, attempt: int) -> IvrOutcome:
    """Route on what the caller pressed or said; ask again a bounded number of times, then the default queue."""
    if call.status != CallStatus.IVR:
        return IvrOutcome(ask_again=False)
    queues = list_queues(t)
    digits = answer.digits
    speech = redact(answer.speech)
    queue = choose_queue(queues, digits, speech)
    call.ivr_attempts = attempt
    if queue is None and attempt < t.settings.ivr_max_attempts:
        record_event(t.session, call, "ivr_not_understood", attempt=attempt, digits=digits, speech=speech)
        return IvrOutcome(ask_again=True, attempt=attempt + 1)
    how = "dtmf" if digits else "speech" if speech else "none"
    if queue is None:
        queue = default_queue(queues)
        how = f"default after {how}"
    # A web caller's typed reason stands unless they said one (calls/web_callers.py).
    call.ivr_reason = speech or call.ivr_reason or (f"pressed {digits}" if digits else None)
    if queue is None:
        record_event(t.session, call, "ivr_no_queues")
        raise RuntimeError("no queues are configured: load a roster (flask roster load)")
    # Both at once, the key and the loaded queue: written with the step's next flush, with the call's other changes.
    call.queue_id, call.queue = queue.id, queue
    record_event(t.session, call, "ivr_completed", queue=queue.name, chosen_by=how, reason=call.ivr_reason)
    if reached_closed_queue(t, call):
        return IvrOutcome(ask_again=False, closed=True)
    enqueue_call(t, call)
    return IvrOutcome(ask_again=False)


def reached_closed_queue(t: Telephony, call: Call) -> bool:
    """Whether the call's queue is outside its business hours now; if so the caller is never queued: they are
    after hours, told when it opens again, and offered voicemail or a callback (`queue_closed` on the timeline)."""
    now = utcnow()
    hours = call.queue.opening_hours(t.settings.centre_timezone)
    if hours.is_open(now):
        return False
    opens = hours.next_opening(now)
    move_call(t.session, call, CallStatus.AFTER_HOURS, "queue_closed", queue=call.queue.name,
              opens_at=opens.isoformat() if opens else None)
    return True


def closed_words(t: Telephony, call: Call) -> str:
    """What a caller at a closed queue hears: "Billing is closed. We open again Monday at 9 AM." """
    now = utcnow()
    return hours_words(call.queue.name, call.queue.opening_hours(t.settings.centre_timezone).next_opening(now), now)


def options_words(t: Telephony, call: Call) -> str:
    """The options as the caller hears them: at a closed queue, when it opens, voicemail or a callback; while
    waiting, that everyone is still busy, voicemail, a callback, or more waiting."""
    callback = callback_possible(t, call)
    if call.status == CallStatus.AFTER_HOURS:
        return f"{closed_words(t, call)} {CLOSED_OPTIONS if callback else CLOSED_OPTIONS_NO_CALLBACK}"
    return BUSY_OPTIONS if callback else BUSY_OPTIONS_NO_CALLBACK


def enqueue_call(t: Telephony, call: Call, *, since: datetime | None = None) -> None:
    """Put the call in its queue, in line from SINCE (a resumed caller's old place) or now: make its room, then
    ring the first agent."""

    now = utcnow()
    call.queued_at = since or now
    call.first_queued_at = call.first_queued_at or now  # the moment of its first call_queued event
    call.room_name = room_name(t.settings, call_room_user(call.id))
    move_call(t.session, call, CallStatus.QUEUED, "call_queued", queue=call.queue.name, room=call.room_name)
    open_room(t, call, call.room_name, metadata=json.dumps({"call_sid": call.call_sid}))
    if offer_call(t, call) is None:
        record_event(t.session, call, "no_agent_available", queue=call.queue.name)


class CallerNext(StrEnum):
    """Where the caller's leg goes next; the caller's webhooks turn it into TwiML."""

    ROOM = "room"  # into the call's LiveKit room
    RECONNECT = "reconnect"  # back into the room after losing it, told so
    HOLD = "hold"  # music, then the hold loop again
    OPTIONS = "options"  # voicemail, a callback or more waiting
    VOICEMAIL = "voicemail"  # straight to recording a message (the queue's overflow)
    CALLBACK = "callback"  # a callback was asked for them (the queue's overflow): told so, goodbye
    OVERFLOWED = "overflowed"  # moved to the queue's overflow queue: told so, then music
    IVR = "ivr"  # asked again why they call
    GOODBYE = "goodbye"  # the call is over
    NOTHING = "nothing"  # the caller hung up: Twilio ignores the answer


class CallerChoice(StrEnum):
    """The caller's answer to the options menu."""

    VOICEMAIL = "voicemail"
    CALLBACK = "callback"
    WAIT = "wait"


def caller_waited(t: Telephony, call: Call) -> CallerNext:
    """A stretch of music ended: more music, the options, the room, or goodbye."""
    if call.status == CallStatus.AFTER_HOURS:
        return _closed_options_again(t, call)
    if call.status == CallStatus.CONNECTED:
        # The caller should be in the room (a redirect was lost): send them there.
        return CallerNext.ROOM
    if call.is_final:
        return CallerNext.GOODBYE
    if call.status == CallStatus.ON_HOLD:
        caller_hears_hold(t, call)
        # Giving up on a stale transfer may move the call (back to its agent, or to the queue again): the call
        # is the step's own object, moved in memory and written at the commit. Never refresh it here: a
        # refresh expires the object first, which drops the move not yet flushed.
        expire_stale_transfer(t, call)
        return CallerNext.ROOM if call.status == CallStatus.CONNECTED else CallerNext.HOLD
    if call.status not in (CallStatus.QUEUED, CallStatus.RINGING_AGENT):
        return CallerNext.HOLD
    # Agents whose after-call work is over are free again (the wrap-up timer's job does it too).
    end_due_wrap_ups(t)
    # offer_call keeps a ringing phone, and replaces a browser offer past its ring timeout.
    offer_call(t, call)
    # The wait limit counts from when the caller joined this queue: queued, or moved here by an overflow.
    moved = _overflowed_to_a_queue(t, call)
    waited = utcnow() - (moved.created_at if moved else (call.queued_at or call.created_at))
    limit = call.queue.setting("max_wait_seconds", t.settings.max_queue_wait_seconds)
    if ringing_leg(call) is None and waited >= timedelta(seconds=limit):
        return _overflow(t, call, int(waited.total_seconds()), moved)
    return CallerNext.HOLD


# What the caller's answer to the options makes of their leg.
_CHOSEN = {CallerChoice.VOICEMAIL: CallerNext.VOICEMAIL, CallerChoice.CALLBACK: CallerNext.CALLBACK,
           CallerChoice.WAIT: CallerNext.HOLD}


def _overflow(t: Telephony, call: Call, waited: int, moved: Event | None) -> CallerNext:
    """The caller waited past their queue's longest wait: what its overflow says (Overflow, or a queue)."""
    queue = call.queue
    overflow = queue.overflow or Overflow.OPTIONS
    if overflow == Overflow.CALLBACK and not callback_possible(t, call):
        # Named: no callback the service could not make is promised; the options stand in for it.
        record_event(t.session, call, "queue_overflow_fallback", **{"from": queue.name, "to": overflow},
                     reason="the caller's number may not be dialled (OUTBOUND_CALL_ALLOW)", fallback=Overflow.OPTIONS)
        record_event(t.session, call, "queue_options_offered", waited_seconds=waited)
        return CallerNext.OPTIONS
    if overflow in (Overflow.VOICEMAIL, Overflow.CALLBACK):
        record_event(t.session, call, "queue_overflowed", **{"from": queue.name, "to": overflow},
                     waited_seconds=waited)
        # As if the caller had pressed 1 or 2 at the options: one way to a voicemail and to a callback.
        return _CHOSEN[caller_chose(t, call, "1" if overflow == Overflow.VOICEMAIL else "2")]
    if overflow != Overflow.OPTIONS and _overflow_to_queue(t, call, overflow, waited, moved):
        return CallerNext.OVERFLOWED
    record_event(t.session, call, "queue_options_offered", waited_seconds=waited)
    return CallerNext.OPTIONS


def _overflow_to_queue(t: Telephony, call: Call, name: str, waited: int, moved: Event | None) -> bool:
    """Move the caller to the queue NAME, keeping their queued time (their place among its callers) and ringing
    its next agent; False, with the reason on the timeline, when they cannot go there (the options follow)."""
    origin = call.queue
    if moved is not None:
        # At most one overflow per call: two queues that overflow into each other never pass a caller round.
        record_event(t.session, call, "queue_overflow_skipped", **{"from": origin.name, "to": name},
                     reason=f"the call overflowed once already, from {moved.detail.get('from')}")
        return False
    target = t.session.scalar(select(Queue).where(Queue.name == name))
    reason = None
    if target is None:
        reason = f"no queue is named {name}"
    elif not target.opening_hours(t.settings.centre_timezone).is_open(utcnow()):
        reason = f"{name} is closed"
    if reason is not None:
        # Named in the log (a warning) and on the timeline: the options stand in for the overflow.
        record_event(t.session, call, "queue_overflow_fallback", **{"from": origin.name, "to": name},
                     reason=reason, fallback=Overflow.OPTIONS)
        return False
    call.queue_id, call.queue = target.id, target  # written with the step's next flush
    record_event(t.session, call, "queue_overflowed", **{"from": origin.name, "to": target.name},
                 waited_seconds=waited)
    if offer_call(t, call) is None:
        record_event(t.session, call, "no_agent_available", queue=target.name)
    return True


def _overflowed_to_a_queue(t: Telephony, call: Call) -> Event | None:
    """The call's move by overflow to another queue, if it had one."""
    events = t.session.scalars(select(Event).where(Event.call_id == call.id, Event.name == "queue_overflowed"))
    return next((event for event in events if event.detail.get("to") not in set(Overflow)), None)


def overflow_words(t: Telephony, call: Call) -> str:
    """What a caller moved by overflow hears: where they are going now."""
    moved = _overflowed_to_a_queue(t, call)
    origin = moved.detail.get("from") if moved else None
    return (f"Everyone at {origin} is still busy, so we are passing your call to {call.queue.name}, "
            "keeping your place. Please hold.")


def caller_kept_waiting(t: Telephony, call: Call) -> CallerNext:
    """The caller chose neither voicemail nor a callback: more hold music, or at a closed queue, where there
    is nobody to wait for, the options once more and then goodbye."""
    if call.status == CallStatus.AFTER_HOURS:
        return _closed_options_again(t, call)
    return CallerNext.HOLD


def _closed_options_again(t: Telephony, call: Call) -> CallerNext:
    heard = t.session.scalar(select(func.count(Event.id)).where(Event.call_id == call.id,
                                                                 Event.name == "queue_closed_options_again"))
    if heard + 1 < CLOSED_OPTIONS_TIMES:
        record_event(t.session, call, "queue_closed_options_again", queue=call.queue.name)
        return CallerNext.OPTIONS
    record_event(t.session, call, "queue_closed_goodbye", queue=call.queue.name)
    return CallerNext.GOODBYE


def hold_words(t: Telephony, call: Call) -> str | None:
    """What the caller hears before the next stretch of music: while their transfer waits at a busy queue,
    where they are in its line; while queued, their place and the queue's recent wait, when first queued and
    then every QUEUE_ANNOUNCE_SECONDS; nothing otherwise (and never a number the service does not know)."""
    transfer = active_transfer(call)
    if transfer is not None and transfer.state == TransferState.WAITING and transfer.target_queue is not None:
        place = place_in_line(t.session, transfer)
        return (f"You are being transferred to {transfer.target_queue.name}. Everyone there is busy; you are "
                f"{in_line_words(place)}. Please hold.")
    place = place_in_queue(t.session, call)
    if place is None or not _announcement_due(t, call, _overflowed_to_a_queue(t, call)):
        return None
    wait = recent_wait(t.session, call.queue_id, utcnow())
    record_event(t.session, call, "queue_position_said", place=place,
                 recent_wait_seconds=int(wait.total_seconds()) if wait is not None else None)
    words = f"You are {in_line_words(place)}."
    if wait is not None:
        words += f" Callers have recently waited {wait_words(wait)}."
    return words + " Please hold."


def _announcement_due(t: Telephony, call: Call, moved: Event | None) -> bool:
    # At the first hold turn since the caller was queued (or moved to this queue by an overflow), then every
    # QUEUE_ANNOUNCE_SECONDS (0: never).
    every = call.queue.setting("announce_seconds", t.settings.queue_announce_seconds)
    if every <= 0:
        return False
    last = t.session.scalar(select(func.max(Event.created_at)).where(Event.call_id == call.id,
                                                                     Event.name == "queue_position_said"))
    since = max(call.queued_at or call.created_at, moved.created_at if moved else call.created_at)
    return last is None or last < since or utcnow() - last >= timedelta(seconds=every)


def caller_chose(t: Telephony, call: Call, digits: str) -> CallerChoice:
    """The caller's answer to the options: 1 voicemail, 2 a callback (a Callback in line from when they
    queued: routing/callbacks.py), anything else more waiting."""
    if digits == "1":
        record_event(t.session, call, "voicemail_started")
        return CallerChoice.VOICEMAIL
    if digits == "2" and callback_possible(t, call):
        move_call(t.session, call, CallStatus.CALLBACK_REQUESTED)
        _cancel_ringing(t, call)
        request_callback(t, call)
        return CallerChoice.CALLBACK
    if digits == "2":
        # Not offered to this caller (options_words), so not a choice they could make.
        record_event(t.session, call, "callback_not_possible", why="the caller's number may not be dialled")
    return CallerChoice.WAIT


def save_voicemail(t: Telephony, call: Call, recording: Recording) -> None:
    """Keep the recording with the call."""
    if not recording.url:
        record_event(t.session, call, "voicemail_empty")
        return
    # The recording's address stays in the row: the pages play it through the service (calls/voicemails.py).
    call.voicemail_url = recording.url
    call.voicemail_seconds = recording.duration_seconds
    move_call(t.session, call, CallStatus.VOICEMAIL)
    _cancel_ringing(t, call)
    record_event(t.session, call, "voicemail_recorded", duration=recording.duration_seconds)


def connect_caller(t: Telephony, call: Call) -> str:
    """The caller's leg is about to dial into the call's room; returns the room."""
    leg = caller_leg(call)
    if leg is not None:
        leg.room_name = call.room_name
        leg.livekit_identity = leg_identity(leg.id)
    return call.room_name


def caller_leg_id(call: Call) -> int:
    """The id of the call's caller leg (its <Dial> into LiveKit carries it as caller ID)."""
    return caller_leg(call).id


def caller_placement(call: Call, asked: str | None = None) -> int:
    """The placement number the caller's <Dial> action URL carries: the leg's own, or ASKED, the one the
    redirect being answered made, when a later move has overtaken it (moves.placement_answered)."""
    leg = caller_leg(call)
    return placement_answered(leg, asked) if leg else 0


def call_for_fallback(t: Telephony, call_sid: str, report: FallbackReport) -> Call | None:
    """The call a fallback request belongs to, locked, with the failure in its timeline; None for a new call."""
    call_id = t.session.scalar(select(Call.id).where(Call.call_sid == call_sid))
    if call_id is None:
        return None
    call = lock_call(t, call_id)
    record_event(t.session, call, "twilio_fallback", error_code=report.error_code, error_path=report.error_path)
    return call


def save_last_resort_message(t: Telephony, call_sid: str, recording: Recording) -> None:
    """A message recorded after a step kept failing: keep it with its call, if the call is known."""
    call = call_by_sid(t.session, call_sid) if call_sid else None
    if call is None or not recording.url:
        log.warning("last_resort_message_without_call", recording_sid=recording.sid)
        return
    record_event(t.session, call, "last_resort_message")
    save_voicemail(t, call, recording)


def caller_place(call: Call) -> CallerNext:
    """Where the database says the caller belongs now: the room, hold, the IVR, or goodbye."""
    if call.is_final:
        return CallerNext.GOODBYE
    if call.status == CallStatus.CONNECTED:
        return CallerNext.ROOM
    if call.status == CallStatus.IVR:
        return CallerNext.IVR
    if call.status == CallStatus.AFTER_HOURS:
        return CallerNext.OPTIONS
    return CallerNext.HOLD


def caller_bridge_ended(t: Telephony, call: Call, ended: BridgeEnd, placement: str) -> CallerNext:
    """The caller's <Dial> ended: hung up (nothing), a stale action, or the room lost (reconnect, then options)."""
    leg = caller_leg(call)
    if ended.call_over or leg is None:
        return CallerNext.NOTHING
    if str(leg.placement) != placement or call.status != CallStatus.CONNECTED:
        # Our own redirect ended this <Dial> (Twilio ignores the answer), or a
        # redirect failed after the placement moved on: the answer is then
        # what puts the caller where they belong.
        return caller_place(call)
    lost = sum(1 for event in call_events(t, call) if event.name == "caller_bridge_lost")
    record_event(t.session, call, "caller_bridge_lost", dial_status=ended.dial, attempt=lost + 1)
    return CallerNext.RECONNECT if lost < 2 else CallerNext.OPTIONS


def call_events(t: Telephony, call: Call):
    """The call's timeline, oldest first."""

    return list(t.session.scalars(select(Event).where(Event.call_id == call.id).order_by(Event.id)))


# A speaker's results this recent, at most this many, are read as one text by the redactor: a card number read
# out in four breaths (four groups of four digits, as printed) is removed from every one of them.
ACROSS_SECONDS = 30
ACROSS_UTTERANCES = 8


# A speaker's latest words, asked with every transcript chunk, so built once.
_RECENT_UTTERANCES = (
    select(Utterance).where(Utterance.call_id == bindparam("call"), Utterance.speaker == bindparam("speaker"),
                            Utterance.created_at >= bindparam("since"))
    .order_by(Utterance.id.desc()).limit(ACROSS_UTTERANCES))


def record_transcription(t: Telephony, call: Call, chunk: TranscriptChunk, agent_leg: Leg | None = None) -> None:
    """Keep a final piece of what a party said as an utterance (redacted): the caller's, or AGENT_LEG's.

    Each party is transcribed on their own leg (the caller on the call, an
    agent on their phone leg); the edge passes only their inbound track.
    """
    speaker = Speaker.AGENT if agent_leg is not None else Speaker.CALLER
    # A card number being read stops the caller's transcription for a while (calls/card_pause.py).
    text = redact(card_pause.screen(t, call, speaker, chunk.text))[:2000]
    if not text:
        return
    # A card number read out in several breaths arrives as several results:
    # the speaker's recent utterances and this one are redacted as one run.
    recent = list(reversed(t.session.scalars(_RECENT_UTTERANCES, {
        "call": call.id, "speaker": speaker, "since": utcnow() - timedelta(seconds=ACROSS_SECONDS)}).all()))
    *earlier, text = redact_run([u.text for u in recent] + [text])
    for utterance, redacted in zip(recent, earlier):
        if utterance.text != redacted:
            utterance.text = redacted
    insert_now(t.session, Utterance(call_id=call.id, speaker=speaker, text=text))


def call_status_changed(t: Telephony, call_sid: str, progress: CallProgress) -> None:
    """The caller's status callback: a final status ends the call everywhere."""
    call_id = t.session.scalar(select(Call.id).where(Call.call_sid == call_sid))
    if call_id is None:
        log.info("status_for_unknown_call", call_status=progress)
        return
    call = lock_call(t, call_id)
    if progress.is_final:
        end_call(t, call, progress)


def end_call(t: Telephony, call: Call, progress: CallProgress) -> None:
    """The caller is gone: end every leg, free the agents, close the rooms, write the final status."""
    caller = caller_leg(call)
    if caller is None or caller.is_final:
        return
    to_hang_up, to_tell = [], []
    for leg in call.legs:
        if leg.is_final:
            continue
        ringing = leg.status in (LegStatus.DIALING, LegStatus.WHISPER)
        if leg.role != LegRole.CALLER and leg.twilio_call_sid:
            # Ringing phones are cancelled; agents on the line hear that the caller hung up.
            (to_hang_up if ringing else to_tell).append(leg)
        reason = "caller_hung_up" if leg.role != LegRole.CALLER else progress.end_reason
        close_leg(t, leg, LegStatus.CANCELED if ringing else LegStatus.ENDED, reason)
    final = call.status if call.status in KEEP_FINAL else (
        CallStatus.COMPLETED if call.answered_at else CallStatus.ABANDONED)
    # WAS: what the caller was doing when the call ended (a caller cut off then may resume: calls/resume.py).
    was = call.status
    move_call(t.session, call, final, "call_ended", status=final, twilio_status=progress, was=was)
    # Carried out after the commit: callbacks from the legs we end find them ended.
    for leg in to_tell:
        redirect_leg(t, leg, t.urls.agent_rejoin(leg.id, Prompt.CALLER_GONE), hang_up_otherwise=True)
    for leg in to_hang_up:
        hang_up(t, call, leg.twilio_call_sid, leg_id=leg.id)
    # Rooms close last, after the legs in them were told: a transfer's consult room with its ending.
    caller_left_during_transfer(t, call)
    close_room(t, call, call.room_name)


def _cancel_ringing(t: Telephony, call: Call) -> None:
    leg = ringing_leg(call)
    if leg is None:
        return
    close_leg(t, leg, LegStatus.CANCELED, "caller_left_queue")
    hang_up(t, call, leg.twilio_call_sid, leg_id=leg.id)


