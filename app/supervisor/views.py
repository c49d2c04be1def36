"""Supervisor pages: the live board, the call page, the transfer form.

Streams can be tuned with app.config["SUPERVISOR_STREAM_TIMING"] (a
StreamTiming); tests shorten them. Each worker process runs at most
max(1, WEB_THREADS // 2) streams at once; past that a stream is answered 503
at once and the page polls the snapshot instead, so live pages can never take
the threads Twilio's webhooks need.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, InputRequired, Length, Optional, ValidationError

from app.agents import service as agents
from app.auth.guards import current_actor, current_agent_id, roles_required
from app.auth.service import Role
from app.gateways import IntegrationMissing
from app.kinds import TransferMode, TransferTrigger
from app.logs import get_logger
from app.models import Activity, Call, Queue
from app.routing.callbacks import callbacks_by_state
from app.states.calls import call_by_sid
from app.supervisor import board, listening
from app.supervisor.stream import StreamGate, StreamTiming, follow, hang_up_check
from app.telephony.numbers import DestinationRefused
from app.transfers import service
from app.transfers.actions import TRANSFER_ACTIONS, act_on_transfer
from app.transfers.outside import destination_kind
from app.web.errors import error_page
from app.web.unit_of_work import request_session, run_step

blueprint = Blueprint("supervisor", __name__)
log = get_logger("switchboard.supervisor")

STREAM_RETRY_AFTER_SECONDS = 30
OUTSIDE = "outside"  # the select's choice for the typed outside destination


class TransferForm(FlaskForm):
    target = SelectField("Transfer to")
    outside = StringField("Outside number or SIP URI", validators=[Optional(), Length(max=200)])
    mode = RadioField(
        "Kind of transfer",
        choices=[
            SelectChoice(TransferMode.WARM, "Warm: talk to them first"),
            SelectChoice(TransferMode.BLIND, "Blind: hand the caller straight over"),
        ],
        default=TransferMode.WARM,
    )
    notes = TextAreaField("Notes for the summary (optional)", validators=[Optional(), Length(max=2000)])

    def validate_target(self, field) -> None:
        outside = (self.outside.data or "").strip()
        if field.data in ("", OUTSIDE) and not outside:
            raise ValidationError("Choose who to transfer the call to, or type an outside number or SIP URI.")
        if field.data not in ("", OUTSIDE) and outside:
            raise ValidationError("Choose an agent or a queue, or type an outside number: not both.")

    def validate_outside(self, field) -> None:
        # Malformed is a form error, as in the API (400); whether it may be rung is the transfer's to say.
        text = (field.data or "").strip()
        try:
            if text:
                destination_kind(text)
        except DestinationRefused as refusal:
            raise ValidationError(f"{refusal}.") from None

    def choice(self) -> str:
        """What board.target_of_choice is given: the agent or queue chosen, or 'outside:' and the text typed."""
        outside = (self.outside.data or "").strip()
        return f"{OUTSIDE}:{outside}" if outside else self.target.data


class ActionForm(FlaskForm):
    """Complete or Cancel: nothing to fill in but the CSRF token."""


def _transfer_form(call: Call, formdata=None) -> TransferForm:
    form = TransferForm(formdata=formdata) if formdata is not None else TransferForm()
    agent_choices, queue_choices = board.transfer_targets(request_session(), call)
    # Nothing is chosen until someone chooses: one click never transfers to the call's own agent.
    form.target.choices = [SelectChoice("", "Choose…")] + [
        SelectChoice(value, text, optgroup="Agents") for value, text in agent_choices] + [
        SelectChoice(value, text, optgroup="Queues") for value, text in queue_choices
    ]
    if current_app.config["SETTINGS"].outside_transfers_enabled:
        form.target.choices.append(SelectChoice(OUTSIDE, "Outside number or SIP URI (type it below)",
                                                optgroup="Outside"))
    return form


def _outside_allowed() -> dict:
    """Whether the outside field is open, and where the allow-list lets it call, for the form's note."""
    settings = current_app.config["SETTINGS"]
    return {
        "enabled": settings.outside_transfers_enabled,
        "prefixes": list(settings.outside_transfer_prefixes),
        "domains": list(settings.outside_transfer_sip_domains),
    }


def _is_supervisor() -> bool:
    return current_user.role == Role.SUPERVISOR


def _stream_gate() -> StreamGate:
    extensions = current_app.extensions
    gate = extensions.get("supervisor_stream_gate")
    if gate is None:
        # setdefault is atomic, so two first streams racing still share one gate.
        limit = max(1, current_app.config["SETTINGS"].web_threads // 2)
        gate = extensions.setdefault("supervisor_stream_gate", StreamGate(limit))
    return gate


def _stream(cursor_of, snapshot_of) -> Response:
    gate = _stream_gate()
    slot = gate.enter()
    if slot is None:
        log.warning("live_stream_refused", open_streams=gate.limit, path=request.path)
        refused = jsonify(error="Too many live pages are open; poll the snapshot and try the stream again later.")
        refused.status_code = 503
        refused.headers["Retry-After"] = str(STREAM_RETRY_AFTER_SECONDS)
        refused.headers["Cache-Control"] = "no-store"
        return refused
    timing = current_app.config.get("SUPERVISOR_STREAM_TIMING") or StreamTiming()
    events = follow(
        current_app.extensions["db_sessionmaker"], cursor_of, snapshot_of, request.headers.get("Last-Event-ID"), timing,
        closing=gate.closing,
        viewer_gone=hang_up_check(request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")),
    )
    response = Response(
        slot.guard(events), mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # A body that is closed before its first chunk never runs its finally.
    response.call_on_close(slot.release)
    return response


def _settings():
    return current_app.config["SETTINGS"]


def _with_queue_filter(answer, *, page: bool = False):
    """ANSWER(queue) for the queue ?queue= names (None: every queue); a 400 in words (a PAGE, or JSON) when there
    is no such queue."""
    try:
        queue = board.queue_named(request_session(), request.args.get("queue", "").strip())
    except board.UnknownQueue as unknown:
        problem = f"The filter is not possible: {unknown}."
        if page:
            return error_page(400, "No such queue", problem)
        refused = jsonify(error=problem)
        refused.status_code = 400
        return refused
    return answer(queue)


@blueprint.get("/board")
@roles_required(Role.SUPERVISOR)
def board_page():
    """Live calls, agents and transfers under way, under each queue's figures; ?queue= shows one queue's."""
    return _with_queue_filter(lambda queue: render_template(
        "supervisor/board.html", data=board.board_snapshot(request_session(), _settings(), queue),
        queues=board.queue_choices(request_session())), page=True)


@blueprint.get("/wallboard")
@roles_required(Role.SUPERVISOR)
def wallboard_page():
    """Each queue's figures in large type, for a wall screen; ?queue= shows one queue's."""
    return _with_queue_filter(lambda queue: render_template(
        "supervisor/wallboard.html", data=board.wallboard_snapshot(request_session(), _settings(), queue)),
        page=True)


@blueprint.get("/callbacks")
@roles_required(Role.SUPERVISOR)
def callbacks_page():
    """Every callback: calling and pending in their place in line, then failed and completed."""
    return render_template("supervisor/callbacks.html", callbacks=callbacks_by_state(request_session()),
                           href=board.call_href)


def _snapshot(snapshot_of):
    return _with_queue_filter(lambda queue: jsonify(snapshot_of(request_session(), _settings(), queue)))


def _follow(snapshot_of):
    return _with_queue_filter(lambda queue: _follow_queue(snapshot_of, queue))


def _follow_queue(snapshot_of, queue: Queue | None):
    settings, queue_id = _settings(), queue.id if queue is not None else None

    def snapshot(session):
        # The queue is read afresh each time: one removed while the page watched ends the stream.
        current = session.get(Queue, queue_id) if queue_id is not None else None
        if queue_id is not None and current is None:
            return None
        return snapshot_of(session, settings, current)

    return _stream(board.board_cursor, snapshot)


def _live_data(name: str, snapshot_of) -> None:
    """/NAME/snapshot (the page's data as JSON) and /NAME/stream (as server-sent events, whenever it changes),
    filtered by ?queue= as the page is."""

    def snapshot():
        return _snapshot(snapshot_of)

    def stream():
        return _follow(snapshot_of)

    blueprint.add_url_rule(f"/{name}/snapshot", f"{name}_snapshot", roles_required(Role.SUPERVISOR)(snapshot))
    blueprint.add_url_rule(f"/{name}/stream", f"{name}_stream", roles_required(Role.SUPERVISOR)(stream))


_live_data("board", board.board_snapshot)
_live_data("wallboard", board.wallboard_snapshot)


def _viewable_call(call_sid: str) -> tuple[Call | None, Response | None]:
    session = request_session()
    call = call_by_sid(session, call_sid)
    if call is None:
        return None, error_page(404, "No such call", f"There is no call {call_sid}.")
    if not _is_supervisor() and not board.agent_may_read(session, call, current_agent_id()):
        return None, error_page(403, "Not your call", "Agents can open the pages of calls they are on or "
                                "talked on only.")
    return call, None


def _call_data(call: Call) -> dict:
    session = request_session()
    session.refresh(call)  # a step of this request (a transfer form's) may have changed it since it was read
    return {**board.call_page(session, call), "may_act": _is_supervisor()}


def _render_call(call: Call, form: TransferForm | None = None, refusal: str | None = None, status: int = 200):
    data = _call_data(call)
    form = form or (_transfer_form(call) if data["may_act"] else None)
    return render_template("supervisor/call.html", data=data, form=form, actions=ActionForm(), refusal=refusal,
                           transfer_actions=TRANSFER_ACTIONS.values(), outside=_outside_allowed()), status


@blueprint.get("/calls/<call_sid>")
@roles_required(Role.SUPERVISOR, Role.AGENT)
def call_page(call_sid: str):
    """A call's timeline, transcript and transfers; the transfer form while it is live."""
    call, refused = _viewable_call(call_sid)
    return refused or _render_call(call)


@blueprint.get("/calls/<call_sid>/snapshot")
@roles_required(Role.SUPERVISOR, Role.AGENT)
def call_snapshot(call_sid: str):
    """A call page's data as JSON."""
    call, refused = _viewable_call(call_sid)
    return refused or jsonify(_call_data(call))


@blueprint.get("/calls/<call_sid>/stream")
@roles_required(Role.SUPERVISOR, Role.AGENT)
def call_stream(call_sid: str):
    """A call page's data as server-sent events, whenever it changes."""
    call, refused = _viewable_call(call_sid)
    if refused:
        return refused
    call_id, may_act, agent_id = call.id, _is_supervisor(), current_agent_id()

    # None (the stream says gone) once the call's records are removed, or an agent's access ends (they declined).
    return _stream(lambda session: board.call_cursor(session, call_id),
                   lambda session: board.call_page_as_seen(session, call_id, may_act, agent_id))


@blueprint.post("/calls/<call_sid>/transfer")
@roles_required(Role.SUPERVISOR)
def start_transfer(call_sid: str):
    """Start a warm or blind transfer of the call, as the API and DTMF do."""
    call, refused = _viewable_call(call_sid)
    if refused:
        return refused
    form = _transfer_form(call, request.form)
    if not form.validate():
        return _render_call(call, form, "Check the form: " + _first_error(form), 400)
    try:
        target = board.target_of_choice(request_session(), form.choice())
        transfer = run_step(lambda t: service.start_transfer(t, call, target, mode=form.mode.data, trigger=TransferTrigger.WEB,
                                                             by=current_actor(), notes=form.notes.data))
    except service.TransferRefused as refusal:
        return _render_call(call, form, f"The transfer was refused: {refusal}.", 409)
    except IntegrationMissing as missing:
        return _render_call(call, form, f"Transfers are not possible here: {missing}.", 503)
    flash(f"Transfer started: calling {target.label}.")
    return redirect(f"{board.call_href(call.call_sid)}#transfer-{transfer.id}")


def _supervise(call_sid: str, act):
    """Run one listen/whisper/barge action on the call (CSRF already checked): JSON, or {"error"} in words."""
    call, refused = _viewable_call(call_sid)
    if refused:
        return refused
    try:
        return jsonify(run_step(lambda t: act(t, call)))
    except listening.SupervisionRefused as refusal:
        return jsonify(error=str(refusal)), refusal.status
    except IntegrationMissing as missing:
        return jsonify(error=f"Listening is not possible here: {missing}."), 503


@blueprint.post("/calls/<call_sid>/listen")
@roles_required(Role.SUPERVISOR)
def start_listening(call_sid: str):
    """A LiveKit token for the call's room in listen mode (hear, say nothing, unseen); on the timeline."""
    def act(t, call):
        granted = listening.start(t, call, current_user.username)
        return {"url": granted.url, "token": granted.token, "room": granted.room, "identity": granted.identity,
                "agent_identity": granted.agent_identity, "mode": "listen",
                "expires_in": listening.TOKEN_TTL_SECONDS}

    return _supervise(call_sid, act)


@blueprint.post("/calls/<call_sid>/listen/mode")
@roles_required(Role.SUPERVISOR)
def switch_listening(call_sid: str):
    """Switch the connected supervisor to listen, whisper or barge: LiveKit grants the mode's permissions."""
    def act(t, call):
        mode = listening.read_mode(request.form.get("mode", ""))
        agent = listening.switch(t, call, current_user.username, mode)
        return {"mode": mode, "agent_identity": agent}

    return _supervise(call_sid, act)


@blueprint.post("/calls/<call_sid>/listen/stop")
@roles_required(Role.SUPERVISOR)
def stop_listening(call_sid: str):
    """Stop listening: LiveKit removes the supervisor from the call's room."""
    def act(t, call):
        listening.stop(t, call, current_user.username)
        return {"mode": None}

    return _supervise(call_sid, act)


def _first_error(form: FlaskForm) -> str:
    for field in form:
        if field.errors:
            return f"{field.label.text}: {field.errors[0]}"
    return "a field is not valid"


@blueprint.post("/calls/<call_sid>/transfers/<int:transfer_id>/<action>")
@roles_required(Role.SUPERVISOR)
def transfer_action(call_sid: str, transfer_id: int, action: str):
    """Complete, cancel, make three-way or swap a transfer of the call (the actions of app/transfers/actions.py)."""
    call, refused = _viewable_call(call_sid)
    if refused:
        return refused
    transfer = board.find_transfer(request_session(), call, transfer_id)
    if transfer is None or action not in TRANSFER_ACTIONS:
        return error_page(404, "No such transfer", f"Call {call_sid} has no transfer {transfer_id} to {action[:20]}.")
    if not ActionForm().validate():
        return error_page(400, "Form incomplete", "This button's form was not accepted. Reload the page and try again.")
    try:
        run_step(lambda t: act_on_transfer(t, transfer.id, action, by=current_actor()))
    except service.TransferRefused as refusal:
        flash(f"Not done: {refusal}.")
    except IntegrationMissing as missing:
        flash(f"Not done: {missing}.")
    else:
        flash(TRANSFER_ACTIONS[action].done)
    return redirect(f"{board.call_href(call.call_sid)}#transfer-{transfer_id}")


class PresenceForm(FlaskForm):
    """Set an agent available or away from the board."""

    presence = StringField("Presence", validators=[
        InputRequired(), AnyOf(agents.SUPERVISOR_PRESENCES, message="choose available or away")])


def _act_on_agent(form: FlaskForm, step):
    """Run a board button's STEP (it answers what to flash) on an agent, then go back to the board."""
    if not form.validate():
        return error_page(400, "Form not accepted", f"{_first_error(form)}. Reload the board and try again.")
    try:
        done = run_step(step)
    except agents.RosterError as missing:
        return error_page(404, "No such agent", str(missing))
    flash(done)
    return redirect("/board")


@blueprint.post("/agents/<extension>/end-wrap-up")
@roles_required(Role.SUPERVISOR)
def end_wrap_up(extension: str):
    """End an agent's after-call work now: they are offered the next call."""
    def step(t) -> str:
        if agents.end_wrap_up_early(t, extension, by=current_actor()):
            return f"Agent {extension}'s after-call work ended: calls are offered to them again."
        return f"Agent {extension} is not in after-call work."

    return _act_on_agent(ActionForm(), step)


@blueprint.post("/agents/<extension>/presence")
@roles_required(Role.SUPERVISOR)
def set_presence(extension: str):
    """Set an agent available or away, as the console does: an agent on a call stays on it."""
    form = PresenceForm()

    def step(t) -> str:
        agent = agents.set_presence_by_supervisor(t, extension, form.presence.data, by=current_actor())
        busy = "" if agent.activity == Activity.IDLE else f" (still {board.label(agent.activity)})"
        return f"Agent {extension} is {agent.presence} now{busy}."

    return _act_on_agent(form, step)
