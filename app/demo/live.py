"""`flask demo --live`: callers played slowly through the stand-ins, to watch on the service's own board.

The service runs under gunicorn on its own database (app/sandbox/served.py,
as the multi-worker tests and the benchmarks run it), reaching the Twilio,
LiveKit and LLM stand-ins through its base-URL settings. Twilio's side runs
in real time: its virtual clock follows the wall clock, so hold music ends
after its ten seconds and the service's hold loop looks at each waiting
caller then, as it would for real.

The people are played here, one step of one person at a time on one thread,
with PACE seconds between a person's steps: callers dial, say why they call,
wait in line, talk to the agent who answers, are warm-transferred, leave a
voicemail or ask for a callback at the options, and hang up; agents pick up
what rings their phone (a call, a transfer with its summary, a callback);
a customer called back picks up and talks. Callers arrive faster than three
agents can answer them, so a line forms and the options are heard.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generator, Optional

import requests
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from app.auth import service as auth
from app.database import make_engine
from app.demo.script import DemoFailed, Echo, display_url, prepare_database
from app.models import FINAL_TRANSFER_STATES, Agent, Call, Transfer, TransferState
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.scenarios import CONVERSATION, hang_up_everyone, summary_reaches
from app.sandbox.served import ACCOUNT_SID, AUTH_TOKEN, NUMBER, gunicorn_service
from app.sandbox.twilio_network import SimCall, TwilioNetwork, http_transport
from config import Settings

# How often the show looks at the world, in real seconds.
TICK_SECONDS = 0.05
# The longest a person takes to answer a prompt (a ring, a menu, the IVR): past
# the pace's steps, the service's own ring and key timeouts would run out.
LONGEST_REACTION_SECONDS = 3.0
# How long a step may wait for the service before the person gives up (hangs up).
PATIENCE_SECONDS = 240.0
# The longest wait in line before the options (voicemail, a callback, more waiting), in steps of the pace
# and at least ten seconds: for the demo only, short enough to be heard while watching.
QUEUE_WAIT_STEPS = 8
SHORTEST_QUEUE_WAIT_SECONDS = 10
DEMO_SUPERVISOR = "demo-supervisor"
REASONS = (
    "I was charged twice for my internet bill",
    "My internet router is broken again",
    "I have a question about a refund on my invoice",
    "There is an outage and my internet keeps dropping",
)
AFTER_TRANSFER = "Thank you, the refund is all I needed"

Step = Generator[float, None, None]


@dataclass
class ShowResult:
    """What the show played, and what went other than planned."""

    service_url: str = ""
    service_pid: Optional[int] = None
    problems: list[str] = field(default_factory=list)
    # How many callers came, talked to an agent, were warm-transferred, left a voicemail, asked for a callback.
    callers: int = 0
    talked: int = 0
    transferred: int = 0
    voicemails: int = 0
    callbacks: int = 0


@dataclass
class _Actor:
    name: str
    steps: Step
    due: float = 0.0


def board_address(settings: Settings, port: int) -> str:
    """Where to open the board from this machine (or, in a container, from its host)."""
    host = settings.host if settings.host not in ("0.0.0.0", "::", "127.0.0.1", "") else "localhost"
    return f"http://{host}:{port}/"


def demo_supervisor(sessions: sessionmaker, settings: Settings, echo: Echo) -> None:
    """Make sure someone can sign in to the board, and say who."""
    given = bool(settings.supervisor_username and settings.supervisor_password)
    username = settings.supervisor_username if given else DEMO_SUPERVISOR
    password = settings.supervisor_password if given else secrets.token_urlsafe(12)
    with sessions() as session:
        if auth.supervisor_exists(session):
            echo("   Sign in as one of this database's supervisors (flask --app wsgi users list); to add one: "
                 "flask --app wsgi users create --username NAME --role supervisor")
            return
        auth.bootstrap_supervisor(session, username, password)
        # A command's own commit, not a step on a call: the demo's supervisor must exist before gunicorn
        # starts and the board is signed in to (tests/test_architecture.py counts it).
        session.commit()
    if given:
        echo(f"   Sign in as {username}, with the password in SUPERVISOR_PASSWORD (created now: no supervisor "
             "existed).")
    else:
        echo(f"   Sign in as {username}, password {password} (created now: no supervisor existed; change it "
             f"with flask --app wsgi users set-password --username {username}).")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _media_over_http(url: str) -> Optional[bytes]:
    """What Twilio downloads for a <Play>: the service's own hold clip (measured, so it lasts its ten seconds)."""
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException:
        return None
    return response.content if response.status_code == 200 else None


def run_live(settings: Settings, echo: Echo, *, callers: Optional[int] = None, pace: float = 2.0, port: int = 8000,
             stop: Optional[threading.Event] = None, after_step: Optional[Callable[[], None]] = None) -> ShowResult:
    """Serve the service on PORT against the stand-ins and play CALLERS callers (None: until STOP or Ctrl-C).

    AFTER_STEP, if given, runs after each person's step (a test looks at the board then).
    Everything started here is stopped before it returns, however it ends.
    """
    if settings.production:
        raise DemoFailed("the live demo writes demo calls into the database: it does not run with APP_ENV=production")
    if not _port_free(settings.host, port):
        raise DemoFailed(f"port {port} on {settings.host} is in use (is the service running?): choose another "
                         "with --port")
    database_url = settings.database_url
    prepare_database(database_url, echo)
    engine = make_engine(database_url, pooled=False)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    livekit_key, livekit_secret = "APIdemo" + secrets.token_hex(4), secrets.token_urlsafe(24)
    livekit = llm = None
    result = ShowResult()
    try:
        livekit = LiveKitStandIn(livekit_key, livekit_secret).start()
        llm = LLMStandIn("normal").start()
        network = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, http_transport(timeout=20), media_fetcher=_media_over_http)
        extra_env = {
            "HOST": settings.host,
            "SECRET_KEY": settings.secret_key,
            # A caller past this wait hears the options; callers on +1555 numbers may be called back.
            "MAX_QUEUE_WAIT_SECONDS": str(max(SHORTEST_QUEUE_WAIT_SECONDS, round(QUEUE_WAIT_STEPS * pace))),
            "OUTBOUND_CALL_ALLOW": "+1555",
        }
        echo(f"Switchboard live demo: the service on port {port} under gunicorn, Twilio, LiveKit and the LLM "
             "played by local stand-ins; no account is used.")
        echo(f"   The demo's calls land in the service's own database, {display_url(database_url)}: they stay "
             "in its history.")
        demo_supervisor(sessions, settings, echo)
        with gunicorn_service(database_url, livekit=livekit, llm=llm, livekit_key=livekit_key,
                              livekit_secret=livekit_secret, workers=settings.web_concurrency,
                              threads=settings.web_threads, extra_env=extra_env, network=network,
                              port=port) as served:
            result.service_pid = served.process.pid
            result.service_url = served.base_url
            echo(f"   Open the board: {board_address(settings, port)}board")
            echo(f"   {callers if callers is not None else 'Callers until Ctrl-C'}"
                 f"{' callers' if callers is not None else ''}, {pace:g} s between a person's steps.\n")
            show = Show(network, sessions, echo, pace=pace, result=result, after_step=after_step)
            try:
                show.play(callers, stop or threading.Event())
            finally:
                hang_up_everyone(network)
            if "Traceback" in served.output:
                result.problems.append("the service logged an error: " + served.output[-2000:])
    finally:
        if llm is not None:
            llm.stop()
        if livekit is not None:
            livekit.stop()
        engine.dispose()
    return result


class Show:
    """The people on the phones, each a generator of steps that yields how long to wait before the next."""

    def __init__(self, network: TwilioNetwork, sessions: sessionmaker, echo: Echo, *, pace: float,
                 result: ShowResult, after_step: Optional[Callable[[], None]] = None):
        self.network = network
        self.sessions = sessions
        self.echo = echo
        self.pace = pace
        self.react = min(pace, LONGEST_REACTION_SECONDS)
        self.result = result
        self.after_step = after_step
        self.actors: list[_Actor] = []
        self.seen: set[str] = set()
        with sessions() as session:
            self.agents = {agent.sip_uri: agent for agent in session.scalars(
                select(Agent).where(Agent.sip_uri.is_not(None)))}
        if not any(agent.presence == "available" for agent in self.agents.values()):
            raise DemoFailed("no agent with a phone is available to answer: flask agents presence EXTENSION "
                             "available")
        self.started = time.monotonic()
        self.clock_started = network.clock.now()

    def play(self, callers: Optional[int], stop: threading.Event) -> None:
        """Bring in a caller every two steps until CALLERS have come, and play everyone until all are done."""
        next_caller = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            self._follow_the_clock()
            self.network.run_pending()
            self._pick_up_phones()
            if (callers is None or self.result.callers < callers) and now >= next_caller:
                self.result.callers += 1
                number = self.result.callers
                self._add(f"caller {number}", self._caller(number))
                next_caller = now + 2 * self.pace
            elif callers is not None and self.result.callers >= callers and not self.actors:
                return
            for actor in [a for a in self.actors if a.due <= now]:
                self._step(actor)
            stop.wait(TICK_SECONDS)

    def _add(self, name: str, steps: Step) -> None:
        self.actors.append(_Actor(name, steps, time.monotonic()))

    def _step(self, actor: _Actor) -> None:
        try:
            actor.due = time.monotonic() + next(actor.steps)
        except StopIteration:
            self.actors.remove(actor)
        except Exception as error:  # noqa: BLE001 - one person's trouble is told, and the show goes on
            self.actors.remove(actor)
            problem = f"{actor.name}: {type(error).__name__}: {error}"
            self.result.problems.append(problem)
            self.echo(f"   ({problem}; they hang up)")
        if self.network.errors:
            error = self.network.errors.pop(0)
            self.result.problems.append(f"Twilio's side: {error}")
            self.echo(f"   (Twilio's side hit an error: {error})")
        if self.after_step is not None:
            self.after_step()

    def _follow_the_clock(self) -> None:
        """Move Twilio's virtual clock up to the wall clock, so its timers (music, rings) run in real time."""
        behind = (time.monotonic() - self.started) - (self.network.clock.now() - self.clock_started).total_seconds()
        if behind > 0.5:
            self.network.advance(behind)

    # --- who is where ---

    def _room(self, leg: SimCall) -> Optional[str]:
        verb = leg.waiting_on
        if not leg.live or verb is None or verb.tag != "Dial" or not leg.bridged or not leg.dialed:
            return None
        return leg.dialed[0].target

    def _room_mates(self, leg: SimCall) -> list[SimCall]:
        room = self._room(leg)
        if room is None:
            return []
        return [other for other in list(self.network.calls.values())
                if other.sid != leg.sid and self._room(other) == room]

    def _agent_with(self, leg: SimCall) -> Optional[SimCall]:
        return next((mate for mate in self._room_mates(leg) if mate.to in self.agents), None)

    def _name(self, leg: SimCall) -> str:
        agent = self.agents.get(leg.to)
        return agent.name if agent is not None else leg.to

    def _offered_options(self, leg: SimCall) -> bool:
        verb = leg.waiting_on
        return leg.live and verb is not None and verb.tag == "Gather" and bool(leg.heard) \
            and "To leave a message" in leg.heard[-1]

    def _until(self, ready: Callable[[], bool], seconds: float = PATIENCE_SECONDS) -> Generator[float, None, bool]:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                return False
            yield TICK_SECONDS
        return True

    def _transfer(self, call_sid: str) -> Optional[Transfer]:
        with self.sessions() as session:
            return session.scalar(select(Transfer).join(Call).where(Call.call_sid == call_sid)
                                  .order_by(Transfer.id.desc()))

    def _free_colleague(self, agent_leg: SimCall) -> Optional[Agent]:
        busy = {leg.to for leg in list(self.network.calls.values()) if leg.live}
        with self.sessions() as session:
            free = session.scalars(select(Agent).where(Agent.sip_uri.is_not(None), Agent.presence == "available",
                                                       Agent.activity == "idle").order_by(Agent.extension))
            return next((agent for agent in free if agent.sip_uri != agent_leg.to and agent.sip_uri not in busy),
                        None)

    # --- the people ---

    def _pick_up_phones(self) -> None:
        """Every phone Twilio starts ringing gets someone to pick it up: an agent, or a customer called back."""
        for leg in list(self.network.calls.values()):
            if leg.sid in self.seen or leg.direction != "outbound-api" or leg.status not in ("queued", "ringing"):
                continue
            self.seen.add(leg.sid)
            if leg.to in self.agents:
                self._add(self._name(leg), self._agent(leg))
            else:
                self._add(f"customer {leg.to}", self._customer(leg))

    def _caller(self, number: int) -> Step:
        name = f"Caller {number}"
        phone = f"+15557{number % 1000000:06d}"
        reason = REASONS[(number - 1) % len(REASONS)]
        wants_transfer = number % 3 == 1
        leg = self.network.incoming_call(phone, NUMBER)
        self.echo(f"{name} ({phone}) dials {NUMBER}.")
        yield self.react
        leg.speak(reason)
        self.echo(f'{name} says: "{reason}"')
        on_hold = False
        deadline = time.monotonic() + PATIENCE_SECONDS
        while leg.live and self._agent_with(leg) is None and not self._offered_options(leg):
            verb = leg.waiting_on
            if not on_hold and verb is not None and verb.tag == "Play":
                on_hold = True
                self.echo(f"{name} is on hold, hearing music, while the service finds an agent.")
            if time.monotonic() > deadline:
                leg.hangup()
                self.echo(f"{name} gives up waiting and hangs up.")
                return
            yield TICK_SECONDS
        if self._offered_options(leg):
            yield from self._takes_an_option(name, leg, number)
            return
        if not leg.live:
            self.echo(f"{name}'s call ended ({leg.status}).")
            return
        agent = self._agent_with(leg)
        self.result.talked += 1
        self.echo(f"{name} is talking to {self._name(agent)}.")
        for speaker, words in CONVERSATION:
            yield self.pace
            (leg if speaker == "caller" else agent).transcribe(words, track="inbound_track")
            self.echo(f'   {name if speaker == "caller" else self._name(agent)}: "{words}"')
        if wants_transfer:
            yield from self._warm_transfer(name, leg, agent)
        yield self.pace
        leg.hangup()
        self.network.run_pending()
        for mate in self._room_mates(leg) + [agent]:
            if mate.live:
                mate.hangup()
        self.echo(f"{name} hangs up.")

    def _takes_an_option(self, name: str, leg: SimCall, number: int) -> Step:
        yield self.react
        if number % 2:
            leg.press("1")
            self.echo(f"{name} has waited long enough and presses 1 to leave a voicemail.")
            if (yield from self._until(lambda: not leg.live or getattr(leg.waiting_on, "tag", None) == "Record", 30)) and leg.live:
                yield self.pace
                leg.recording_done()
                self.result.voicemails += 1
                self.echo(f"{name} leaves a message and hangs up.")
        else:
            leg.press("2")
            self.result.callbacks += 1
            self.echo(f"{name} has waited long enough and presses 2 to be called back.")

    def _warm_transfer(self, name: str, caller: SimCall, agent: SimCall) -> Step:
        colleague = self._free_colleague(agent)
        if colleague is None:
            self.echo(f"   {self._name(agent)} would transfer {name}, but nobody is free.")
            return
        yield self.pace
        agent.press_star()
        agent.press(f"2{colleague.extension}#")
        self.echo(f"{self._name(agent)} presses * 2 {colleague.extension} #: a warm transfer to {colleague.name}; "
                  f"{name} hears hold music.")

        def settled() -> bool:
            transfer = self._transfer(caller.sid)
            return not caller.live or (transfer is not None and (transfer.state == TransferState.CONSULTING
                                                                 or transfer.state in FINAL_TRANSFER_STATES))

        yield from self._until(settled, 60)
        transfer = self._transfer(caller.sid)
        if not caller.live or transfer is None or transfer.state != "consulting":
            self.echo(f"   The transfer to {colleague.name} did not go through "
                      f"({transfer.state if transfer else 'no transfer'}).")
            return
        yield self.pace
        agent.press_star()
        agent.press("2")
        self.network.run_pending()
        transfer = self._transfer(caller.sid)
        self.echo(f"{self._name(agent)} completes the transfer: {name} is with {colleague.name} "
                  f"(transfer {transfer.state}).")
        if transfer.state == "completed":
            self.result.transferred += 1
        target = self._agent_with(caller)
        if target is not None:
            yield self.pace
            caller.transcribe(AFTER_TRANSFER, track="inbound_track")
            self.echo(f'   {name} to {self._name(target)}: "{AFTER_TRANSFER}"')

    def _agent(self, leg: SimCall) -> Step:
        name = self._name(leg)
        yield self.react
        if leg.status not in ("queued", "ringing"):
            return
        self.network.answer(leg.sid)
        if not (yield from self._until(lambda: not leg.live or leg.waiting_on is not None, 10)) or not leg.live:
            return
        heard = leg.heard_text
        if "Transfer from" in heard:
            self.echo(f"{name} picks up: a transfer is offered; they press 1 for the summary.")
            yield self.react
            if self._offer_gone(name, leg):
                return
            before = len(leg.heard)
            leg.press("1")
            summary_reaches(self.network, leg)
            for said in leg.heard[before:]:
                self.echo(f'   {name} hears: "{said}"')
            yield self.react
            if self._offer_gone(name, leg):
                return
            leg.press("1")
            self.echo(f"{name} presses 1 to accept and joins the consult.")
        elif "Callback to" in heard:
            self.echo(f"{name} picks up: a callback is offered; they press 1 to call the customer now.")
            yield self.react
            if not self._offer_gone(name, leg):
                leg.press("1")
        else:
            self.echo(f"{name}'s phone rings with a call; they pick up and press 1 to take it.")
            yield self.react
            if not self._offer_gone(name, leg):
                leg.press("1")

    def _offer_gone(self, name: str, leg: SimCall) -> bool:
        """Whether the offer ended before the agent's key (the caller left, or took the options): told so."""
        verb = leg.waiting_on
        if leg.live and verb is not None and verb.tag == "Gather":
            return False
        self.echo(f"   The offer to {name} ended before they pressed a key ({leg.status}).")
        return True

    def _customer(self, leg: SimCall) -> Step:
        yield self.react
        if leg.status not in ("queued", "ringing"):
            return
        self.network.answer(leg.sid)
        self.echo(f"The customer at {leg.to} is called back and picks up.")
        if not (yield from self._until(lambda: not leg.live or self._agent_with(leg) is not None, 30)):
            leg.hangup()
            return
        agent = self._agent_with(leg)
        if agent is None:
            return
        yield self.pace
        leg.transcribe("Thanks for calling me back", track="inbound_track")
        self.echo(f'   The customer at {leg.to}: "Thanks for calling me back"')
        yield 2 * self.pace
        leg.hangup()
        self.network.run_pending()
        if agent.live:
            agent.hangup()
        self.echo(f"The customer at {leg.to} hangs up.")

