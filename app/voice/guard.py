"""The one guard on every Twilio webhook: signature, idempotency, the leg or call it serves, log context, safe failure.

A view declares what it serves (`ServesLeg`, `ServesCall`): the guard loads
and locks it (`legs.lock_call`, the call's lock first), checks that the
request comes from its own CallSid, for a leg of the roles and in the
states the step fits, answers one that does not fit with the view's own
answer for where the leg is (`webhook_out_of_place`), and hands the view
what it loaded.

A request whose X-Twilio-Signature does not match the public URL Twilio used
gets 403 and changes nothing. A delivery already handled (Twilio retries and
repeats) gets the answer it got the first time, kept with its claim; a new
call's (`ServesArrival`) is known by its own CallSid instead, and a repeat is
answered afresh by its step, which writes nothing for a call it already
stored (the greeting again). A voice webhook whose handler
fails still answers valid TwiML that keeps the caller on the line.

A step that PostgreSQL aborts as a deadlock's victim or for a serialization
failure, or whose pooled connection turns out dead, before any of it was
committed, is rolled back (its recorded
effects with it: none was carried out) and run once more from the claim on
(`transaction_retried`, a warning); failing again, it is answered as any
database failure is. A step that committed before a network call
(primitives/presence) is never run again, since that call might be repeated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Callable, Union
from urllib.parse import urlencode

import structlog
from cryptography.fernet import Fernet, InvalidToken
from flask import Response, current_app, request
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from twilio.request_validator import RequestValidator

from app.database import insert_new_rows, note_configuration_version
from app.db import commits, worth_running_again
from app.logs import get_logger
from app.models import CONFIGURATION_VERSION, Call, Leg, LegRole, WebhookDelivery, parse_id, utcnow
from app.primitives.legs import adopt_call_sid, caller_leg, lock_call, lock_leg, misfit
from app.telephony.urls import FALLBACK_RECORDED, WebhookUrls
from app.voice.forms import MalformedWebhook, TwilioForm
from app.voice.twiml import empty_twiml, twiml_response
from app.web.unit_of_work import current_work

log = get_logger("switchboard.webhooks")


def public_request_url() -> str:
    """The URL Twilio requested: PUBLIC_BASE_URL plus path and query (right behind ngrok or a TLS proxy)."""
    settings = current_app.config["SETTINGS"]
    query = request.query_string.decode("utf-8", "replace")
    return settings.public_base_url + request.path + (f"?{query}" if query else "")


def signature_is_valid() -> bool:
    """Check X-Twilio-Signature with twilio's own RequestValidator (the previous token too, while rotating)."""
    settings = current_app.config["SETTINGS"]
    signature = request.headers.get("X-Twilio-Signature", "")
    tokens = [token for token in (settings.twilio_auth_token, settings.twilio_previous_auth_token) if token]
    if not tokens or not signature:
        return False
    # The whole form: twilio's validator signs every value of a repeated field.
    url, params = public_request_url(), request.form
    return any(RequestValidator(token).validate(url, params, signature) for token in tokens)


def _delivery_key(answer: str) -> str | None:
    if answer == "callback":
        # A callback is known by what Twilio signed, never by a header a
        # replayer may change (the signature does not cover headers): its
        # CallSid, CallStatus, SequenceNumber and Timestamp make identical
        # bodies repeats, whatever I-Twilio-Idempotency-Token they carry.
        body = "&".join(f"{k}={v}" for k, v in sorted(request.form.items(multi=True)))
        return "sha256:" + hashlib.sha256(f"{request.full_path}|{body}".encode()).hexdigest()
    # A TwiML request without a token is not deduplicated: a <Redirect> loop
    # legitimately repeats the same parameters. A replay under another token
    # is answered by where its leg is now (primitives.legs.misfit).
    token = request.headers.get("I-Twilio-Idempotency-Token", "").strip()
    return token[:128] if token else None


MAX_RETRIES = 3
CARRY = "carry"
CARRIED_FIELDS = ("Digits", "SpeechResult", "Confidence", "RecordingUrl", "RecordingDuration", "DialCallStatus")
# A retry comes back within seconds (music, then the redirect); an older
# sealed input is not trusted.
CARRY_TTL_SECONDS = 300


def _carry_key() -> Fernet:
    # A key of its own for this one use, derived from SECRET_KEY.
    secret = current_app.config["SETTINGS"].secret_key.encode()
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"switchboard carried input|" + secret).digest()))


def seal_input(fields: dict[str, str]) -> str:
    """What the person entered, encrypted for a retry URL: their speech or keys never appear in a URL."""
    return _carry_key().encrypt(json.dumps(fields).encode()).decode()


def unseal_input(token: str) -> dict[str, str]:
    """The fields a retry URL carries; {} (logged) if the token is not ours, was altered or is too old."""
    try:
        fields = json.loads(_carry_key().decrypt(token.encode(), ttl=CARRY_TTL_SECONDS))
    except (InvalidToken, ValueError):
        log.warning("carried_input_refused", path=request.path)
        return {}
    return {key: str(value) for key, value in fields.items() if key in CARRIED_FIELDS}


def _form_with_carried_input() -> dict[str, str]:
    token = request.args.get(CARRY)
    carried = unseal_input(token) if token else {}
    return {**carried, **request.form.to_dict()}


def retry_twiml() -> Response:
    """Apology, music, then the same step again; after MAX_RETRIES, take a message (Twilio keeps it)."""
    settings = current_app.config["SETTINGS"]
    voice = {"voice": settings.say_voice, "language": settings.say_language}
    attempt = min(parse_id(request.args.get("retry")) or 0, MAX_RETRIES) + 1
    if attempt > MAX_RETRIES:
        log.error("webhook_retries_exhausted", path=request.path)
        base = settings.public_base_url
        return twiml_response("common/last_resort.xml", **voice, action_url=base + FALLBACK_RECORDED)
    # A <Redirect> posts only the call's own parameters: carry what the person
    # entered (keys, speech, a recording) so the retried step sees it, sealed,
    # so that neither Twilio's logs nor an access log ever hold it.
    form = _form_with_carried_input()  # a retry of a retry keeps what the first one carried
    entered = {name: form[name] for name in CARRIED_FIELDS if form.get(name)}
    query = {key: value for key, value in request.args.items() if key != CARRY}
    if entered:
        query[CARRY] = seal_input(entered)
    query["retry"] = str(attempt)
    retry_url = settings.public_base_url + request.path + "?" + urlencode(query)
    music = WebhookUrls(settings.public_base_url).hold_music(settings.hold_music_url)
    return twiml_response("common/retry.xml", **voice, music_url=music, retry_url=retry_url)


IN_PROGRESS = 0
REPEAT_WAIT_SECONDS = 8.0
ABANDONED_CLAIM = timedelta(seconds=30)


def _stored_answer(status_code: int, content_type: str, body: str) -> Response:
    log.info("webhook_repeated", path=request.path)
    return Response(_with_secrets(body), status=status_code, content_type=content_type)


def _claim_delivery(session, key: str) -> int | Response:
    """Claim this delivery before handling it, in the step's own transaction: the claim's id. A repeat gets the
    first answer (waiting for it if need be).

    The claim is one `INSERT … ON CONFLICT DO NOTHING`: on PostgreSQL a
    repeat that arrives while the first is still being handled waits for
    the first's transaction, then finds its answer (or, if it was rolled
    back, claims the delivery itself).
    """
    claim_id = _insert_claim(session, key)
    if claim_id is None and _abandoned_claim_removed(session, key):
        # Its worker died mid-step: this delivery is handled afresh.
        log.warning("webhook_claim_taken_over", path=request.path)
        claim_id = _insert_claim(session, key)
    if claim_id is not None:
        return claim_id
    # A repeat: answer as the first delivery was answered, once it has been.
    # Each look is its own short transaction, so the first can finish meanwhile.
    session.rollback()
    answered = select(WebhookDelivery.status_code, WebhookDelivery.content_type, WebhookDelivery.body).where(
        WebhookDelivery.source == "twilio", WebhookDelivery.delivery_key == key,
        WebhookDelivery.status_code != IN_PROGRESS,
    )
    give_up = time.monotonic() + REPEAT_WAIT_SECONDS
    while True:
        row = session.execute(answered).first()
        session.commit()
        if row is not None:
            return _stored_answer(*row)
        if time.monotonic() >= give_up:
            log.warning("webhook_repeat_still_in_progress", path=request.path)
            return retry_twiml()
        time.sleep(0.1)


def _insert_claim(session, key: str) -> int | None:
    claim = dict(source="twilio", delivery_key=key, endpoint=request.path[:128], status_code=IN_PROGRESS,
                 content_type="", body="", created_at=utcnow())
    inserted = insert_new_rows(session, WebhookDelivery, ("source", "delivery_key"), claim,
                               also=(CONFIGURATION_VERSION,))
    if not inserted:
        return None
    # The configuration's version, read by the claim at no cost: the step may reuse what the process read of the
    # queues and the subscribers under it (database.read_configuration).
    note_configuration_version(session, inserted[0].configuration_version)
    return inserted[0].id


def _abandoned_claim_removed(session, key: str) -> bool:
    """Remove this delivery's claim if it is still in progress after ABANDONED_CLAIM (its worker died)."""
    removed = session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.source == "twilio", WebhookDelivery.delivery_key == key,
        WebhookDelivery.status_code == IN_PROGRESS, WebhookDelivery.created_at < utcnow() - ABANDONED_CLAIM,
    ))
    return removed.rowcount > 0


# Built once: only the values change from one delivery to the next.
_ANSWER = update(WebhookDelivery.__table__).where(WebhookDelivery.__table__.c.id == bindparam("claim")).values(
    status_code=bindparam("status_code"), content_type=bindparam("content_type"), body=bindparam("body"))


def _remember_answer(session, claim_id: int, response: Response) -> None:
    """Store the answer a repeat of this delivery will get (the SIP password kept out of it)."""
    session.connection().execute(_ANSWER, {
        "claim": claim_id, "status_code": response.status_code,
        "content_type": response.content_type or "text/plain",
        "body": _without_secrets(response.get_data(as_text=True)),
    })


def _give_up_claim(session, key: str | None) -> None:
    # The step failed: roll back, and forget the claim (a step may have
    # committed it already) at once, even if the answer is a 500 that the
    # request's own commit skips, so Twilio's retry runs the step again.
    # With the database gone this cannot be done, and must not raise: the
    # claim is then taken over once it is ABANDONED_CLAIM old.
    try:
        session.rollback()
        if key is not None:
            session.execute(
                delete(WebhookDelivery).where(
                    WebhookDelivery.source == "twilio",
                    WebhookDelivery.delivery_key == key,
                    WebhookDelivery.status_code == IN_PROGRESS,
                )
            )
            session.commit()
    except SQLAlchemyError:
        log.error("database_unavailable", step="give_up_claim", path=request.path)
        try:
            session.rollback()
        except SQLAlchemyError:
            pass


def _database_down_answer() -> Response:
    # Named as what it is: the step could not be stored; the caller hears an
    # apology and music, and the step is tried again (then a message is taken,
    # which Twilio keeps: its goodbye needs no database).
    log.error("database_unavailable", path=request.path, answered="retry_twiml")
    if request.path == FALLBACK_RECORDED:
        settings = current_app.config["SETTINGS"]
        return twiml_response("common/goodbye.xml", voice=settings.say_voice, language=settings.say_language,
                              text="Thank you. We have your message and will call you back. Goodbye.")
    return retry_twiml()


def _callback_not_stored() -> Response:
    log.error("database_unavailable", path=request.path, answered="503")
    # Twilio never sends it again: the reconciler asks Twilio instead, as soon
    # as the database answers (app/calls/reconcile.py).
    from app.jobs.setup import reconcile_soon

    reconcile_soon(current_app)
    return Response("the database is unavailable; this callback was not stored\n", status=503,
                    mimetype="text/plain")


SIP_PASSWORD_SLOT = "{{LIVEKIT_SIP_PASSWORD}}"


def _without_secrets(body: str) -> str:
    # Stored answers may be replayed, but the SIP trunk password in a <Sip>
    # must not sit in the database: keep a slot and fill it in on replay.
    password = current_app.config["SETTINGS"].livekit_sip_password
    return body.replace(password, SIP_PASSWORD_SLOT) if password else body


def _with_secrets(body: str) -> str:
    return body.replace(SIP_PASSWORD_SLOT, current_app.config["SETTINGS"].livekit_sip_password)


@dataclass(frozen=True)
class ServesLeg:
    """A webhook of one leg, named by ?leg=: the roles it serves, the statuses its step fits (None: any), and the
    answer to a leg that does not fit (MISFIT(leg): where the leg is now).

    ACTS_ON(form), for a callback: False when the request changes nothing once
    its leg is known to Twilio by the request's CallSid (a status callback
    saying the phone rings). Such a request is answered at once with empty
    TwiML, signature checked, after one read of the leg, unlocked, when the
    leg already holds that CallSid and is of a role and status this URL
    serves: no delivery claimed, no call locked. Otherwise it goes the whole
    way (the CallSid adopted, for a dial whose answer was lost; or refused).
    """

    roles: tuple[str, ...] = (LegRole.AGENT, LegRole.TARGET)
    fits: tuple[str, ...] | None = None
    misfit: Callable[[Leg], Response] | None = None
    acts_on: Callable[[TwilioForm], bool] | None = None


@dataclass(frozen=True)
class ServesCall:
    """A webhook of the caller's leg, named by ?call=: only from the call's own CallSid, while the call is in
    one of FITS (None: any); MISFIT(call) answers one that is not (where the caller is now).

    WITH_PARTY: or of one of its agents' legs, named by ?leg= as well (from
    that leg's CallSid); the view is given the call and that leg, or None.
    AGENTS=False: the step writes no agent, so the live legs' agents are not
    locked with the call (primitives.legs.lock_call).
    ACTS_ON(form), for a callback: False when the request changes nothing the
    service keeps (a transcription stopped, say). It is then answered at once,
    signature checked, with empty TwiML, as the view would have answered it:
    no delivery claimed, no call read or locked, since its replay could change
    nothing either.
    """

    with_party: bool = False
    fits: tuple[str, ...] | None = None
    misfit: Callable[[Call], Response] | None = None
    agents: bool = True
    acts_on: Callable[[TwilioForm], bool] | None = None


@dataclass(frozen=True)
class ServesOwnLeg:
    """A webhook of the leg whose Twilio call it is, found by the request's own CallSid (an agent's dial-out call,
    which names no leg in its URL): the view is given that leg, locked, or None when the service has none yet."""


@dataclass(frozen=True)
class ServesArrival:
    """The webhook of a call arriving on the number: its step stores the call under its CallSid, unique, once
    however often Twilio asks, and answers a repeat afresh without writing anything: the greeting again (the
    hold, for a resumed call), which is what the first delivery answered. Twilio repeats a delivery only when it
    got no answer, before the caller heard anything. That is its de-duplication, so the guard claims no delivery
    for it and remembers no answer: two statements fewer on every new call. The call's INSERT reads the
    configuration's version, as a claim would have (states/calls.new_call)."""


Serves = Union[ServesLeg, ServesCall, ServesOwnLeg, ServesArrival, None]


def _load(serves: Serves, form: TwilioForm) -> tuple | Response:
    """What the webhook serves, locked (its call first) and checked, as the view's arguments; a Response for a
    leg that does not fit."""
    if serves is None or isinstance(serves, ServesArrival):
        return ()
    t = current_work().telephony
    if isinstance(serves, ServesOwnLeg):
        leg_id = t.session.scalar(select(Leg.id).where(Leg.twilio_call_sid == form.require_call_sid()))
        return (lock_leg(t, leg_id) if leg_id is not None else None,)
    if isinstance(serves, ServesCall):
        number = parse_id(request.args.get("call"))
        call = lock_call(t, number, agents=serves.agents) if number is not None else None
        if call is None:
            raise MalformedWebhook(f"unknown call {request.args.get('call', '')[:20]!r}")
        party = _party_of(call, request.args.get("leg")) if serves.with_party else None
        # The caller's own CallSid: an inbound call's is its call_sid; an outbound call's customer leg has its own.
        caller = caller_leg(call)
        expected = party.twilio_call_sid if party is not None else caller.twilio_call_sid if caller else None
        if form.call_sid and expected and form.call_sid != expected:
            log.warning("webhook_out_of_place", reason="callsid", call_id=call.id)
            raise MalformedWebhook("the CallSid is not this call's caller, nor the leg's")
        if serves.fits is not None and call.status not in serves.fits:
            # A late key or recording (the caller was connected meanwhile): it
            # changes nothing; the caller is answered with where they are.
            log.warning("webhook_out_of_place", reason="state", call_id=call.id, call_status=call.status)
            return serves.misfit(call)
        return (call, party) if serves.with_party else (call,)
    number = parse_id(request.args.get("leg"))
    leg = lock_leg(t, number) if number is not None else None
    if leg is None:
        raise MalformedWebhook(f"unknown leg {request.args.get('leg', '')[:20]!r}")
    adopt_call_sid(leg, form.call_sid)
    reason = misfit(leg, form.call_sid, roles=serves.roles, statuses=serves.fits)
    if reason is None:
        return (leg,)
    log.warning("webhook_out_of_place", reason=reason, leg_id=leg.id, leg_status=leg.status, role=leg.role)
    if reason == "state" and serves.misfit is not None:
        return serves.misfit(leg)
    # Another leg's CallSid, or a leg of a role this URL never serves: not
    # Twilio's request about this leg (the service gives each leg its own URLs).
    raise MalformedWebhook("the CallSid is not this leg's" if reason == "callsid" else f"not a webhook of a {leg.role} leg")


# A leg as last committed, for a callback that changes nothing once its leg is known (ServesLeg.acts_on).
_LEG_AS_KNOWN = select(Leg.twilio_call_sid, Leg.role, Leg.status).where(Leg.id == bindparam("leg"))


def _changes_nothing(serves: Serves, form: TwilioForm) -> bool:
    """Whether a callback is one SERVES' acts_on says changes nothing (for a leg's, once the leg is known by the
    request's CallSid): answered at once with empty TwiML."""
    acts_on = getattr(serves, "acts_on", None)
    if acts_on is None or acts_on(form):
        return False
    if isinstance(serves, ServesCall):
        return True
    number = parse_id(request.args.get("leg"))
    if number is None or not form.call_sid:
        return False
    session = current_work().session
    try:
        known = session.execute(_LEG_AS_KNOWN, {"leg": number}).first()
    except SQLAlchemyError:
        session.rollback()  # the whole way then, which answers for a database that failed
        return False
    return (known is not None and known.twilio_call_sid == form.call_sid and known.role in serves.roles
            and (serves.fits is None or known.status in serves.fits))


def _party_of(call: Call, leg_id: str | None) -> Leg | None:
    """The agent or target leg of CALL that ?leg= names (None when none is named); MalformedWebhook otherwise."""
    if leg_id is None:
        return None
    number = parse_id(leg_id)
    leg = next((leg for leg in call.legs if leg.id == number), None)
    if leg is None or leg.role == LegRole.CALLER:
        raise MalformedWebhook(f"leg {leg_id[:20]!r} is not an agent leg of this call")
    return leg


class _WorthRunningAgain(Exception):
    """The step lost a deadlock, a serialization conflict or its connection before committing anything: it may
    run again."""

    def __init__(self, conflict: str, error: str):
        super().__init__(conflict)
        self.conflict = conflict
        self.error = error


def _handle(view: Callable[..., Response], serves: Serves, form: TwilioForm, session, key: str | None,
            answer: str, args, kwargs) -> Response:
    """Claim the delivery, run the step, remember its answer and commit; _WorthRunningAgain if it may run again."""
    commits_before = commits(session)

    def failed(error: SQLAlchemyError, key_to_forget: str | None) -> Response:
        conflict = worth_running_again(error)
        text = str(error).splitlines()[0][:200]
        if conflict is not None and commits(session) == commits_before:
            session.rollback()  # the claim, the step and its effects go with it
            raise _WorthRunningAgain(conflict, text)
        # A step that committed before a network call (primitives/presence) is
        # never run twice: that call might be made again.
        _give_up_claim(session, key_to_forget)
        log.error("webhook_database_failed", error=text, conflict=conflict)
        return current_work().answer_when_database_fails()

    claim = None
    if key is not None:
        try:
            claim = _claim_delivery(session, key)
        except SQLAlchemyError as error:
            return failed(error, None)
        if isinstance(claim, Response):
            return claim
        # A repeat's wait commits on its own; the step starts counting here.
        commits_before = commits(session)

    try:
        loaded = _load(serves, form)
        if isinstance(loaded, Response):
            response = loaded  # a leg the step does not fit: answered with where it is
        else:
            response = view(form, *loaded, *args, **kwargs)
    except MalformedWebhook as error:
        _give_up_claim(session, key)
        log.warning("webhook_malformed", reason=str(error))
        if answer == "callback":
            return Response(f"{error}\n", status=400, mimetype="text/plain")
        return retry_twiml()
    except SQLAlchemyError as error:
        # The database failed under the step: no traceback, one line that says so.
        return failed(error, key)
    except Exception:
        _give_up_claim(session, key)
        log.exception("webhook_failed")
        if answer == "callback":
            raise
        return retry_twiml()

    if claim is not None:
        if response.status_code < 500:
            _remember_answer(session, claim, response)
        else:
            _give_up_claim(session, key)
    # The step and its remembered answer are durable before anything
    # else runs (effects and offers follow the commit: app/web/unit_of_work.py).
    try:
        session.commit()
    except SQLAlchemyError as error:
        return failed(error, None)
    return response


def twilio_webhook(answer: str = "twiml", *, serves: Serves = None) -> Callable:
    """Guard a Twilio webhook view; ANSWER is 'twiml' (a voice step) or 'callback' (status and events).

    SERVES declares the leg (ServesLeg) or call (ServesCall) the webhook is
    about: the view is then called with it, loaded, locked and checked; or
    that it is a call's arrival (ServesArrival), which claims no delivery.
    """
    if answer not in ("twiml", "callback"):
        raise ValueError(answer)

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def guarded(*args, **kwargs) -> Response:
            form = TwilioForm.parse(_form_with_carried_input())
            structlog.contextvars.bind_contextvars(call_sid=form.call_sid or None, webhook=request.path)
            if not signature_is_valid():
                log.warning("twilio_signature_rejected", path=request.path)
                return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")

            if answer == "callback" and _changes_nothing(serves, form):
                return empty_twiml()
            work = current_work()
            work.start_budget()  # Twilio waits 15 s for the answer: every call to Twilio or LiveKit draws from this
            key = None if isinstance(serves, ServesArrival) else _delivery_key(answer)
            # If the database fails where the request commits, the caller
            # still gets TwiML that keeps them on the line.
            work.answer_when_database_fails = _database_down_answer if answer == "twiml" else _callback_not_stored
            try:
                return _handle(view, serves, form, work.session, key, answer, args, kwargs)
            except _WorthRunningAgain as lost:
                # The step was rolled back whole before it reached Twilio or
                # LiveKit (nothing of it committed): run it once more, afresh.
                log.warning("transaction_retried", conflict=lost.conflict, error=lost.error)
                work.forget_step()  # its freed agents, requeued calls and effects were rolled back
            try:
                return _handle(view, serves, form, work.session, key, answer, args, kwargs)
            except _WorthRunningAgain as lost:
                log.error("webhook_database_failed", conflict=lost.conflict, error=lost.error, retried=True)
                return work.answer_when_database_fails()

        return guarded

    return decorate
