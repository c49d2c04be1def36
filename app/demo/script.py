"""The scripted demo call: a whole local world on loopback and one warm transfer driven through it.

Every hop is real HTTP: Twilio's side of the calls (signed webhooks out, REST
in), the LiveKit and LLM stand-ins, and the service itself. So signatures,
the REST clients, the background summary and its deadline all run as they
do in production; only the people on the phones are scripted.
"""

from __future__ import annotations

import logging
import secrets
import textwrap
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker
from werkzeug.serving import WSGIRequestHandler, make_server

from app.agents.service import DEMO_ROSTER, load_roster, read_roster
from app.database import alembic_config, make_engine
from app.demo.scenarios import SCENARIOS, LlmScenario
from app.models import Agent, Call, Event, Transfer
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.scenarios import CALLER, REASON, ScenarioFailed, hang_up_everyone, warm_transfer_by_dtmf
from app.sandbox.twilio_network import (
    SimCall,
    TwilioNetwork,
    TwimlError,
    http_transport,
)
from app.sandbox.twilio_server import TwilioStandIn
from app.sandbox.wiring import (
    TWILIO_SIGNALLING_RANGE,
    http_post,
    provision_livekit,
    unwire_livekit,
    wire_livekit,
)
from app.telephony import urls
from config import Settings

Echo = Callable[[str], None]

SERVICE_NUMBER = "+15550100000"
DEMO_EXTENSIONS = ("101", "102")
SIP_HOST = "livekit-sip.demo.invalid"


class DemoFailed(Exception):
    """A step of the demo did not go the way a real call would."""


def display_url(database_url: str) -> str:
    """The database URL with any password hidden."""
    return make_url(database_url).render_as_string(hide_password=True)


def prepare_database(database_url: str, echo: Echo) -> None:
    """Migrate a database that is missing its schema (or behind) and load the demo roster into an empty one."""
    config = alembic_config(database_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    if database_url.startswith("sqlite:///"):
        Path(database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url, pooled=False)
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    try:
        # Reading the revision logs alembic's start-up chatter at INFO; only an upgrade is worth a line.
        alembic_log.setLevel(logging.WARNING)
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        alembic_log.setLevel(level)
        if current != head:
            state = "has no schema yet" if current is None else f"is at revision {current}"
            echo(f"The database {state}: migrating it to {head} (flask db upgrade).")
            command.upgrade(config, "head")
        with sessionmaker(bind=engine)() as session:
            if not session.scalar(select(func.count(Agent.id))):
                queues, agents = load_roster(session, read_roster(DEMO_ROSTER))
                session.commit()
                echo(f"No agents yet: loaded the demo roster ({len(queues)} queues, {len(agents)} agents).")
    finally:
        alembic_log.setLevel(level)
        engine.dispose()


class _QuietRequestHandler(WSGIRequestHandler):
    """Serves like werkzeug's handler without an access-log line per webhook (they would bury the story)."""

    def log_request(self, code="-", size="-") -> None:
        pass


def _not_ready(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


class LocalWorld:
    """LiveKit, the LLM, Twilio and the service itself, each on its own loopback port."""

    def __init__(self, settings: Settings, build_app: Callable[[Settings], Any],
                 close_app: Callable[[Any], None], scenario: LlmScenario, *, quiet: bool = True):
        self.base_settings = settings
        self.build_app = build_app
        self.close_app = close_app
        self.scenario = scenario
        self.quiet = quiet
        # What _start makes; close() ends each that was made.
        self.settings: Optional[Settings] = None
        self.livekit: Optional[LiveKitStandIn] = None
        self.llm: Optional[LLMStandIn] = None
        self.network: Optional[TwilioNetwork] = None
        self.twilio: Optional[TwilioStandIn] = None
        self.app: Any = None
        self.server = None
        self._server_thread: Optional[threading.Thread] = None
        self._engine = None
        self.sessions: Optional[sessionmaker] = None

    def __enter__(self) -> "LocalWorld":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _start(self) -> None:
        scenario = self.scenario
        livekit_key, livekit_secret = "APIdemo" + secrets.token_hex(4), secrets.token_urlsafe(24)
        account_sid, auth_token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
        self.livekit = LiveKitStandIn(livekit_key, livekit_secret).start()
        self.llm = LLMStandIn(scenario.mode, delay_seconds=scenario.delay_seconds or 2.0).start()
        self.network = TwilioNetwork(account_sid, auth_token, http_transport(timeout=15))
        self.network.pauses_in_real_time = True  # the service here runs on the real clock
        self.twilio = TwilioStandIn(self.network)
        # The service's address must be known before the app is built, because
        # webhook signatures are checked against PUBLIC_BASE_URL.
        handler = _QuietRequestHandler if self.quiet else WSGIRequestHandler
        self.server = make_server("127.0.0.1", 0, _not_ready, threaded=True, request_handler=handler)
        service_url = f"http://127.0.0.1:{self.server.server_port}"
        base = self.base_settings
        self.settings = replace(
            base,
            public_base_url=service_url,
            trusted_proxy_hops=0,
            twilio_account_sid=account_sid,
            twilio_auth_token=auth_token,
            twilio_phone_number=SERVICE_NUMBER,
            twilio_api_base_url=self.twilio.url,
            livekit_url=self.livekit.url,
            livekit_api_key=livekit_key,
            livekit_api_secret=livekit_secret,
            livekit_sip_host=SIP_HOST,
            livekit_sip_username="switchboard-demo",
            livekit_sip_password=secrets.token_urlsafe(12),
            livekit_allowed_addresses=(TWILIO_SIGNALLING_RANGE,),
            llm_provider="openai",
            llm_model="",
            llm_base_url=self.llm.base_url,
            openai_api_key="sk-demo-" + secrets.token_hex(12),
            llm_timeout_seconds=scenario.timeout_seconds or base.llm_timeout_seconds,
            summary_deadline_seconds=scenario.summary_deadline_seconds or base.summary_deadline_seconds,
            log_level="warning" if self.quiet else base.log_level,
        )
        self.app = self.build_app(self.settings)
        self.server.app = self.app
        self._server_thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                               name="demo-service", daemon=True)
        self._server_thread.start()
        self.network.add_number(
            SERVICE_NUMBER,
            voice_url=service_url + urls.VOICE,
            status_callback=service_url + urls.STATUS,
            voice_fallback_url=service_url + urls.FALLBACK,
        )
        self.twilio.start()
        wire_livekit(self.network, self.livekit, sip_host=SIP_HOST, public_base_url=service_url, post=http_post)
        provision_livekit(self.app)
        self._engine = make_engine(self.settings.database_url)
        self.sessions = sessionmaker(bind=self._engine, expire_on_commit=False)

    @property
    def service_url(self) -> str:
        """Where the service is served."""
        return self.settings.public_base_url

    def settle(self) -> None:
        """Deliver what Twilio still has queued and let background summaries finish."""
        self.network.run_pending()
        self.wait_for_summaries()

    def wait_for_summaries(self) -> None:
        """Wait (bounded by the LLM timeout) for summary threads still running."""
        # A summary still waiting on the LLM (the slow scenario) writes its late
        # answer to the timeline when it returns, and needs the database to do so.
        self.app.extensions["jobs"].wait_idle(self.settings.llm_timeout_seconds + 2)

    def close(self) -> None:
        """Stop everything, callers' side first, so nothing calls a server that has gone."""
        if self.twilio is not None:
            self.twilio.close()
        if self._server_thread is not None:
            self.server.shutdown()
            self._server_thread.join(timeout=5)
            self._server_thread = None
        if self.server is not None:
            self.server.server_close()
            self.server = None
        if self.app is not None:
            self.wait_for_summaries()
            self.close_app(self.app)
            self.app = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self.llm is not None:
            self.llm.stop()
        if self.livekit is not None:
            unwire_livekit(self.livekit)
            self.livekit.stop()


@dataclass
class Party:
    """Someone on the phone, and how much of what happened to them has been told."""

    name: str
    leg: SimCall
    heard: int = 0
    played: int = 0
    place: Optional[str] = None
    ended: bool = False


@dataclass(frozen=True)
class Outcome:
    """How the demo call ended."""

    call_sid: str
    transfer_state: str
    summary_source: str
    summary_detail: str
    summary_spoken: str


class ScriptedCall:
    """A caller with a billing problem, handed from one agent to another by a DTMF warm transfer."""

    def __init__(self, world: LocalWorld, echo: Echo):
        self.world = world
        self.network = world.network
        self.echo = echo
        self.parties: list[Party] = []
        self.step_number = 0
        self.step_title = ""
        self.prefix = world.settings.livekit_room_prefix

    def run(self) -> Outcome:
        """Play the whole call, telling each step; raise DemoFailed where it goes wrong.

        The call is app/sandbox/scenarios.warm_transfer_by_dtmf, the one the
        tests and the benchmark place; this object narrates it (before,
        expect) and checks every step on the way.
        """
        self.agents = self._demo_agents()
        self.whisper: list[str] = []
        self.whisper_seconds = 0.0
        self.answered_at: float | None = None
        try:
            caller, a, b = warm_transfer_by_dtmf(self.network, SERVICE_NUMBER, CALLER,
                                                 target=self._target, narrator=self)
        except ScenarioFailed as failure:
            raise DemoFailed(str(failure)) from None
        self._check()
        name_a, name_b = self._name(a), self._name(b)
        if a.live:
            raise DemoFailed(f"{name_a}'s leg is still up after completing the transfer")
        transfer = self._expect_state("completed")
        whisper = self.whisper
        caller = self._party("caller", caller)
        b = self._party("target", b)

        self._step(f"The caller and {name_b} sort out the refund and hang up.")
        caller.leg.hangup()
        if b.leg.live:
            b.leg.hangup()
        self._check()
        self.world.settle()
        self._check()

        self._print_timeline(caller.leg.sid)
        self._print_whisper(name_b, whisper)
        transfer = self._transfer()
        expected = self.world.scenario.expected_source
        if transfer.summary_source != expected:
            raise DemoFailed(f"{name_b} heard the {transfer.summary_source} summary, expected the {expected} one")
        return Outcome(caller.leg.sid, transfer.state, transfer.summary_source, _summary_detail(transfer),
                       transfer.summary_spoken or "")

    def _target(self, agent_leg: SimCall) -> tuple[str, str]:
        """Whom the first agent transfers to: the other demo agent (extension, phone)."""
        ext_a = self.agents[agent_leg.to][1]
        ext_b = DEMO_EXTENSIONS[1] if ext_a != DEMO_EXTENSIONS[1] else DEMO_EXTENSIONS[0]
        sip_b = next(sip for sip, (_name, extension) in self.agents.items() if extension == ext_b)
        return ext_b, sip_b

    def _name(self, leg: SimCall) -> str:
        return self.agents[leg.to][0] if leg.to in self.agents else "caller"

    def _party(self, role: str, leg: SimCall) -> Party:
        for party in self.parties:
            if party.leg.sid == leg.sid:
                return party
        return self._join(self._name(leg) if role != "caller" else "caller", leg)

    def before(self, step: str, **about) -> None:
        """The scenario is about to take STEP: tell it."""
        a = next((p.name for p in self.parties if p.leg.to in self.agents), "the agent")
        b = next((p.name for p in self.parties[2:3]), "the colleague")
        if step == "dial":
            self._step(f"The caller dials {SERVICE_NUMBER} from {CALLER}.")
        elif step == "say_reason":
            self._step(f'The caller says: "{REASON}".')
        elif step in ("agent_rings", "target_rings"):
            leg = about["agent"] if step == "agent_rings" else about["target"]
            self._check()
            if leg.to not in self.agents:
                raise DemoFailed(f"Twilio was asked to ring {leg.to}, which is not an agent of the roster")
            name, extension = self.agents[leg.to]
            self._join(name, leg, announce=f"Twilio rings {name} (ext {extension}) at {leg.to}.")
        elif step == "agent_answers":
            self._step(f"{a} answers.")
        elif step == "agent_accepts":
            self._step(f"{a} presses 1 to take the call.")
        elif step == "talk":
            self._step("They talk; Twilio's live transcription sends each sentence to the service.")
        elif step == "said":
            self._check()
            self.echo(f'   {"caller" if about["speaker"] == "caller" else a}: "{about["words"]}"')
        elif step == "transfer_menu":
            self._check()
            self._step(f"{a} presses * for the transfer menu; the caller stays in the room meanwhile.")
        elif step == "key_target":
            self._step(f"{a} keys 2, {about['target']}, # : warm transfer to extension {about['target']}; the caller "
                       "is put on hold and the summary starts in the background.")
        elif step == "target_answers":
            self._step(f"{b} answers and hears who is transferring: nothing of the caller before a key.")
        elif step == "target_asks_summary":
            self._step(f"{b} presses 1 to hear the summary.")
            self.answered_at = time.monotonic()
        elif step == "target_accepts":
            self._step(f"{b} presses 1 to accept and joins {a} in the consult room.")
        elif step == "consult_menu":
            self._expect_state("consulting")
            self._step(f"{a} presses * again for the consult menu.")
        elif step == "complete":
            self._step(f"{a} presses 2 to complete the transfer.")

    def expect(self, role: str, leg: SimCall, verb: str, what: str) -> None:
        """The scenario expects LEG to wait on VERB now: check it (DemoFailed if not)."""
        party = self._party(role, leg)
        if role == "target" and verb == "Gather" and self.answered_at is not None and not self.whisper:
            self.whisper_seconds = time.monotonic() - self.answered_at
            self.whisper = list(leg.heard)
        self._expect(party, verb, what)
        if role == "target" and verb == "Gather" and self.whisper:
            self.echo(f"   (the whisper was answered in {self.whisper_seconds:.2f} s)")

    def _demo_agents(self) -> dict[str, tuple[str, str]]:
        with self.world.sessions() as session:
            agents = list(session.scalars(select(Agent).where(Agent.sip_uri.is_not(None))))
        by_extension = {agent.extension: agent for agent in agents}
        for extension in DEMO_EXTENSIONS:
            agent = by_extension.get(extension)
            if agent is None:
                raise DemoFailed(f"the demo needs agent {extension} of the demo roster: flask roster load")
            if agent.presence != "available":
                raise DemoFailed(f"agent {extension} ({agent.name}) is {agent.presence}: "
                                 f"flask agents presence {extension} available")
            if agent.activity != "idle":
                raise DemoFailed(f"agent {extension} ({agent.name}) is {agent.activity}, not idle: "
                                 f"wait for that call to end and run the demo again")
        return {agent.sip_uri: (agent.name, agent.extension) for agent in agents}

    def _join(self, name: str, leg: SimCall, announce: str = "") -> Party:
        party = Party(name, leg)
        self.parties.append(party)
        if announce:
            self.echo(f"   {announce}")
        self._report()
        return party

    def where(self) -> str:
        """The step the script has reached, for a failure message."""
        return f"at step {self.step_number} ({self.step_title})" if self.step_number else "before the call"

    def _step(self, text: str) -> None:
        self.step_number += 1
        self.step_title = text.rstrip(".")
        self.echo(f"\n{self.step_number:>2}. {text}")

    def _check(self) -> None:
        if self.network.errors:
            error = self.network.errors[0]
            raise DemoFailed(f"Twilio's side hit an error delivering a webhook: {error}")
        self._report()

    def _expect(self, party: Party, verb: str, what: str) -> None:
        self._check()
        waiting = party.leg.waiting_on
        if not party.leg.live or waiting is None or waiting.tag != verb:
            now = "ended" if not party.leg.live else f"waiting on <{waiting.tag if waiting is not None else None}>"
            raise DemoFailed(f"expected {what}, but {party.name}'s leg is {now}")

    def _transfer(self) -> Transfer:
        with self.world.sessions() as session:
            transfer = session.scalar(
                select(Transfer).join(Call).where(Call.call_sid == self.parties[0].leg.sid).order_by(Transfer.id.desc())
            )
            if transfer is None:
                raise DemoFailed("the service recorded no transfer for the call")
            session.expunge(transfer)
            return transfer

    def _expect_state(self, state: str) -> Transfer:
        transfer = self._transfer()
        if transfer.state != state:
            reason = f" ({transfer.end_reason})" if transfer.end_reason else ""
            raise DemoFailed(f"expected the transfer to be {state}, it is {transfer.state}{reason}")
        self.echo(f"   The transfer is now {state}.")
        return transfer

    def _report(self) -> None:
        for party in self.parties:
            leg = party.leg
            for said in leg.heard[party.heard:]:
                self.echo(_wrapped(f"   {party.name} hears: ", f'"{said}"'))
            party.heard = len(leg.heard)
            if len(leg.played) > party.played:
                self.echo(f"   {party.name} hears hold music (Twilio <Play>)")
            party.played = len(leg.played)
            place = self._place(leg)
            if place and place != party.place:
                self.echo(f"   {party.name} is in LiveKit room {place} (over SIP)")
            party.place = place
            if not leg.live and not party.ended:
                party.ended = True
                self.echo(f"   {party.name}'s line ends ({leg.status}).")

    def _place(self, leg: SimCall) -> Optional[str]:
        waiting = leg.waiting_on
        if not leg.live or waiting is None or waiting.tag != "Dial" or not leg.dialed:
            return None
        target = leg.dialed[0].target
        if not target.startswith("sip:") or "@" not in target:
            return None
        return f"{self.prefix}_{target[4:target.index('@')]}"

    def _print_timeline(self, call_sid: str) -> None:
        with self.world.sessions() as session:
            call = session.scalar(select(Call).where(Call.call_sid == call_sid))
            if call is None:
                raise DemoFailed("the service has no record of the call")
            events = list(session.scalars(select(Event).where(Event.call_id == call.id).order_by(Event.id)))
            self.echo(f"\nTimeline of call {call.id} ({call_sid}), as stored by the service:")
            if not events:
                return
            start = events[0].created_at
            for event in events:
                offset = (event.created_at - start).total_seconds()
                detail = _detail(event.detail)
                self.echo(f"   {event.created_at:%H:%M:%S.%f}"[:-3] + f"  +{offset:6.3f} s  {event.name}"
                          + (f"  {detail}" if detail else ""))

    def _print_whisper(self, name_b: str, whisper: list[str]) -> None:
        self.echo(f"\nWords spoken to {name_b} before accepting:")
        for said in whisper:
            self.echo(_wrapped("   ", f'"{said}"'))


def _summary_detail(transfer: Transfer) -> str:
    if transfer.summary_source == "llm":
        return (f"{transfer.summary_provider} {transfer.summary_model} on the local stand-in, "
                f"{transfer.summary_latency_ms} ms")
    return transfer.summary_error or "built without the LLM"


def _wrapped(lead: str, text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=lead, subsequent_indent=" " * (len(lead) + 1))


def _detail(detail: dict) -> str:
    parts = []
    for key, value in (detail or {}).items():
        if value in (None, "", [], {}):
            continue
        text = str(value)
        parts.append(f"{key}={text if len(text) <= 48 else text[:45] + '...'}")
    return " ".join(parts)


def run_demo(settings: Settings, build_app: Callable[[Settings], Any], close_app: Callable[[Any], None],
             echo: Echo, *, llm: str = "normal", quiet: bool = True) -> Outcome:
    """Prepare the database, start the local world, play the scripted call and stop everything again."""
    if settings.production:
        raise DemoFailed("the demo writes demo calls into the database: it does not run with APP_ENV=production")
    scenario = SCENARIOS[llm]
    prepare_database(settings.database_url, echo)
    with LocalWorld(settings, build_app, close_app, scenario, quiet=quiet) as world:
        echo("Switchboard demo: one warm transfer, every hop over HTTP on this machine.")
        echo(f"   service   {world.service_url}  (database {display_url(world.settings.database_url)})")
        echo(f"   Twilio    {world.twilio.url}  (REST stand-in; it also sends the signed webhooks)")
        echo(f"   LiveKit   {world.livekit.url}  (Twirp stand-in)")
        echo(f"   LLM       {world.llm.base_url}  (OpenAI-compatible stand-in, {llm}: {scenario.description})")
        script = ScriptedCall(world, echo)
        try:
            return script.run()
        except (TwimlError, DemoFailed) as error:
            raise DemoFailed(f"{script.where()}: {error}") from None
        finally:
            hang_up_everyone(world.network)
