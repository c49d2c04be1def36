"""Races on PostgreSQL under gunicorn: a transfer action (JSON API or agent console) against a party hanging up.

    .venv/bin/python -m tests.benchmarks.races [--repeats 10] [--pair complete-vs-caller ...]

The service runs as in production (gunicorn, 2 gthread workers x 4 threads)
against the loopback stand-ins. Each repetition brings one call to where its
pair starts (PAIRS: A consulting B, the caller connected to A, a transfer
offered in B's browser...), lets everything settle, then releases two real
HTTP requests together (a threading.Barrier): the action's request (the JSON
API's, or a button of B's signed-in console), and the final status callback
Twilio sends when the party (the caller, the transferring agent A or the
target B) hangs up. The simulated Twilio ends that party's leg at that moment and the
racing thread sends the leg's final callback itself (the simulator's own
copy is held back); whatever else Twilio owes, a <Dial> action say, goes
out as it would. One side gets a head start of a few milliseconds that
changes from one repetition to the next (HEAD_STARTS_MS), so both orders and
near-ties are played. Once the simulated Twilio and LiveKit have delivered
everything pending (and, when the caller is still there and the transfer
still rings B's phone, B has answered and accepted, or been busy, in turn
from one race to the next), the end state is read from the database and the
simulated phones and checked (RaceRig.check): consistent, and, when the
caller did not hang up, the end the service's rules give for the order the
two requests were served in (Pair.if_action_first, Pair.if_hang_up_first).
Then every phone still live hangs up and the next repetition starts from
idle agents.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.agents.service import DEMO_ROSTER, load_roster, read_roster
from app.auth.service import create_api_token, create_user
from app.database import alembic_config, make_engine
from app.models import (
    ACTIVE_TRANSFER_SQL,
    FINAL_CALL_STATUSES,
    Activity,
    Agent,
    Call,
    CallStatus,
    Leg,
    LegRole,
    LegStatus,
    Presence,
    Transfer,
    TransferState,
)
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.scenarios import (
    ALICE,
    BOB,
    connected_call,
    consulting,
    hears_summary,
)
from app.sandbox.served import NUMBER, Served, gunicorn_service
from app.sandbox.twilio_network import Delivery, SimCall, TwilioNetwork, TwimlError
from tests.benchmarks.call_flow import fresh_database
from tests.transfer_helpers import in_room

LIVEKIT_KEY, LIVEKIT_SECRET = "APIracecheck", "race-check-livekit-secret-0123456789"
# Milliseconds the action's request leaves before the hang-up (negative: after), one per repetition in turn.
HEAD_STARTS_MS = (0, 8, -8, 3, -3, 15, -15, 1, -1, 5)
# No reconciler: the end state must be the webhooks' own doing, not a catch-up a minute later.
SERVICE_ENV = {"SUMMARY_DEADLINE_SECONDS": "3", "RECONCILE_INTERVAL_SECONDS": "0"}
LIVE_TRANSFER_STATES = (TransferState.REQUESTED, TransferState.DIALING, TransferState.WHISPERING,
                        TransferState.CONSULTING)
WAITING = (CallStatus.QUEUED, CallStatus.RINGING_AGENT)
# What the caller hears when the only agent with them hung up (app/voice/caller.caller_goodbye).
AGENT_ENDED_THE_CALL = "The agent has ended the call"

# Where the caller ends, when they did not hang up themselves (Pair.if_action_first, if_hang_up_first).
WITH_A = "A"  # connected in the call's room with the transferring agent alone
WITH_B = "B"  # connected in the call's room with the target alone
SENT_AWAY = "sent away"  # the agent they were left with hung up: thanked, and the call is over
WAITING_AGAIN = "waiting in the queue"  # no agent left with them: queued (or ringing the next agent) again
# The transfer still rings B when the race is over: B's answer decides (RaceRig._target_decides).
TARGET_DECIDES = "the target decides"


@dataclass(frozen=True)
class Pair:
    """One race: ACTION (the API's complete, cancel, three-way, swap or start; the console's accept, decline
    or hangup) against WHO (caller, agent, target) hanging up, from the call at START.

    START: `consulting` (A consulting B), `connected` (the caller with A),
    `offered` (A started a transfer to B, offered in B's browser console),
    `with-browser` (the transfer completed: the caller with B in the browser).
    A is Alice (101) on her phone; B is Bob (102), in the browser from `offered` on.

    When WHO is not the caller: where the service's rules leave the caller
    (WITH_A, WITH_B, SENT_AWAY, TARGET_DECIDES) when the action's step is
    served first (it answers 2xx) and when the hang-up's is (the action then
    finds the transfer over, or the agent gone, and answers 409). Both take
    the call's lock, so one of the two orders is what happened.
    """

    name: str
    action: str
    who: str
    start: str
    if_action_first: str | None = None
    if_hang_up_first: str | None = None

    @property
    def in_console(self) -> bool:
        """Whether B works in the browser and ACTION is a console button."""
        return self.start in ("offered", "with-browser")


# The rules the ends follow (app/transfers/service.py, app/calls/reactions.py):
# - A hanging up during the consult completes the transfer (agent_left_during_transfer): B keeps the caller.
# - A hanging up while B's phone rings leaves the transfer to B: B accepting is connected to the caller; B
#   not answering (busy) puts the caller back in the queue, where A (free again) is rung.
# - B hanging up during the consult ends it (Ending.TARGET_HUNG_UP): A goes back to the caller.
# - An agent hanging up with no transfer under way: the other agent still connected in the call's room keeps
#   the caller (after a three-way); if none is, the caller is thanked and the call ends (reactions.agent_left).
# - A leg the action ended already (A leaving on a complete, B on a cancel) changes nothing when its final
#   callback comes.
PAIRS = {pair.name: pair for pair in (
    Pair("complete-vs-caller", "complete", "caller", "consulting"),
    Pair("cancel-vs-caller", "cancel", "caller", "consulting"),
    Pair("complete-vs-agent", "complete", "agent", "consulting", if_action_first=WITH_B, if_hang_up_first=WITH_B),
    Pair("cancel-vs-target", "cancel", "target", "consulting", if_action_first=WITH_A, if_hang_up_first=WITH_A),
    Pair("three-way-vs-caller", "three-way", "caller", "consulting"),
    Pair("swap-vs-caller", "swap", "caller", "consulting"),
    Pair("start-vs-caller", "start", "caller", "connected"),
    # Cancelled first: A, back with the caller, is the only agent left with them when A hangs up.
    Pair("cancel-vs-agent", "cancel", "agent", "consulting", if_action_first=SENT_AWAY, if_hang_up_first=WITH_B),
    # Three-way first: B is the call's agent and stays in the room when A leaves it.
    Pair("three-way-vs-agent", "three-way", "agent", "consulting", if_action_first=WITH_B,
         if_hang_up_first=WITH_B),
    # Swapped first: A is with the caller, B holds in the consult room; A leaving still completes the transfer.
    Pair("swap-vs-agent", "swap", "agent", "consulting", if_action_first=WITH_B, if_hang_up_first=WITH_B),
    # Started first: A leaves while B's phone rings. A gone first: nobody is on the call to transfer it.
    Pair("start-vs-agent", "start", "agent", "connected", if_action_first=TARGET_DECIDES,
         if_hang_up_first=SENT_AWAY),
    # Completed first: B alone with the caller (A released) when B hangs up.
    Pair("complete-vs-target", "complete", "target", "consulting", if_action_first=SENT_AWAY,
         if_hang_up_first=WITH_A),
    # Three-way first: A, still in the call's room, keeps the caller when B leaves.
    Pair("three-way-vs-target", "three-way", "target", "consulting", if_action_first=WITH_A,
         if_hang_up_first=WITH_A),
    # Swapped first: A is back with the caller while B holds; B leaving ends the consult.
    Pair("swap-vs-target", "swap", "target", "consulting", if_action_first=WITH_A, if_hang_up_first=WITH_A),
    Pair("console-accept-vs-caller", "accept", "caller", "offered"),
    Pair("console-decline-vs-caller", "decline", "caller", "offered"),
    Pair("console-hangup-vs-caller", "hangup", "caller", "with-browser"),
)}
CONSOLE_PASSWORD = "race-console-password"


def race_roster(bob_in_browser: bool = False) -> dict:
    """The demo queues, Alice (101) alone in billing and Bob (102) only in technical (BOB_IN_BROWSER: no phone).

    A billing caller (the scenarios' reason) always reaches Alice, also when
    queued again, and Bob is rung only as the transfer's target.
    """
    roster = read_roster(DEMO_ROSTER)
    skills = {"101": ["billing"], "102": ["technical"]}
    roster["agents"] = [{**agent, "skills": skills[agent["extension"]], "presence": "available"}
                        for agent in roster["agents"] if agent["extension"] in skills]
    for agent in roster["agents"]:
        if bob_in_browser and agent["extension"] == "102":
            del agent["sip_uri"]
    return roster


class Console:
    """Bob's browser: his console signed in over HTTP, and his microphone in LiveKit's rooms."""

    IDENTITY = "agent-102"  # app/primitives/legs.browser_identity

    def __init__(self, base_url: str, livekit: LiveKitStandIn):
        self.base, self.livekit = base_url, livekit
        self.http = requests.Session()
        page = self.http.get(f"{base_url}/login", timeout=20).text
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        signed_in = self.http.post(f"{base_url}/login", data={"username": "bob", "password": CONSOLE_PASSWORD,
                                                              "csrf_token": csrf}, allow_redirects=False, timeout=20)
        if signed_in.status_code != 302:
            raise RuntimeError(f"bob could not sign in: {signed_in.status_code}")
        console = self.http.get(f"{base_url}/console", timeout=20).text
        self.csrf = re.search(r'data-csrf="([^"]+)"', console).group(1)

    def press(self, button: str, **fields) -> int:
        """POST a console button as its JavaScript does; the HTTP status."""
        return self.http.post(f"{self.base}/console/{button}", data={"csrf_token": self.csrf, **fields},
                              headers={"Accept": "application/json"}, timeout=20).status_code

    def state(self) -> dict:
        return self.http.get(f"{self.base}/console/state", headers={"Accept": "application/json"}, timeout=20).json()

    def follow(self) -> None:
        """The console joins the room its state names, and leaves any other (as its LiveKit client does)."""
        call = self.state()["call"]
        room = call and call["room"]
        for name, people in list(self.livekit.participants.items()):
            if self.IDENTITY in people and name != room:
                self.livekit.leave(name, self.IDENTITY)
        if room and self.IDENTITY not in self.livekit.participants.get(room, {}):
            self.livekit.add_participant(room, self.IDENTITY)

    def leave_rooms(self) -> None:
        for name, people in list(self.livekit.participants.items()):
            if self.IDENTITY in people:
                self.livekit.leave(name, self.IDENTITY)

    def close(self) -> None:
        self.http.close()


def the_other_agent(a: SimCall) -> tuple[str, str]:
    """(extension, phone) of whichever of Alice and Bob is not on A's leg."""
    return ("101", ALICE) if a.to == BOB else ("102", BOB)


def hang_up_at_twilio(network: TwilioNetwork, leg: SimCall) -> Delivery:
    """LEG's person hangs up now: Twilio ends the leg, then this thread sends its final status callback.

    The simulator has no public way to hold a leg's final callback back for
    a test to send, so this does what its hangup() does, under its locks,
    with the leg's own copy lost on the way.
    """
    with network._delivering, network._state:
        leg.callbacks_lost = True
        network._end(leg, "completed")
    params = leg._params()
    params.update({
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(next(leg._callback_sequence)),
        "Timestamp": network.clock.now().strftime("%a, %d %b %Y %H:%M:%S +0000"),
        "CallDuration": str(leg.duration),
    })
    return network._send("status", leg.status_callback, params)


class StatusWatcher:
    """Reads a call's status every few milliseconds while it runs: the statuses it went through, in order."""

    def __init__(self, engine, call_id: int):
        self.engine, self.call_id = engine, call_id
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="race-status-watcher", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        with self.engine.connect() as connection:
            while True:
                status = connection.scalar(text("SELECT status FROM calls WHERE id = :id"), {"id": self.call_id})
                connection.rollback()
                if not self.seen or self.seen[-1] != status:
                    self.seen.append(status)
                if self._stop.wait(0.01):
                    return

    def reopened(self) -> str | None:
        """'completed -> queued' if the call left a final status, else None."""
        for before, after in zip(self.seen, self.seen[1:]):
            if before in FINAL_CALL_STATUSES and after not in FINAL_CALL_STATUSES:
                return f"{before} -> {after}"
        return None


@dataclass(frozen=True)
class Raced:
    """The call one race played on, as the race began."""

    call_id: int
    room: str  # the call's room
    caller: SimCall
    leaving: SimCall  # the phone that hung up
    parties: dict[str, str]  # the extensions of A and B (WITH_A, WITH_B)
    transfers_before: frozenset[int]  # the call's transfers already there


@dataclass
class Repetition:
    """One race played: who got a head start, what both requests were answered, what was wrong after."""

    number: int
    head_start_ms: int
    answers: dict[str, object] = field(default_factory=dict)
    # What B did with a transfer still ringing their phone once the race was over (RaceRig._target_decides).
    target_did: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    def problem(self, kind: str, detail: str = "") -> None:
        self.problems.append((kind, detail))


@dataclass
class PairResult:
    """Every repetition of one pair, and what the service logged meanwhile."""

    pair: Pair
    repetitions: list[Repetition]
    harness_errors: list[str]
    output: str = ""

    @property
    def inconsistent(self) -> list[Repetition]:
        return [r for r in self.repetitions if r.problems]

    @property
    def with_server_errors(self) -> list[Repetition]:
        return [r for r in self.repetitions if r.server_errors]

    def report(self) -> str:
        kinds = Counter(kind for r in self.repetitions for kind in dict.fromkeys(k for k, _ in r.problems))
        errors = Counter(e for r in self.repetitions for e in dict.fromkeys(r.server_errors))
        answers = Counter(f"{self.pair.action} {r.answers.get('action')} / hang-up {r.answers.get('hangup')}"
                          + (f" / target {r.target_did}" if r.target_did else "") for r in self.repetitions)
        lines = [(f"{self.pair.name}: {len(self.repetitions)} races, {len(self.inconsistent)} inconsistent, "
                  f"{len(self.with_server_errors)} with a 5xx; answers {dict(answers)}; "
                  f"tracebacks logged: {self.output.count('Traceback')}")]
        lines += [f"  {count}x {kind}" for kind, count in kinds.most_common()]
        lines += [f"  {count}x 5xx: {error}" for error, count in errors.most_common()]
        for r in self.inconsistent:
            did = f", target {r.target_did}" if r.target_did else ""
            lines.append(f"  race {r.number} ({self.pair.action} {r.head_start_ms} ms ahead, answers {r.answers}{did}):")
            lines += [f"    - {kind}{': ' + detail if detail else ''}" for kind, detail in r.problems]
        lines += [f"  harness: {error}" for error in self.harness_errors]
        return "\n".join(lines)


class RaceRig:
    """The served service, its simulated Twilio, and the steps of one race."""

    def __init__(self, served: Served, engine, token: str, console: Console | None = None):
        self.served, self.network, self.engine, self.console = served, served.network, engine, console
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {token}"
        self.harness_errors: list[str] = []
        self.target_decisions = 0  # how often B was left to decide (RaceRig._target_decides): accept, then busy...

    def settle(self, seconds: float = 20.0) -> None:
        """Until the simulated Twilio and LiveKit have nothing left to deliver (and nothing in flight)."""
        deadline = time.monotonic() + seconds
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            try:
                with self.network._delivering:  # waits for a delivery the background pump has under way
                    ran = self.network.run_pending()
            except TwimlError as error:
                self.network.errors.append(error)
                ran = 1
            quiet = 0 if ran else quiet + 1
            time.sleep(0.03)

    def play(self, pair: Pair, number: int) -> Repetition:
        """Bring a call to the pair's start, race the two requests, check the end state, tidy up."""
        rep = Repetition(number, HEAD_STARTS_MS[number % len(HEAD_STARTS_MS)])
        try:
            caller, a, b, transfer_id, b_leg_id = self._bring(pair, f"+1555777{number:04d}")
        except (AssertionError, RuntimeError) as error:
            self.harness_errors.append(f"race {number}: the call never reached {pair.start}: {error}")
            self.tidy(rep)
            return rep
        with Session(self.engine) as session:
            call_id, room = session.execute(select(Call.id, Call.room_name).where(Call.call_sid == caller.sid)).one()
            transfers_before = frozenset(session.scalars(select(Transfer.id).where(Transfer.call_id == call_id)))
        act = self._action(pair, caller, a, transfer_id, b_leg_id)
        leaving = {"caller": caller, "agent": a, "target": b}[pair.who]
        raced = Raced(call_id, room, caller, leaving, {WITH_A: "101" if a.to == ALICE else "102",
                                                       WITH_B: the_other_agent(a)[0]}, transfers_before)
        marks = (len(self.network.deliveries), len(self.network.errors), len(self.served.livekit_webhook_failures))
        hang_up_answered = []  # how many REST requests Twilio had had when the service answered the callback

        def hang_up() -> int:
            status = hang_up_at_twilio(self.network, leaving).status
            hang_up_answered.append(len(self.network.rest_log))
            return status

        with StatusWatcher(self.engine, raced.call_id) as watcher:
            rep.answers = self._race(act, hang_up, rep.head_start_ms)
            if self.console is not None:
                self.console.follow()
            self.settle()
            if pair.who != "caller":
                self._target_decides(rep, caller)
        self.check(pair, rep, raced, marks, watcher)
        if pair.who == "caller" and hang_up_answered:
            self._dialled_after(rep, raced.call_id, hang_up_answered[0])
        self.tidy(rep)
        return rep

    def _bring(self, pair: Pair, number: str):
        """The call at the pair's start, settled: (caller, a, b, transfer id, B's leg id); RuntimeError if not."""
        b = None
        if pair.start == "consulting":
            caller, a, b = consulting(self.network, NUMBER, number, target=the_other_agent)
        else:
            caller, a = connected_call(self.network, NUMBER, number)
        if pair.in_console:
            self._expect(self.api.post(f"{self.served.base_url}/api/calls/{caller.sid}/transfers",
                                       json={"extension": "102"}, timeout=20).status_code, 201, "start")
        self.settle()
        if pair.start == "with-browser":
            self._expect(self.console.press("accept", leg_id=self._transfer(caller).target_leg_id), 200, "accept")
            self.console.follow()
            self.settle()
            self._expect(self.api.post(f"{self.served.base_url}/api/transfers/{self._transfer(caller).id}/complete",
                                       timeout=20).status_code, 200, "complete")
            self.settle()
            self.console.follow()
            self.settle()
            self._expect((self.console.state()["call"] or {}).get("has_caller"), True, "Bob with the caller")
        transfer = self._transfer(caller)
        wanted = {"consulting": TransferState.CONSULTING, "offered": TransferState.DIALING}.get(pair.start)
        if (transfer.state if transfer else None) != wanted:
            raise RuntimeError(f"the transfer is {transfer and transfer.state}, not {wanted}")
        with Session(self.engine) as session:
            b_leg = session.scalar(select(Leg.id).where(Leg.agent_id == select(Agent.id).where(
                Agent.extension == "102").scalar_subquery()).order_by(Leg.id.desc()).limit(1))
        return caller, a, b, transfer and transfer.id, b_leg

    def _target_decides(self, rep: Repetition, caller: SimCall) -> None:
        """B, whose phone the call's transfer still rings once the race is over, answers and accepts (the
        first time, and every other time after) or is busy (not a miss: presence stays); what B did goes in
        REP (nothing if no transfer rings B). Then everything that follows is delivered."""
        transfer = self._transfer(caller)
        if transfer is None or transfer.state != TransferState.DIALING or transfer.target_leg_id is None:
            return
        with Session(self.engine) as session:
            sid = session.scalar(select(Leg.twilio_call_sid).where(Leg.id == transfer.target_leg_id))
        phone = self.network.calls.get(sid) if sid else None
        if phone is None or phone.status not in ("queued", "ringing"):
            return
        self.target_decisions += 1
        try:
            if self.target_decisions % 2 == 0:
                self.network.ring_out(phone.sid, "busy")
                rep.target_did = "busy"
            else:
                self.network.answer(phone.sid)
                hears_summary(self.network, phone)
                if phone.waiting_on is None or phone.waiting_on.tag != "Gather":
                    rep.target_did = f"answered, offered no key ({phone.heard_text[-80:]!r})"
                else:
                    phone.press("1")
                    rep.target_did = "accepted"
        except TwimlError as error:
            rep.target_did = "could not act"
            self.harness_errors.append(f"race {rep.number}: B could not answer the transfer's ring: {error}")
        self.settle()

    @staticmethod
    def _expect(got: object, wanted: object, what: str) -> None:
        if got != wanted:
            raise RuntimeError(f"{what}: {got}, not {wanted}")

    def _transfer(self, caller: SimCall) -> Transfer | None:
        """The call's transfer under way, if any."""
        with Session(self.engine) as session:
            return session.scalar(select(Transfer).join(Call).where(Call.call_sid == caller.sid,
                                                                    text(f"transfers.{ACTIVE_TRANSFER_SQL}")))

    def _action(self, pair: Pair, caller: SimCall, a: SimCall, transfer_id: int | None, b_leg_id: int | None):
        """The request racing the hang-up: a function that sends it and gives its HTTP status."""
        base = self.served.base_url
        if pair.in_console:
            return lambda: self.console.press(pair.action, leg_id=b_leg_id)
        if pair.action == "start":
            body = {"extension": the_other_agent(a)[0]}
            return lambda: self.api.post(f"{base}/api/calls/{caller.sid}/transfers", json=body, timeout=20).status_code
        return lambda: self.api.post(f"{base}/api/transfers/{transfer_id}/{pair.action}", timeout=20).status_code

    def _race(self, act, hang_up, head_start_ms: int) -> dict[str, object]:
        """Release both requests at once (the later one HEAD_START_MS after); their answers, or the error."""
        barrier = threading.Barrier(2)
        answers: dict[str, object] = {}

        def run(name: str, send, delay: float) -> None:
            try:
                barrier.wait(timeout=30)
                time.sleep(delay)
                answers[name] = send()
            except Exception as error:  # noqa: BLE001 - reported with the race
                answers[name] = error

        threads = [threading.Thread(target=run, args=("action", act, max(0, -head_start_ms) / 1000)),
                   threading.Thread(target=run, args=("hangup", hang_up, max(0, head_start_ms) / 1000))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return answers

    def check(self, pair: Pair, rep: Repetition, raced: Raced, marks, watcher) -> None:
        """Write down in REP every way the end state is not consistent, and every 5xx."""
        deliveries, errors, livekit = marks
        for name in ("action", "hangup"):
            answer = rep.answers.get(name)
            if not isinstance(answer, int):
                rep.problem(f"{name} request failed", repr(answer))
            elif answer >= 500:
                rep.server_errors.append(f"{'the action' if name == 'action' else 'status callback'} answered {answer}")
            elif name == "action" and answer not in (200, 201, 409):
                rep.problem(f"the action answered {answer}")
            elif name == "hangup" and not 200 <= answer < 300:
                rep.problem(f"the status callback answered {answer}")
        for delivery in self.network.deliveries[deliveries:]:
            if delivery.status >= 500:
                path = delivery.url.split("?")[0].split("/", 3)[-1]
                rep.server_errors.append(f"{delivery.kind} /{path} answered {delivery.status}")
        for status, _body in self.served.livekit_webhook_failures[livekit:]:
            rep.server_errors.append(f"LiveKit webhook answered {status}")
        for error in self.network.errors[errors:]:
            rep.problem("simulated Twilio refused the service's answer", str(error)[:200])
        if watcher.reopened():
            rep.problem(f"final call became live again ({watcher.reopened()})")

        with Session(self.engine) as session:
            call = session.get(Call, raced.call_id)
            legs = session.scalars(select(Leg).where(Leg.call_id == raced.call_id).order_by(Leg.id)).all()
            transfers = session.scalars(select(Transfer).where(Transfer.call_id == raced.call_id)).all()
            agents = {agent.id: agent for agent in session.scalars(select(Agent))}
            self._check_state(pair, rep, raced, call, legs, transfers, agents)

    def _dialled_after(self, rep: Repetition, call_id: int, mark: int) -> None:
        """A phone of this call that Twilio was asked to dial once the service had answered the caller's hang-up."""
        with Session(self.engine) as session:
            leg_ids = {str(i) for i in session.scalars(select(Leg.id).where(Leg.call_id == call_id))}
        for request in self.network.rest_log[mark:]:
            if request.method == "POST" and request.path.endswith("/Calls.json"):
                leg = parse_qs(urlsplit(request.form.get("Url", "")).query).get("leg", [""])[0]
                if leg in leg_ids:
                    rep.problem("a phone was dialled after the service had answered the caller's hang-up",
                                f"leg {leg}, {request.form.get('To')}")

    def _check_state(self, pair, rep, raced, call, legs, transfers, agents) -> None:
        phone = {leg.id: self.network.calls.get(leg.twilio_call_sid) for leg in legs}
        agent_legs = [leg for leg in legs if leg.role != LegRole.CALLER]
        live_transfers = [t.state for t in transfers if t.state in LIVE_TRANSFER_STATES]
        if call.ended_at is not None:
            for leg in agent_legs:
                if leg.created_at > call.ended_at:
                    rep.problem("an agent was rung after the caller had gone",
                                f"{leg.role} leg {leg.id} of agent {leg.agent_id}")
        # Nobody pressed `*` during the race: the start's transfer is the only one either request may open.
        asked = 1 if pair.action == "start" and rep.answers.get("action") == 201 else 0
        opened = [t for t in transfers if t.id not in raced.transfers_before]
        if len(opened) > asked:
            rep.problem("a transfer opened during the race that neither request asked for",
                        f"{len(opened)} opened, {asked} asked for: " + ", ".join(
                            f"transfer {t.id} by {t.trigger} from "
                            f"{agents[t.from_agent_id].extension if t.from_agent_id else None}, {t.state}"
                            for t in opened))
        if pair.who == "caller":
            self._caller_gone(rep, call, legs, agent_legs, live_transfers, agents, phone)
        else:
            left = next((leg for leg in agent_legs if leg.twilio_call_sid == raced.leaving.sid), None)
            self._caller_stayed(rep, call, legs, agent_legs, transfers, live_transfers, agents, phone, raced.room,
                                raced.caller, left)
            self._ends_by_the_rules(pair, rep, call, agent_legs, agents, raced.caller, raced.parties)

    def _caller_gone(self, rep, call, legs, agent_legs, live_transfers, agents, phone) -> None:
        if call.status not in (CallStatus.COMPLETED, CallStatus.ABANDONED):
            rep.problem(f"call left {call.status} after the caller hung up")
        for leg in legs:
            if not leg.is_final:
                rep.problem(f"{leg.role} leg left {leg.status} after the caller hung up", f"leg {leg.id}")
        for state in live_transfers:
            rep.problem(f"transfer left {state} after the caller hung up")
        for agent_id in {leg.agent_id for leg in agent_legs if leg.agent_id}:
            if agents[agent_id].activity != Activity.IDLE:
                rep.problem(f"agent left {agents[agent_id].activity} after the caller hung up",
                            agents[agent_id].extension)
        for leg in agent_legs:
            if phone[leg.id] is not None and phone[leg.id].live:
                asked = sum(1 for r in self.network.rest_log
                            if r.path.endswith(f"/Calls/{leg.twilio_call_sid}.json") and r.form.get("Status"))
                rep.problem(f"{leg.role} phone still {phone[leg.id].status} at Twilio after the caller hung up",
                            f"leg {leg.id}, {leg.status} in the database; the service asked Twilio to end it "
                            f"{asked} times")

    @staticmethod
    def _with_the_caller(call: Call, agent_legs: list[Leg]) -> list[Leg]:
        """The agent legs connected in the call's room."""
        return [leg for leg in agent_legs if leg.status == LegStatus.CONNECTED and leg.room_name == call.room_name]

    def _caller_stayed(self, rep, call, legs, agent_legs, transfers, live_transfers, agents, phone, room, caller,
                       left) -> None:
        """The caller did not hang up: connected with the agents in the call's room, waiting in the queue, or
        sent away (thanked, the call over) because the agent LEFT, who hung up, was the only one with them."""
        room_user = room.split("_", 1)[1]
        for state in live_transfers:
            rep.problem(f"transfer still {state} after both requests", f"call {call.status}")
        in_room_legs = self._with_the_caller(call, agent_legs)
        if call.status == CallStatus.CONNECTED:
            # One agent with the caller; two after a three-way call (until one of them leaves).
            three_way = any(t.state == TransferState.COMPLETED and t.end_reason == "three-way" for t in transfers)
            if len(in_room_legs) not in ((1, 2) if three_way else (1,)):
                rep.problem(f"caller connected with {len(in_room_legs)} live agent legs in the call's room",
                            ", ".join(f"{leg.role} leg {leg.id} {leg.status} in {leg.room_name}" for leg in agent_legs))
            for leg in in_room_legs:
                if (agent_phone := phone[leg.id]) is not None and not in_room(agent_phone, room_user):
                    rep.problem("the agent connected in the database is not in the call's room at Twilio",
                                f"{leg.role} leg {leg.id}: {agent_phone!r}")
            for leg in agent_legs:
                if not leg.is_final and leg not in in_room_legs:
                    rep.problem(f"{leg.role} leg {leg.status} outside the call's room while the caller is connected",
                                f"leg {leg.id} of {agents[leg.agent_id].extension if leg.agent_id else None} "
                                f"in {leg.room_name}")
            if not in_room(caller, room_user):
                rep.problem("caller connected in the database but not in the call's room at Twilio", repr(caller))
        elif call.status in WAITING:
            if not caller.live:
                rep.problem(f"call {call.status} but the caller's leg is over at Twilio")
        elif call.is_final and AGENT_ENDED_THE_CALL in caller.heard_text:
            self._sent_away(rep, call, agent_legs, agents, left)
        else:
            rep.problem(f"call left {call.status} though the caller did not hang up",
                        f"caller at Twilio: {caller.status}; heard {caller.heard_text[-120:]!r}")
        for leg in legs:
            if phone[leg.id] is None:
                continue
            if not leg.is_final and not phone[leg.id].live:
                rep.problem(f"{leg.role} leg {leg.status} in the database but over at Twilio", f"leg {leg.id}")
            if leg.is_final and phone[leg.id].live:
                rep.problem(f"{leg.role} leg {leg.status} in the database but {phone[leg.id].status} at Twilio",
                            f"leg {leg.id}")
        for agent_id in {leg.agent_id for leg in agent_legs if leg.agent_id}:
            live = any(not leg.is_final for leg in agent_legs if leg.agent_id == agent_id)
            activity = agents[agent_id].activity
            if not live and activity != Activity.IDLE:
                rep.problem(f"agent left {activity} with no live leg", agents[agent_id].extension)
            if live and activity == Activity.IDLE:
                rep.problem("agent idle with a live leg", agents[agent_id].extension)

    @staticmethod
    def _sent_away(rep, call, agent_legs, agents, left) -> None:
        """The caller heard the goodbye and the call is over: the agent who hung up (LEFT) was the call's agent,
        and every other agent's leg had ended before theirs did."""
        if left is None or not left.is_final:
            rep.problem("caller sent away though the leg that hung up is not over in the database",
                        f"leg {left and left.id} {left and left.status}")
            return
        if call.agent_id != left.agent_id:
            rep.problem("caller sent away while the call's agent was not the one who hung up",
                        f"call's agent {agents[call.agent_id].extension if call.agent_id else None}, "
                        f"hung up: {agents[left.agent_id].extension if left.agent_id else None}")
        for leg in agent_legs:
            if leg is not left and (leg.ended_at is None or leg.ended_at > left.ended_at):
                rep.problem(f"caller sent away while a {leg.role} leg was still live",
                            f"leg {leg.id} of {agents[leg.agent_id].extension if leg.agent_id else None} "
                            f"ended {leg.ended_at}, after the leg that hung up ({left.ended_at})")

    def _ends_by_the_rules(self, pair, rep, call, agent_legs, agents, caller, parties) -> None:
        """Where the caller ended is where the service's rules leave them, for the order the requests were served."""
        answer = rep.answers.get("action")
        if answer not in (200, 201, 409):
            return  # a failed or unexpected answer is a problem already
        end = pair.if_hang_up_first if answer == 409 else pair.if_action_first
        if end == TARGET_DECIDES:
            end = {"accepted": WITH_B, "busy": WAITING_AGAIN}.get(rep.target_did)
            if end is None:
                rep.problem(f"no transfer rang B for an answer once the {pair.action} answered {answer}"
                            if rep.target_did is None else f"B's answer to the transfer: {rep.target_did}")
                return
        wanted = {WITH_A: f"with {parties[WITH_A]}", WITH_B: f"with {parties[WITH_B]}"}.get(end, end)
        if call.status == CallStatus.CONNECTED:
            got = "with " + (" and ".join(sorted(agents[leg.agent_id].extension if leg.agent_id else "someone outside"
                                                 for leg in self._with_the_caller(call, agent_legs))) or "no agent")
        elif call.status in WAITING:
            got = WAITING_AGAIN
        elif call.is_final and AGENT_ENDED_THE_CALL in caller.heard_text:
            got = SENT_AWAY
        elif call.status == CallStatus.ON_HOLD:
            got = "on hold"
        else:
            got = f"in a call left {call.status}"
        if got != wanted:
            rep.problem(f"caller {got} after the {pair.action} answered {answer}", f"the service's rules: {wanted}")

    def tidy(self, rep: Repetition) -> None:
        """Every phone still live hangs up (callers first); what the service still holds after that is reset."""
        for callers_first in (True, False):
            for leg in list(self.network.calls.values()):
                if not leg.live or (leg.direction == "inbound") != callers_first:
                    continue
                try:
                    if leg.status in ("queued", "ringing"):
                        self.network.ring_out(leg.sid, "busy")  # busy: not a miss, so presence stays
                    else:
                        leg.hangup()
                except TwimlError:
                    pass  # the service ended it meanwhile
                self.settle()
        if self.console is not None:
            self.console.leave_rooms()
            self.settle()
        with Session(self.engine) as session:
            left = [f"call {i} {status}" for i, status in session.execute(
                select(Call.id, Call.status).where(Call.status.not_in(tuple(FINAL_CALL_STATUSES))))]
            left += [f"agent {ext} {activity}/{presence}" for ext, activity, presence in session.execute(
                select(Agent.extension, Agent.activity, Agent.presence).where(
                    (Agent.activity != Activity.IDLE) | (Agent.presence != Presence.AVAILABLE)))]
            left += [f"transfer {i} {state}" for i, state in session.execute(
                select(Transfer.id, Transfer.state).where(text(ACTIVE_TRANSFER_SQL)))]
            if left:
                # The next race must start from idle agents and no live call, and
                # the service did not get there by itself once everyone hung up.
                rep.problem("not idle even after every phone hung up (reset by the harness)", ", ".join(left))
                session.execute(text("UPDATE calls SET status = 'completed', ended_at = now() "
                                     "WHERE status NOT IN ('completed', 'abandoned', 'failed', 'voicemail', "
                                     "'callback_requested')"))
                session.execute(text("UPDATE legs SET status = 'ended', ended_at = now() "
                                     "WHERE status IN ('dialing', 'whisper', 'connected', 'on_hold')"))
                session.execute(text(f"UPDATE transfers SET state = 'cancelled' WHERE {ACTIVE_TRANSFER_SQL}"))
                session.execute(text("UPDATE agents SET activity = 'idle', presence = 'available', missed_in_row = 0"))
                session.commit()


def run_pair(database_url: str, name: str, *, repeats: int = 10, workers: int = 2, threads: int = 4) -> PairResult:
    """Play the pair NAME REPEATS times against the service on DATABASE_URL (migrated, empty)."""
    pair = PAIRS[name]
    engine = make_engine(database_url, pooled=False)
    with Session(engine) as session:
        load_roster(session, race_roster(bob_in_browser=pair.in_console))
        token = create_api_token(session, "races", ["read", "act"])
        if pair.in_console:
            create_user(session, "bob", CONSOLE_PASSWORD, "agent", agent_extension="102")
        session.commit()
    try:
        with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm, \
                gunicorn_service(database_url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY,
                                 livekit_secret=LIVEKIT_SECRET, workers=workers, threads=threads,
                                 extra_env=SERVICE_ENV) as served:
            console = Console(served.base_url, livekit) if pair.in_console else None
            rig = RaceRig(served, engine, token, console)
            try:
                repetitions = [rig.play(pair, n) for n in range(repeats)]
            finally:
                rig.api.close()
                if console is not None:
                    console.close()
        result = PairResult(pair, repetitions, rig.harness_errors, served.output)
    finally:
        engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pair", action="append", choices=sorted(PAIRS), help="default: every pair")
    args = parser.parse_args()
    from alembic import command

    for name in args.pair or PAIRS:
        url, drop = fresh_database("postgres")
        try:
            command.upgrade(alembic_config(url), "head")
            print(run_pair(url, name, repeats=args.repeats).report() + "\n", flush=True)
        finally:
            drop()


if __name__ == "__main__":
    main()
