"""Load check: many whole calls at once on PostgreSQL, under gunicorn with several workers.

    .venv/bin/python -m tests.benchmarks.load [--calls 200] [--agents 20] [--lines 40] [--instances N] [--cpus C]

Runs the service as in production (gunicorn, 3 gthread workers x 4 threads)
against the loopback stand-ins. Twilio is played by several simulated
networks behind one REST API, one for each line callers ring in on and one
for each agent's phone: a network delivers its webhooks one at a time and
its timers run on its own virtual clock, so the people on different
networks act at once and one person's waiting never moves another's clock.
LiveKit's webhooks go out on a lane of their own.

CALLS callers dial in, LINES at a time, and press a queue's key; AGENTS
agents (all in both queues) take them. Each ring, an agent may let it ring
out, be busy, decline in the whisper, or press 1 and talk; the caller or the
agent hangs up after a moment, and the agent freed takes the next waiting
caller. A few callers hang up while they wait; the others hear the hold
music end now and then (the service's hold loop). Prints what it measured:
calls, wall time, webhook latency, every status the service answered, and
the PostgreSQL deadlocks, serialization failures and retried transactions
the service logged. tests/test_load_postgres.py runs the same and asserts on
it; docs/performance.md keeps the figures. Nothing here asserts a time.

With --instances N, N service instances (each gunicorn as above, its web
workers leaving jobs and timers to a `flask jobs work` process beside it,
as docs/jobs.md runs them in production) share the one database behind a
loopback proxy that sends each call's webhooks to the instances in turn
(AlternatingProxy), so one call's steps alternate between them;
--instances 1 is the same arrangement with one instance, to compare with.
With --cpus C (root), each instance, its job worker included, is held to C
of the machine's CPU (tests/benchmarks/cpu_limit.py): the CPU of a small
machine of its own, so that one instance and two can be compared on one box.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import threading
import time
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agents.service import DEMO_ROSTER, load_roster, read_roster
from app.database import alembic_config, make_engine
from app.models import (
    FINAL_CALL_STATUSES,
    Activity,
    Agent,
    Call,
    Leg,
    LegRole,
    Presence,
)
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.served import ACCOUNT_SID, AUTH_TOKEN, NUMBER, free_port, gunicorn_service
from app.sandbox.twilio_network import TwilioNetwork, TwimlError
from tests.benchmarks.call_flow import fresh_database, percentile
from tests.benchmarks.cpu_limit import CpuLimit

LIVEKIT_KEY, LIVEKIT_SECRET = "APIloadcheck", "load-check-livekit-secret-0123456789"
# What PostgreSQL and psycopg write when a transaction lost a deadlock or a
# serializable conflict (SQLSTATE 40P01 and 40001), and what the service logs
# when it runs such a transaction again.
DEADLOCK = re.compile(r"deadlock detected|DeadlockDetected")
SERIALIZATION = re.compile(r"could not serialize|SerializationFailure")
RETRIED = "transaction_retried"
# How often, in real seconds, a waiting caller's hold music ends (the service's clip lasts 24 s: the hold loop comes
# round faster here than for a real caller).
HOLD_TICK_SECONDS = 4.0
# A caller not connected after this long has been forgotten by the service.
LONGEST_WAIT_SECONDS = 150.0


@dataclass(frozen=True)
class Exchange:
    """One webhook the service answered."""

    path: str
    status: int
    ms: float


class Region:
    """Twilio as several simulated networks behind one REST API.

    The service's calls.create lands on the network that is home to the
    number dialled; every other request on the network that holds the call.
    Each network has its own virtual clock and its own delivery thread.
    """

    PUMP_SECONDS = 0.03

    def __init__(self, count: int, *, timeout: float = 20.0):
        self.exchanges: list[Exchange] = []
        self.errors: list[BaseException] = []
        self.networks = [TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, self._transport(timeout)) for _ in range(count)]
        self.sip_endpoints: dict[str, object] = {}
        for network in self.networks:
            network.sip_endpoints = self.sip_endpoints  # every network dials the one LiveKit
            # The account's calls-per-second queue would move each network's
            # clock on, and with it every caller's and agent's timers.
            network.calls_per_second = 1000.0
        self._homes: dict[str, int] = {}
        self._lane: deque = deque()
        self._lane_ready = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._pump, args=(network,), daemon=True)
                         for network in self.networks]
        self._threads.append(threading.Thread(target=self._run_lane, daemon=True))
        for thread in self._threads:
            thread.start()

    def _transport(self, timeout: float):
        session = requests.Session()  # one per network, which sends one webhook at a time

        def send(url: str, params: dict, headers: dict, answered=None):  # the answer's arrival is not marked here
            started = time.perf_counter()
            try:
                response = session.post(url, data=params, headers=headers, timeout=timeout, allow_redirects=False)
                status, content_type, body = response.status_code, response.headers.get("Content-Type", ""), \
                    response.text
            except requests.RequestException as error:
                status, content_type, body = 599, "text/plain", f"{type(error).__name__}: {error}"
            self.exchanges.append(Exchange(urlsplit(url).path, status, (time.perf_counter() - started) * 1000))
            return status, content_type, body

        return send

    def home(self, number: str, index: int) -> TwilioNetwork:
        """Make network INDEX the home of NUMBER (where calls to it are placed); return it."""
        self._homes[number] = index
        return self.networks[index]

    def add_number(self, phone_number: str, **urls) -> None:
        """The service's number, known to every network (callers dial it on any)."""
        for network in self.networks:
            network.add_number(phone_number, **urls)

    def handle_rest(self, method: str, path: str, query=None, form=None, auth=None):
        """Answer a REST request on the network it concerns."""
        named = re.search(r"/Calls/([^/]+)\.json$", path)
        if named:
            network = next((n for n in self.networks if named.group(1) in n.calls), self.networks[0])
        elif path.endswith("/Calls.json"):
            network = self.networks[self._homes.get(dict(form or ()).get("To", ""), 0)]
        else:
            network = self.networks[0]
        return network.handle_rest(method, path, query=query, form=form, auth=auth)

    def run_pending(self) -> int:
        """Nothing to do: each network has its own delivery thread."""
        return 0

    def in_turn(self, work, callback: bool = True) -> None:
        """LiveKit's webhooks: in the order LiveKit sends them, on their own lane."""
        with self._lane_ready:
            self._lane.append(work)
            self._lane_ready.notify()

    def _pump(self, network: TwilioNetwork) -> None:
        while not self._stop.wait(self.PUMP_SECONDS):
            try:
                network.run_pending()
            except Exception as error:  # noqa: BLE001 - kept for the report
                self.errors.append(error)

    def _run_lane(self) -> None:
        while not self._stop.is_set():
            with self._lane_ready:
                while not self._lane and not self._stop.is_set():
                    self._lane_ready.wait(0.1)
                if not self._lane:
                    continue
                work = self._lane.popleft()
            try:
                work()
            except Exception as error:  # noqa: BLE001 - kept for the report
                self.errors.append(error)

    def close(self) -> None:
        """Stop delivering."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


# Headers of one hop, never forwarded (RFC 9110, 7.6.1), and the length, which the proxy sets itself.
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
               "content-length", "content-encoding", "host"}


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: the callers dialling in at once would be refused.
    request_queue_size = 256


class AlternatingProxy:
    """A loopback HTTP proxy in front of several service instances: each call's webhooks go to them in turn.

    A Twilio webhook is known by its CallSid: the call's first goes to the
    instance after the last call's first, and each next one to the instance
    after its previous one's, so consecutive steps of one call are always
    served by different instances. Anything else (LiveKit's webhooks) goes
    round in turn as well.
    """

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.sent = Counter()  # requests per backend
        self._turns: dict[str, int] = {}
        self._next = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                proxy._forward(self)

            do_GET = do_POST

            def log_message(self, *_args):
                pass

        self._server = _ProxyServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "AlternatingProxy":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _backend_for(self, body: bytes) -> int:
        sid = (parse_qs(body.decode("utf-8", "replace")).get("CallSid") or [""])[0] if body else ""
        with self._lock:
            turn = self._turns.get(sid, self._next) if sid else self._next
            self._next = (self._next + 1) % len(self.backends)
            if sid:
                self._turns[sid] = (turn + 1) % len(self.backends)
            self.sent[turn] += 1
            return turn

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        backend = self.backends[self._backend_for(body)]
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS}
        # A connection of its own for each request: a kept-alive one that gunicorn closed as idle (keepalive 5 s)
        # would fail the request sent on it.
        try:
            answer = requests.request(handler.command, backend + handler.path, data=body or None,
                                      headers={**headers, "Connection": "close"}, timeout=30, allow_redirects=False)
            status, answer_headers, content = answer.status_code, answer.headers, answer.content
        except requests.RequestException as error:
            status, answer_headers, content = 502, {}, f"proxy: {type(error).__name__}\n".encode()
        handler.send_response(status)
        for name, value in answer_headers.items():
            if name.lower() not in HOP_HEADERS:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)


@dataclass
class Tally:
    """What the people on the line did."""

    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def problem(self, what: str) -> None:
        with self.lock:
            self.problems.append(what)


def _until(condition, seconds: float, step: float = 0.03) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _waiting_on(call, tag: str) -> bool:
    verb = call.waiting_on
    return call.live and verb is not None and verb.tag == tag


def _moved_on(error: TwimlError) -> bool:
    """Whether a person's action failed only because the service had just moved their leg on."""
    text = str(error)
    return any(sign in text for sign in ("has already ended", "is not playing anything", "is waiting on",
                                         "cannot be answered", "is not ringing", "has no active <Transcription>"))


def _talk_then_hang_up(leg, rng: random.Random, words: str) -> None:
    """Say something, then hang up after a moment, unless the other side hung up first."""
    if leg.live and leg.transcriptions:
        leg.transcribe(words, track="inbound_track")
    _until(lambda: not leg.live, rng.uniform(0.3, 1.5))
    if leg.live:
        leg.hangup()


def agent_bot(network: TwilioNetwork, phone: str, rng: random.Random, stop: threading.Event, tally: Tally) -> None:
    """An agent at their phone: each ring is let go, busy, declined or taken (then talked and ended)."""
    seen: set[str] = set()
    missed_last = False  # never two rings let go in a row, which would set the agent away
    while not stop.is_set():
        ringing = [c for c in network.calls_to(phone) if c.sid not in seen and c.status in ("queued", "ringing")]
        if not ringing:
            time.sleep(0.03)
            continue
        leg = ringing[0]
        seen.add(leg.sid)
        roll = rng.random()
        try:
            if roll < 0.05 and not missed_last:
                missed_last = True
                network.ring_out(leg.sid, "no-answer")
                tally.add("agent_let_it_ring")
                continue
            if roll < 0.08:
                network.ring_out(leg.sid, "busy")
                tally.add("agent_busy")
                continue
            network.answer(leg.sid)
            if not _waiting_on(leg, "Gather"):
                tally.add("agent_answered_caller_gone")
                continue
            if roll < 0.15:
                leg.press("2")
                tally.add("agent_declined")
                continue
            leg.press("1")
            missed_last = False
            if not _until(lambda: leg.bridged or not leg.live, 15.0):
                tally.problem(f"agent leg {leg.sid} never reached the caller's room")
            if leg.bridged:
                tally.add("agent_talked")
            _talk_then_hang_up(leg, rng, "I can help you with that")
        except TwimlError as error:
            # The service moved or ended the leg between a look and a key (the
            # caller hung up meanwhile): nothing wrong; anything else is.
            if leg.live and not _moved_on(error):
                tally.problem(f"agent leg {leg.sid}: {error}")


def caller_bot(network: TwilioNetwork, number: str, rng: random.Random, tally: Tally) -> None:
    """A caller: dial, press a queue's key, wait (a few give up), talk, then hang up or be hung up on."""
    caller = network.incoming_call(number, NUMBER)
    try:
        if not _waiting_on(caller, "Gather"):
            tally.problem(f"caller {number} was not asked why they call")
            return
        caller.press(rng.choice("12"))
        patience = rng.uniform(0.5, 4.0) if rng.random() < 0.06 else None
        started = last_tick = time.monotonic()
        while caller.live and not caller.bridged:
            waited = time.monotonic() - started
            if patience is not None and waited > patience:
                caller.hangup()
                tally.add("caller_gave_up")
                return
            if waited > LONGEST_WAIT_SECONDS:
                tally.problem(f"caller {number} waited {waited:.0f} s: {caller!r}")
                caller.hangup()
                return
            if time.monotonic() - last_tick > HOLD_TICK_SECONDS and _waiting_on(caller, "Play"):
                last_tick = time.monotonic()
                caller.music_ends()
            time.sleep(0.05)
        if not caller.live:
            tally.add("caller_ended_by_service")
            return
        tally.add("caller_talked")
        _talk_then_hang_up(caller, rng, "I was charged twice this month")
    except TwimlError as error:
        if caller.live and not _moved_on(error):
            tally.problem(f"caller {number}: {error}")


def agent_roster(agents: int) -> dict:
    """The demo queues and AGENTS agents in both of them."""
    roster = read_roster(DEMO_ROSTER)
    roster["agents"] = [
        {"name": f"Agent {n:02d}", "extension": f"3{n:02d}", "sip_uri": f"sip:agent{n:02d}@switchboard-load.sip.twilio.com",
         "skills": ["billing", "technical"], "presence": "available"}
        for n in range(agents)
    ]
    return roster


@dataclass
class LoadResult:
    """What one load run measured."""

    calls: int
    agents: int
    lines: int
    networks: int
    wall_seconds: float
    exchanges: list[Exchange]
    livekit_failures: list
    deadlocks: int
    serialization_failures: int
    retries: int
    tally: Tally
    harness_errors: list[BaseException]
    call_statuses: Counter
    unfinished_calls: list[tuple[int, str]]
    busy_agents: list[tuple[str, str, str]]
    double_booked: list[str]
    output: str
    instances: int = 0  # 0: one instance reached directly; N: N behind the alternating proxy
    cpus: float | None = None  # the CPU each instance was held to, if any
    shares: list[int] = field(default_factory=list)  # requests the proxy sent each instance

    @property
    def server_errors(self) -> list[Exchange]:
        """Webhooks answered 5xx (or never answered: 599)."""
        return [e for e in self.exchanges if e.status >= 500]

    @property
    def statuses(self) -> Counter:
        return Counter(e.status for e in self.exchanges)

    def report(self) -> str:
        """The figures, as Markdown."""
        ms = [e.ms for e in self.exchanges]
        lines = [
            f"{self.calls} callers on {self.agents} agents, {self.lines} at a time: {self.wall_seconds:.0f} s wall time, "
            f"{len(self.exchanges)} Twilio webhooks ({len(self.exchanges) / self.wall_seconds:.0f}/s)",
            "",
            f"- webhook latency: p50 {statistics.median(ms):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
            f"max {max(ms):.1f} ms",
            f"- statuses answered: {dict(sorted(self.statuses.items()))}; 5xx: {len(self.server_errors)} "
            f"({dict(Counter(e.path for e in self.server_errors))}); LiveKit webhooks refused: "
            f"{len(self.livekit_failures)} ({dict(Counter(status for status, _ in self.livekit_failures))})",
            f"- PostgreSQL deadlocks logged: {self.deadlocks}; serialization failures: "
            f"{self.serialization_failures}; transactions retried: {self.retries}",
            f"- calls at the end: {dict(self.call_statuses)} ({sum(self.call_statuses.values())} of {self.calls} "
            f"callers recorded); not final: {len(self.unfinished_calls)}; "
            f"agents not idle: {len(self.busy_agents)}; double-booked: {len(self.double_booked)}",
            f"- people: {dict(sorted(self.tally.counts.items()))}; problems: {len(self.tally.problems)}; "
            f"harness errors: {len(self.harness_errors)}",
        ]
        if self.instances:
            lines.append(f"- {self.instances} instance(s) behind the alternating proxy, each with a job worker; "
                         f"requests per instance: {self.shares}; {self.calls / self.wall_seconds:.2f} calls/s")
        if self.cpus:
            lines.append(f"- each instance (gunicorn and its job worker) held to {self.cpus:g} CPU")
        return "\n".join(lines)


def _double_bookings(session: Session) -> list[str]:
    """Agents with two legs of calls at once (a leg starts before the agent's previous one ended)."""
    found = []
    legs = session.execute(
        select(Leg.agent_id, Leg.id, Leg.created_at, Leg.ended_at)
        .where(Leg.agent_id.is_not(None), Leg.role.in_((LegRole.AGENT, LegRole.TARGET)))
        .order_by(Leg.agent_id, Leg.created_at, Leg.id)
    ).all()
    previous = None
    for agent_id, leg_id, created_at, ended_at in legs:
        if previous is not None and previous[0] == agent_id and (previous[2] is None or created_at < previous[2]):
            found.append(f"agent {agent_id}: leg {leg_id} began before leg {previous[1]} ended")
        previous = (agent_id, leg_id, ended_at)
    return found


def run_load(database_url: str, *, calls: int = 200, agents: int = 20, lines: int = 40,
             workers: int = 3, threads: int = 4, seed: int = 1, instances: int = 0,
             cpus: float | None = None) -> LoadResult:
    """Play CALLS whole calls on AGENTS agents against the service on DATABASE_URL (migrated, empty).

    INSTANCES: 0, one gunicorn reached directly, working its jobs in its web workers; N, that many behind an
    AlternatingProxy, each with a `flask jobs work` process beside it. CPUS: each instance (its gunicorn and
    its job worker) held to that much of the machine's CPU (tests/benchmarks/cpu_limit.py; needs root)."""
    networks = lines + agents
    engine = make_engine(database_url, pooled=False)
    with Session(engine) as session:
        load_roster(session, agent_roster(agents))
        session.commit()
    region = Region(networks)
    tally = Tally()
    stop = threading.Event()
    rng = random.Random(seed)
    env = {"MAX_QUEUE_WAIT_SECONDS": "600", "SUMMARY_DEADLINE_SECONDS": "3"}
    try:
        with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm, ExitStack() as stack:
            ports = [free_port() for _ in range(max(instances, 1))]
            proxy = stack.enter_context(AlternatingProxy([f"http://127.0.0.1:{port}" for port in ports])) \
                if instances else None
            every_instance = [stack.enter_context(gunicorn_service(
                database_url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY, livekit_secret=LIVEKIT_SECRET,
                workers=workers, threads=threads, extra_env=env, network=region, port=port,
                public_url=proxy.url if proxy else None, job_workers=1 if proxy else 0)) for port in ports]
            if cpus:
                for number, served in enumerate(every_instance):
                    limit = stack.enter_context(CpuLimit(f"load-{number}", cpus))
                    for process in (served.process, *served.job_processes):
                        limit.add(process.pid)
            bots = [threading.Thread(target=agent_bot, daemon=True,
                                     args=(region.home(spec["sip_uri"], lines + n), spec["sip_uri"],
                                           random.Random(rng.random()), stop, tally))
                    for n, spec in enumerate(agent_roster(agents)["agents"])]
            for bot in bots:
                bot.start()
            started = time.perf_counter()
            numbers = deque(range(calls))
            caller_seeds = [rng.random() for _ in range(calls)]

            def line(network: TwilioNetwork) -> None:
                while True:
                    try:
                        n = numbers.popleft()
                    except IndexError:
                        return
                    caller_bot(network, f"+1555{n:07d}", random.Random(caller_seeds[n]), tally)

            callers = [threading.Thread(target=line, args=(region.networks[n],), daemon=True) for n in range(lines)]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join()
            # The last calls end: agents' legs, status callbacks, LiveKit's webhooks.
            _until(lambda: not any(c.live for n in region.networks for c in list(n.calls.values())), 30.0, 0.1)
            _until(lambda: not region._lane, 60.0, 0.1)
            wall = time.perf_counter() - started
            stop.set()
            for bot in bots:
                bot.join(timeout=20)
            shares = [proxy.sent[n] for n in range(len(ports))] if proxy else []
        output = "".join(served.output for served in every_instance)
        livekit_failures = [failure for served in every_instance for failure in served.livekit_webhook_failures]
    finally:
        stop.set()
        region.close()
    with Session(engine) as session:
        statuses = Counter(session.scalars(select(Call.status)))
        unfinished = [(i, s) for i, s in session.execute(select(Call.id, Call.status))
                      if s not in FINAL_CALL_STATUSES]
        busy = [(ext, activity, presence) for ext, activity, presence in
                session.execute(select(Agent.extension, Agent.activity, Agent.presence).where(
                    Agent.extension.like("3%")))
                if activity != Activity.IDLE or presence != Presence.AVAILABLE]
        double = _double_bookings(session)
    engine.dispose()
    return LoadResult(
        calls=calls, agents=agents, lines=lines, networks=networks, wall_seconds=wall,
        exchanges=list(region.exchanges), livekit_failures=livekit_failures,
        deadlocks=len(DEADLOCK.findall(output)), serialization_failures=len(SERIALIZATION.findall(output)),
        retries=output.count(RETRIED), tally=tally, harness_errors=list(region.errors),
        call_statuses=statuses, unfinished_calls=unfinished, busy_agents=busy, double_booked=double, output=output,
        instances=instances, shares=shares, cpus=cpus,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--lines", type=int, default=40, help="callers on the line at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--instances", type=int, default=0,
                        help="N service instances on the one database behind an alternating proxy (0: one, direct)")
    parser.add_argument("--cpus", type=float, help="hold each instance to this much CPU (a cgroup; needs root)")
    args = parser.parse_args()
    from alembic import command

    url, drop = fresh_database("postgres")
    try:
        command.upgrade(alembic_config(url), "head")
        result = run_load(url, calls=args.calls, agents=args.agents, lines=args.lines, seed=args.seed,
                          instances=args.instances, cpus=args.cpus)
    finally:
        drop()
    arrangement = f"{args.instances} x " if args.instances else ""
    print(f"## postgres: {arrangement}gunicorn 3 workers x 4 threads\n")
    print(result.report() + "\n")
    for agent in result.busy_agents:
        print(f"  agent not idle at the end: {agent}")
    for call in result.unfinished_calls[:10]:
        print(f"  call not final at the end: {call}")
    for problem in result.tally.problems[:10]:
        print(f"  problem: {problem}")
    for line in result.output.splitlines():
        if DEADLOCK.search(line) or SERIALIZATION.search(line) or RETRIED in line:
            print(f"  logged: {line[:400]}")


if __name__ == "__main__":
    main()
