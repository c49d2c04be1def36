"""What a step does outside the database, recorded while it runs and carried out after its one commit.

A domain step writes where legs belong and records the effects that make
Twilio and LiveKit follow: redirect a leg, hang up a call, close a room.
The request's edge commits once, then carries the effects out in the order
they were recorded (`carry_out`), logging each; a failure is written to the
call's timeline and never undoes the step.

Each effect is also written to the outbox table in the step's own
transaction, and its row is deleted once it has been carried out: a worker
that dies between the commit and its effects leaves the rows, and the
reconciler carries them out (app/jobs/reconciler.py). Effects are safe
to run again, except a dial, which is marked as tried (and committed) before
it goes out and is never dialled twice.

Effects recorded after the last commit are dropped when the session rolls
back (the state they would act on was never stored, nor were their rows);
effects recorded before a commit stay, because what they act on is durable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Union
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, event, func, inspect, select, update
from sqlalchemy.orm import Session

from app import clock
from app.db import savepoint_only
from app.events import record_event
from app.gateways.livekit import LiveKitError
from app.gateways.twilio import TwilioError
from app.logs import get_logger
from app.models import FINAL_LEG_STATUSES, Call, Leg, OutboxEffect, Transfer, utcnow

if TYPE_CHECKING:
    from app.primitives.context import Telephony

log = get_logger("switchboard.effects")


@dataclass(frozen=True)
class _ForCall:
    """What every effect holds first: the call it acts for (its outbox row's, and whose timeline tells of it)."""

    call_id: int

    def still_wanted(self, t: Telephony) -> bool:
        """Whether an effect that must not run twice is still to go out: looked at by carry_out in the transaction
        that marks its row tried, before that commits. Yes, unless the effect says otherwise (a dial)."""
        return True


@dataclass(frozen=True)
class HangUp(_ForCall):
    """Twilio ends a call (a ringing phone is cancelled, an answered one hung up)."""

    call_sid: str
    leg_id: int | None = None

    def run(self, t: Telephony) -> None:
        try:
            _with_one_retry(t, "hang_up", lambda: t.twilio.end_call(self.call_sid))
        except TwilioError as error:
            log.warning("effect_failed", effect="hang_up", leg_id=self.leg_id, error=str(error)[:200])
            record_event(t.session, _call(t, self.call_id), "leg_hangup_failed", leg_id=self.leg_id,
                         twilio_call_sid=self.call_sid, error=str(error)[:200])
            leg = t.session.get(Leg, self.leg_id) if self.leg_id else None
            if leg is not None:
                # The phone may still ring or be on the line; its agent stays
                # LEAVING (legs.close_leg) until Twilio reports the leg over:
                # its status callback, or the reconciler asking Twilio.
                _take_out_of_rooms(t, leg)
            return
        log.info("effect_done", effect="hang_up", leg_id=self.leg_id)


@dataclass(frozen=True)
class Redirect(_ForCall):
    """Twilio fetches URL for a live leg; IF_FAILED / IF_GONE name what the timeline says when it cannot."""

    leg_id: int
    call_sid: str
    url: str
    otherwise: HangUp | None = None  # carried out when the leg did not move
    if_failed: str | None = None
    if_gone: str | None = None

    def run(self, t: Telephony) -> None:
        path = urlsplit(self.url).path
        try:
            moved = _with_one_retry(t, "redirect", lambda: t.twilio.redirect_call(self.call_sid, self.url))
        except TwilioError as error:
            log.warning("effect_failed", effect="redirect", leg_id=self.leg_id, to=path, error=str(error)[:200])
            self._record(t, "leg_redirect_failed", self.if_failed, error=str(error)[:200])
            if self.otherwise is None:
                # The leg stays where it was: if that is a room, LiveKit takes
                # it out, its <Dial> ends, and the Dial action (a stale
                # placement) answers with where the leg belongs now.
                leg = t.session.get(Leg, self.leg_id)
                if leg is not None:
                    _take_out_of_rooms(t, leg)
        else:
            if moved:
                log.info("effect_done", effect="redirect", leg_id=self.leg_id, to=path)
                return
            log.info("effect_missed", effect="redirect", leg_id=self.leg_id, to=path, reason="call not in progress")
            self._record(t, "leg_redirect_missed", self.if_gone, reason="call no longer in progress")
        if self.otherwise is not None:
            self.otherwise.run(t)

    def _record(self, t: Telephony, name: str, named: str | None, **detail) -> None:
        call = _call(t, self.call_id)
        record_event(t.session, call, name, leg_id=self.leg_id, **detail)
        if named:
            record_event(t.session, call, named, leg_id=self.leg_id)


def _with_one_retry(t: Telephony, effect: str, operation, *, only_unprocessed: bool = False):
    """OPERATION, run once more when Twilio's failure is worth retrying and the request may still wait.

    Only requests that are safe to repeat come here: redirecting a call to
    the same URL, ending a call, stopping a named transcription; and, with
    ONLY_UNPROCESSED, a new call, repeated only after a 429 (which Twilio
    never processed). Each retry spends one of the request's retries (Twilio
    gives a webhook 15 s; a retry after a timeout costs the REST timeout again).
    """
    try:
        return operation()
    except TwilioError as error:
        retry = error.status == 429 if only_unprocessed else error.worth_retrying
        # Too many requests: "retry ... with an exponential backoff and jitter" (twilio.com/docs/errors/20429);
        # one retry here, so one back-off, within the webhook's budget. Other failures are retried at once.
        waited = backoff_seconds() if error.status == 429 else 0.0
        if not retry or t.retries_left <= 0 or not t.time_for(waited + RETRY_NEEDS_SECONDS):
            raise
        t.retries_left -= 1
        log.warning("effect_retried", effect=effect, error=str(error)[:200], backoff_seconds=round(waited, 3))
        if waited:
            clock.sleep(waited)
        return operation()


# A 429's one retry waits BACKOFF_SECONDS, give or take half of it (jitter: several workers do not retry together).
BACKOFF_SECONDS = 1.0
# A retry is made only when at least this much of a webhook's budget is left after its back-off.
RETRY_NEEDS_SECONDS = 1.0


def backoff_seconds() -> float:
    """How long to wait before retrying a request Twilio turned away with 429: BACKOFF_SECONDS +/- 50 %."""
    return BACKOFF_SECONDS * random.uniform(0.5, 1.5)


def _take_out_of_rooms(t: Telephony, leg: Leg) -> None:
    """LiveKit disconnects a Twilio leg's SIP participant from every room of its call (harmless where it is not).

    The last resort when Twilio would not move or end the leg: its <Dial>
    into the room ends with the participant, and Twilio asks the Dial's
    action URL, whose answer puts the leg where the database says it belongs.
    """
    if not leg.twilio_call_sid or not leg.livekit_identity or t.livekit_gateway is None:
        return
    call = leg.call
    rooms = {room for room in (call.room_name, *(transfer.consult_room for transfer in call.transfers)) if room}
    for room in sorted(rooms):
        RemoveFromRoom(call.id, room, leg.livekit_identity).run(t)
    record_event(t.session, call, "leg_taken_out_of_rooms", leg_id=leg.id, rooms=sorted(rooms))


@dataclass(frozen=True)
class CloseRoom(_ForCall):
    """LiveKit deletes a room (its SIP participants' calls end with it)."""

    room: str
    transfer_id: int | None = None

    def run(self, t: Telephony) -> None:
        _ask_livekit(t, "close_room", lambda: t.livekit.delete_room(self.room), self.call_id, "room_close_failed",
                     self.transfer_id, room=self.room)


@dataclass(frozen=True)
class OpenRoom(_ForCall):
    """LiveKit creates a room with the service's timeouts (if it fails, the dispatch rule makes it on first join)."""

    room: str
    empty_timeout_s: int
    metadata: str = ""
    transfer_id: int | None = None

    def run(self, t: Telephony) -> None:
        # Failed, a fallback named as one: the dispatch rule creates the room
        # when the first SIP leg arrives, with the rule's own timeouts.
        _ask_livekit(t, "open_room", lambda: self._create(t), self.call_id, "room_create_failed_fallback_dispatch_rule",
                     self.transfer_id, room=self.room)

    def _create(self, t: Telephony) -> None:
        t.livekit.ensure_room(self.room, empty_timeout_s=self.empty_timeout_s, departure_timeout_s=self.empty_timeout_s,
                              metadata=self.metadata)


@dataclass(frozen=True)
class RemoveFromRoom(_ForCall):
    """LiveKit disconnects a participant from a room (a browser agent whose part there is over)."""

    room: str
    identity: str

    def run(self, t: Telephony) -> None:
        _ask_livekit(t, "remove_from_room", lambda: t.livekit.remove_participant(self.room, self.identity),
                     self.call_id, "participant_remove_failed", None, room=self.room, identity=self.identity,
                     answered=lambda present: {"was_there": bool(present)})


def _ask_livekit(t: Telephony, effect: str, ask: Callable[[], Any], call_id: int, failed: str,
                 transfer_id: int | None, *, room: str, answered: Callable[[Any], dict] = lambda _answer: {},
                 **detail: Any) -> None:
    """A LiveKit effect on ROOM: ASK, then logged as done (with what ANSWERED makes of LiveKit's answer); when
    LiveKit fails, logged and FAILED on the call's timeline (the transfer's, if it has one), with DETAIL."""
    try:
        answer = ask()
    except LiveKitError as error:
        log.warning("effect_failed", effect=effect, room=room, error=str(error)[:200])
        transfer = t.session.get(Transfer, transfer_id) if transfer_id else None
        record_event(t.session, _call(t, call_id), failed, transfer=transfer, room=room, **detail,
                     error=str(error)[:200])
        return
    log.info("effect_done", effect=effect, room=room, **detail, **answered(answer))


@dataclass(frozen=True)
class StartSummary(_ForCall):
    """The transfer's summary starts in the background (it reads the transfer, so only once it is stored)."""

    transfer_id: int

    def run(self, t: Telephony) -> None:
        t.summarise_later(self.transfer_id)
        log.info("effect_done", effect="start_summary", transfer_id=self.transfer_id)


@dataclass(frozen=True)
class SwitchTranscription(_ForCall):
    """Twilio stops a call's named real-time transcription (START false), or starts it again as its TwiML did.

    What came of it goes on the call's timeline. A stop Twilio refuses is a
    named fallback (`transcription_pause_failed`): the transcription runs
    on, the pause is forgotten (the next card digits try again), and the
    redactor still removes card numbers before anything is stored. A start
    that fails for a reason worth retrying is tried again at the next resume
    pass; otherwise the transcription stays off for the rest of the call.
    """

    call_sid: str
    name: str
    start: bool
    reason: str = ""
    status_callback_url: str = ""
    language_code: str = ""
    inbound_track_label: str = ""

    @property
    def repeatable(self) -> bool:
        """Stopping twice is harmless; starting twice would run two transcriptions."""
        return not self.start

    def run(self, t: Telephony) -> None:
        effect = "resume_transcription" if self.start else "pause_transcription"
        try:
            if self.start:
                sid = t.twilio.start_transcription(self.call_sid, name=self.name,
                                             status_callback_url=self.status_callback_url,
                                             language_code=self.language_code,
                                             inbound_track_label=self.inbound_track_label or None)
            else:
                # Stopping twice is harmless; starting twice is not, so only the stop is retried.
                _with_one_retry(t, effect, lambda: t.twilio.stop_transcription(self.call_sid, self.name))
        except TwilioError as error:
            log.warning("effect_failed", effect=effect, error=str(error)[:200])
            self._failed(t, error)
            return
        log.info("effect_done", effect=effect)
        call = _call(t, self.call_id)
        if self.start:
            call.transcription_paused_at = None
            call.transcription_sid = sid or None  # the next pause stops this one by its SID
            record_event(t.session, call, "transcription_resumed", transcription=self.name)
        else:
            # Stopped by its SID (GT...), or by name when no callback had told the SID yet: a named fallback.
            record_event(t.session, call, "transcription_paused", transcription=self.name, reason=self.reason,
                         stopped_by="sid" if self.name.startswith("GT") else "name_fallback",
                         resume_at=call.transcription_resume_at.isoformat() if call.transcription_resume_at else None)

    def _failed(self, t: Telephony, error: TwilioError) -> None:
        call = _call(t, self.call_id)
        if not self.start:
            call.transcription_paused_at = call.transcription_resume_at = None
            record_event(t.session, call, "transcription_pause_failed", transcription=self.name, reason=self.reason,
                         fallback="redaction", error=str(error)[:200])
            return
        if error.worth_retrying and not call.is_final:
            call.transcription_resume_at = utcnow()  # due again: the next resume pass tries once more
        else:
            call.transcription_paused_at = None
        record_event(t.session, call, "transcription_resume_failed", transcription=self.name,
                     will_retry=call.transcription_resume_at is not None, error=str(error)[:200])


@dataclass(frozen=True)
class Dial(_ForCall):
    """Twilio places a call for a leg (an agent's softphone, a transfer target, an outside number).

    The leg is stored, DIALING with no CallSid, before this runs, so any of
    Twilio's requests for it find it. Twilio refusing the call (a 4xx, or a
    429 twice) is a refused dial: the edge reacts as to a failed call (the
    next agent, or the transfer's next target). An answer that never came, or
    a 5xx, may hide a call Twilio placed anyway: the leg stays DIALING,
    unconfirmed, and its first webhook (the `initiated` status callback)
    records its CallSid; with none within legs.UNCONFIRMED_DIAL_AFTER it is
    given up (legs.claim_expired_ring). Never run twice.
    """

    leg_id: int
    to: str
    from_: str
    answer_url: str
    status_url: str
    fallback_url: str
    timeout: int
    # An outside party: Twilio's answering-machine detection ("Enable"), and the keys sent once it answers
    # (an extension). Twilio ignores detection when keys are sent (Call resource, MachineDetection).
    detect_machine: bool = False
    send_digits: str | None = None
    # The inbound call's CallToken, which lets From be the caller's own number (Call resource, CallToken).
    call_token: str | None = None

    repeatable: ClassVar[bool] = False

    def still_wanted(self, t: Telephony) -> bool:
        # The two columns as committed, not the session's Leg (its refresh cost a dial more than the question).
        leg = t.session.execute(_LEG_TO_DIAL, {"leg": self.leg_id}).first()
        over = leg is None or leg.status in FINAL_LEG_STATUSES
        if over or leg.twilio_call_sid:
            # The caller left meanwhile, or Twilio's first request for it came first.
            log.info("effect_skipped", effect="dial", leg_id=self.leg_id,
                     reason="leg over" if over else "already known")
            return False
        return True

    def run(self, t: Telephony) -> None:
        # carry_out has committed (the row marked tried, the leg found still to be rung): no transaction (SQLite's
        # write lock) is held while Twilio answers.
        try:
            sid = _with_one_retry(t, "dial", lambda: self._call_twilio(t), only_unprocessed=True)
        except TwilioError as error:
            log.warning("effect_failed", effect="dial", leg_id=self.leg_id, error=str(error)[:200])
            if error.status is None or error.status >= 500:
                record_event(t.session, _call(t, self.call_id), "leg_dial_unconfirmed", leg_id=self.leg_id,
                             error=str(error)[:200])
            else:
                t.refused_dials.append((self.leg_id, str(error)[:200]))
            return
        # Under the call's lock (taken as every step takes it), committed at
        # once: a step ending the leg meanwhile (the caller hanging up) either
        # came first, and the phone is hung up here, or comes after and finds
        # the CallSid to hang up. The leg is read and written in one statement,
        # after the lock (a row joined to a locking read can be stale after its
        # wait); the session's copy of the CallSid is expired by it ("fetch"
        # cannot work out COALESCE) and read again when next asked for.
        t.session.get(Call, self.call_id, with_for_update={"key_share": True}, populate_existing=True)
        recorded = t.session.execute(
            update(Leg).where(Leg.id == self.leg_id, Leg.status.not_in(FINAL_LEG_STATUSES))
            .values(twilio_call_sid=func.coalesce(Leg.twilio_call_sid, sid)).returning(Leg.id),
            execution_options={"synchronize_session": "fetch"}).first()
        if recorded is None:
            # Given up on while Twilio answered: the phone must not ring for nothing.
            t.session.commit()
            HangUp(self.call_id, sid, self.leg_id).run(t)
            return
        _delete_own_row(t)  # the dial is done, with its CallSid stored: one commit for both
        t.session.commit()
        log.info("effect_done", effect="dial", leg_id=self.leg_id)

    def _call_twilio(self, t: Telephony) -> str:
        return t.twilio.create_call(to=self.to, from_=self.from_, url=self.answer_url,
                                    status_callback=self.status_url, timeout_seconds=self.timeout,
                                    # Any of this call's steps that fails or times out resumes it where it is.
                                    fallback_url=self.fallback_url,
                                    machine_detection="Enable" if self.detect_machine else None,
                                    send_digits=self.send_digits, call_token=self.call_token)


Effect = Union[HangUp, Redirect, OpenRoom, CloseRoom, RemoveFromRoom, StartSummary, SwitchTranscription, Dial]
EFFECT_KINDS: dict[str, type] = {kind.__name__: kind for kind in (
    HangUp, Redirect, OpenRoom, CloseRoom, RemoveFromRoom, StartSummary, SwitchTranscription, Dial)}


def effect_as_row(effect: Effect) -> dict[str, Any]:
    """The effect as the outbox keeps it (JSON)."""
    return {"kind": type(effect).__name__, **_values(effect)}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _values(record) -> dict[str, Any]:
    # dataclasses.asdict's answer for these records (a Redirect's HangUp a dict too), without its deep copy of
    # every value: an effect holds strings, numbers and booleans. Their fields' names are worked out once a kind.
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        names = _FIELD_NAMES[type(record)] = tuple(field.name for field in fields(record))
    return {name: _values(value) if is_dataclass(value) else value
            for name in names for value in (getattr(record, name),)}


def effect_from_row(data: dict[str, Any]) -> Effect:
    """The effect an outbox row keeps."""
    fields = dict(data)
    kind = EFFECT_KINDS[fields.pop("kind")]
    if kind is Redirect and fields.get("otherwise"):
        fields["otherwise"] = HangUp(**fields["otherwise"])
    return kind(**fields)


def repeatable(effect: Effect) -> bool:
    """Whether running the effect again (after a crash) is harmless."""
    return getattr(effect, "repeatable", True)


# session.info key: the PendingEffects tied to the session's transactions (the latest made for it).
_PENDING = "pending_effects"


class PendingEffects:
    """The effects of one request (or job step), tied to its session's transactions, each with its outbox row."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._effects: list[tuple[Effect, OutboxEffect]] = []
        self._durable = 0  # effects[:durable] were recorded before a commit
        self._savepoints: dict[object, int] = {}  # an open savepoint: how many effects there were when it began
        # While carry_out runs an effect: its stored outbox row.
        self.running: OutboxEffect | None = None
        # Told of the session's commits and rollbacks by the listeners below, registered once on every Session:
        # a listener per session would cost each request its own registration.
        session.info[_PENDING] = self

    def add(self, effect: Effect) -> None:
        """Record EFFECT, and its outbox row in the step's transaction."""
        if isinstance(effect, Redirect):
            # A leg only needs to reach the last place a step put it; a move
            # recorded before a commit stays, because it is durable and its
            # replacement may yet be rolled back.
            for index in range(self._durable, len(self._effects)):
                earlier, row = self._effects[index]
                if isinstance(earlier, Redirect) and earlier.leg_id == effect.leg_id:
                    del self._effects[index]
                    self._forget(row)
                    break
        row = OutboxEffect(call_id=effect.call_id, effect=effect_as_row(effect))
        self._session.add(row)
        self._effects.append((effect, row))

    def adopt(self, effect: Effect, row: OutboxEffect) -> None:
        """Carry out an effect whose row is already stored (one a dead worker left)."""
        self._effects.append((effect, row))

    def take(self) -> list[Effect]:
        """The effects to carry out now (all of them: the caller has just committed), in order."""
        return [effect for effect, _row in self.take_with_rows()]

    def take_with_rows(self) -> list[tuple[Effect, OutboxEffect]]:
        """The effects to carry out now, each with its outbox row, in order."""
        taken, self._effects, self._durable = self._effects, [], 0
        return taken

    def __len__(self) -> int:
        return len(self._effects)

    def __iter__(self):
        return iter([effect for effect, _row in self._effects])

    def _forget(self, row: OutboxEffect) -> None:
        if row in self._session.new:
            self._session.expunge(row)
        else:
            self._session.delete(row)

    def _committed(self, _session: Session) -> None:
        self._durable = len(self._effects)

    def _rolled_back(self, _session: Session) -> None:
        self._drop_from(self._durable)
        self._savepoints.clear()

    def _savepoint_began(self, savepoint: object) -> None:
        self._savepoints[savepoint] = len(self._effects)

    def _savepoint_ended(self, savepoint: object, rolled_back: bool) -> None:
        began = self._savepoints.pop(savepoint, None)
        if rolled_back and began is not None:
            # What was recorded inside it goes with its outbox rows, which the savepoint's rollback took back.
            self._drop_from(max(began, self._durable))

    def _drop_from(self, index: int) -> None:
        dropped = self._effects[index:]
        if dropped:
            log.info("effects_dropped_on_rollback", count=len(dropped))
        del self._effects[index:]


# The step's commit makes its effects durable and its rollback drops them; a savepoint's end (db.savepoint_only)
# does neither, but one rolled back drops what was recorded inside it.
@event.listens_for(Session, "after_transaction_create")
def _transaction_began(session: Session, transaction) -> None:
    pending = session.info.get(_PENDING)
    if pending is not None and transaction.nested:
        pending._savepoint_began(transaction)


@event.listens_for(Session, "after_commit")
def _session_committed(session: Session) -> None:
    pending = session.info.get(_PENDING)
    if pending is None:
        return
    if savepoint_only(session):
        pending._savepoint_ended(session.get_nested_transaction(), rolled_back=False)
    else:
        pending._committed(session)


@event.listens_for(Session, "after_rollback")
def _session_rolled_back(session: Session) -> None:
    pending = session.info.get(_PENDING)
    if pending is None:
        return
    if savepoint_only(session):
        pending._savepoint_ended(session.get_nested_transaction(), rolled_back=True)
    else:
        pending._rolled_back(session)


def carry_out(t: Telephony) -> int:
    """Carry out the effects recorded so far, in order (after the commit), deleting each one's outbox row once
    done; returns how many ran.

    An effect that must not run twice (a dial) has its row marked tried, and
    committed, before it goes out: a worker that dies during it leaves a row
    the reconciler will not run again. One no longer wanted (its still_wanted,
    asked in that transaction: a dial's leg over) is dropped instead.
    """
    taken = t.effects.take_with_rows()
    done: list[int] = []  # the stored rows of the effects carried out, deleted together before the next commit
    for index, (effect, row) in enumerate(taken):
        if t.out_of_time:
            # A webhook's budget is spent: the rest waits until its answer has gone (web/unit_of_work.py).
            _delete_rows(t, done)
            for later in taken[index:]:
                t.effects.adopt(*later)
            log.warning("effects_after_answer", effects_left=len(taken) - index, next=type(effect).__name__)
            return index
        if not repeatable(effect):
            if not effect.still_wanted(t):
                _done_with(t, row, done)
                continue
            _delete_rows(t, done)
            done = []
            row.tried_at = utcnow()
            t.session.commit()
        t.effects.running = row
        try:
            with t.within_budget():
                effect.run(t)
        except Exception:  # noqa: BLE001 - one effect failing must not stop the others
            log.exception("effect_crashed", effect=type(effect).__name__)
        finally:
            t.effects.running = None
        if not inspect(row).was_deleted:  # else gone with the transaction that stored the effect's outcome
            _done_with(t, row, done)
    _delete_rows(t, done)
    return len(taken)


def _done_with(t: Telephony, row: OutboxEffect, done: list[int]) -> None:
    if row in t.session.new:  # never stored (nothing was committed): nothing to delete
        t.session.expunge(row)
    else:
        done.append(row.id)


def _delete_own_row(t: Telephony) -> None:
    """The effect being carried out is done: its outbox row goes in the transaction that stores its outcome (one
    commit, where a separate DELETE would need one more after it)."""
    row = t.effects.running
    if row is not None and row.id is not None:
        t.session.delete(row)


def _delete_rows(t: Telephony, row_ids: list[int]) -> None:
    # One statement for the effects carried out since the last commit; they are committed with what follows
    # them (the dial's own commit, or the step's edge), as each one's own DELETE was. On the table, not through
    # the ORM: nothing reads these rows' objects again, so the session need not look for them among its own.
    if row_ids:
        t.session.execute(_DELETE_ROWS, {"ids": row_ids})


_outbox = OutboxEffect.__table__
_DELETE_ROWS = delete(_outbox).where(_outbox.c.id.in_(bindparam("ids", expanding=True)))
_LEG_TO_DIAL = select(Leg.status, Leg.twilio_call_sid).where(Leg.id == bindparam("leg"))


def _call(t: Telephony, call_id: int) -> Call:
    return t.session.get(Call, call_id)


def hang_up(t: Telephony, call: Call, call_sid: str | None, *, leg_id: int | None = None) -> None:
    """Record that Twilio must end CALL_SID once the step is committed."""
    if call_sid:
        t.effects.add(HangUp(call.id, call_sid, leg_id))


def start_summary(t: Telephony, transfer: Transfer) -> None:
    """Record that the transfer's summary must start once the step is committed."""
    t.effects.add(StartSummary(transfer.call_id, transfer.id))


def open_room(t: Telephony, call: Call, room: str, *, metadata: str = "", transfer: Transfer | None = None) -> None:
    """Record that LiveKit must create ROOM, with the service's timeouts, once the step is committed."""
    t.effects.add(OpenRoom(call.id, room, t.settings.room_empty_timeout_seconds, metadata,
                           transfer.id if transfer else None))


def remove_from_room(t: Telephony, call: Call, room: str | None, identity: str | None) -> None:
    """Record that LiveKit must disconnect IDENTITY from ROOM once the step is committed."""
    if room and identity:
        t.effects.add(RemoveFromRoom(call.id, room, identity))


def close_room(t: Telephony, call: Call, room: str | None, *, transfer: Transfer | None = None) -> None:
    """Record that LiveKit must delete ROOM once the step is committed."""
    if room:
        t.effects.add(CloseRoom(call.id, room, transfer.id if transfer else None))

