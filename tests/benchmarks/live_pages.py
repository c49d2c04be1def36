"""Benchmark: how many open live pages one box holds, how soon they update, and what they cost the webhooks.

    .venv/bin/python -m tests.benchmarks.live_pages [--pages 200] [--seconds 30] [--rate 5] [--seeded 2000]
        [--repeats 1]

On PostgreSQL, runs the service as in production (gunicorn, 2 workers x 4
threads, LIVE_STREAM_BASE=/live) and the live pages' process (`flask live`)
beside it, with the stand-ins of Twilio, LiveKit and the LLM on loopback.
Every agent is offline, so callers wait in their queue. Then, twice (first
with only the calls the run makes, then with SEEDED more live calls written
straight into the database):
1. idle: webhooks with no page open: RATE steps a second for SECONDS, each a
   new caller (voice webhook, then the IVR's choice) or a caller hanging up
   (status callback), timed at the client; the same mix of steps as in 2;
2. pages: PAGES pages opened from one asyncio client process over real sockets, as
   signed-in viewers (a tenth boards, a tenth wallboards, 40 agents' consoles,
   the rest call pages of waiting callers), then the same webhooks while they
   are open. Each update is timed from the webhook's answer (its step has
   committed by then) to the moment each page that shows it receives it: a
   new caller on the boards, a caller gone from the boards (timed on
   WATCHED_BOARDS of them; the others only count what they receive), a
   call's page saying the call is over;
3. the pages are closed, and the live process's count is read at once.
With --repeats N, each round does 1 and 2 N times, alternating, idle first
one time and pages first the next (the database grows as the run goes on,
so neither kind of stretch is always the later one), each open stretch with
call pages of new callers of its own; a p99 over N times as many webhooks
is steadier. The ratio of the two p99s comes with a 90 % interval by
resampling each side's webhooks (p99_ratio_interval).
Prints a Markdown report; docs/performance.md keeps the latest results.
Nothing here asserts a time: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.auth.service import create_user
from app.database import make_engine
from app.models import Agent, Call, CallStatus, Presence, Queue
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.served import AUTH_TOKEN, NUMBER, free_port, gunicorn_service
from app.sandbox.signing import signed_headers
from app.states.agents import new_agent
from tests.benchmarks.call_flow import fresh_database, migrate_with_roster, percentile

ROOT = Path(__file__).resolve().parents[2]
LIVEKIT_KEY, LIVEKIT_SECRET = "APIlivepages", "live-pages-livekit-secret-0123456789"
PASSWORD = "live-pages-password-1"
CONSOLES = 40
# The boards whose updates are timed: every board gets the same message at once, and reading each of them here
# (about 45 KB with 2,000 live calls: the board lists BOARD_CALLS_SHOWN of them) would take the client's time
# from the webhooks it times.
WATCHED_BOARDS = 3
BASE = "/live"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CALL_SID = re.compile(r'"call_sid":"(CA[0-9a-z]+)"')
# The pages open their streams on the live process; no reconciler (it would end the callers the simulated Twilio
# never placed: their webhooks are sent straight to the service).
SERVICE_ENV = {"LIVE_STREAM_BASE": BASE, "RECONCILE_INTERVAL_SECONDS": "0"}


def boards_calls_shown(pages: int, seconds: float, rate: float) -> int:
    """How many calls the boards list (BOARD_CALLS_SHOWN, 100 by default): every caller of the run's own that
    can be live at once, so that each one's arrival and departure on the boards can be timed (they started
    before the seeded ones, which the boards then leave out). In a stretch of webhooks, a third of the steps
    bring a new caller and a third hang up the longest-waiting one, so the waiting stay about 20; on top of
    them, the stretch's call pages' callers (hung up when it ends), and one stretch's new callers to spare."""
    return call_pages_of(pages) + 20 + math.ceil(seconds * rate / 3) + 20


def call_pages_of(pages: int) -> int:
    """Of PAGES open pages, how many are call pages: a tenth are boards, a tenth wallboards, CONSOLES consoles."""
    return pages - 2 * (pages // 10) - CONSOLES
# Every caller a number of their own: a number that rang lately is welcomed back as a cut-off caller.
NUMBERS = itertools.count()


# --- the roster and the viewers ---------------------------------------------------------------------------------


def prepare(url: str) -> None:
    """CONSOLES agents with a user each, and a supervisor; every agent offline, so callers wait."""
    engine = make_engine(url, pooled=False)
    with Session(engine) as session:
        for n in range(CONSOLES):
            agent = new_agent(session, f"5{n:03d}")
            agent.name = f"Agent {n:03d}"
            session.flush()
            create_user(session, f"agent{n:03d}", PASSWORD, "agent", agent_extension=agent.extension)
        create_user(session, "boss", PASSWORD, "supervisor")
        session.execute(update(Agent).values(presence=Presence.OFFLINE))
        session.commit()
    engine.dispose()


def seed_calls(url: str, count: int) -> None:
    """COUNT live calls waiting in the billing queue, written straight into the database.

    They are stamped as started an hour from now: the board lists only its
    longest-running calls (board.BOARD_CALLS_SHOWN), so the run's own
    callers, started before them, are the ones it lists, and their arrival
    and departure on the board can still be timed, while every board read
    counts and orders all of them."""
    engine = make_engine(url, pooled=False)
    with Session(engine) as session:
        queue_id = session.scalar(select(Queue.id).where(Queue.name == "billing"))
        now = time.time() + 3600
        from datetime import datetime, timezone

        moment = datetime.fromtimestamp(now, timezone.utc)
        session.execute(insert(Call), [
            {"call_sid": f"CAseed{uuid.uuid4().hex}", "from_number": f"+1555800{n:04d}", "to_number": NUMBER,
             "status": CallStatus.QUEUED, "queue_id": queue_id, "created_at": moment, "queued_at": moment}
            for n in range(count)])
        session.commit()
    engine.dispose()


def cookie_of(base: str, username: str) -> str:
    """The session cookie of USERNAME, signed in through the login form."""
    client = requests.Session()
    token = CSRF.search(client.get(base + "/login", timeout=20).text).group(1)
    answer = client.post(base + "/login", data={"username": username, "password": PASSWORD, "csrf_token": token},
                         allow_redirects=False, timeout=20)
    assert answer.status_code == 302, f"{username} could not sign in: {answer.status_code}"
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


# --- the pages: one asyncio client, in a process of its own --------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What a page received, read once: the call sids it names (a board's calls), and whether it says the call
    is over (a call's page)."""

    sids: frozenset
    over: bool

    @classmethod
    def of(cls, message: str) -> "Seen":
        return cls(frozenset(CALL_SID.findall(message)), '"live":false' in message)

    def shows(self, test: tuple[str, str]) -> bool:
        """Whether this is what TEST waits for: ("has", sid), ("lacks", sid) or ("over", "")."""
        kind, sid = test
        return sid in self.sids if kind == "has" else sid not in self.sids if kind == "lacks" else self.over


@dataclass
class Expectation:
    """Pages that should soon receive a message that shows TEST, from T0 on (a monotonic time: the clock every
    process of the machine shares)."""

    group: str
    test: tuple[str, str]
    t0: float
    waiting: set
    latencies: list = field(default_factory=list)


@dataclass
class Page:
    path: str
    cookie: str
    watched: bool = True  # its messages are read for the updates timed (not only counted)
    status: int = 0
    messages: int = 0
    first_at: float | None = None
    last_at: float = 0.0
    last_seen: Seen | None = None
    writer: asyncio.StreamWriter | None = None


class PagesClient:
    """The live pages, opened over real sockets from a process of their own (so reading them takes no time from
    the webhooks being timed); this side sends it what to do and reads what it found."""

    def __init__(self, port: int):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_pages_process, args=(theirs, port), daemon=True)
        self.process.start()

    def _ask(self, *command):
        self.connection.send(command)
        return self.connection.recv()

    def open(self, pages: list[Page]) -> None:
        self._ask("open", [(page.path, page.cookie, page.watched) for page in pages])

    def opened(self) -> dict:
        """How the pages' first answers went: statuses, how many got a first snapshot, and when the last did."""
        return self._ask("opened")

    def expect(self, group: str, pages: list[int], test: tuple[str, str], t0: float) -> None:
        self.connection.send(("expect", group, pages, test, t0))

    def results(self) -> tuple[dict[str, tuple[list[float], int]], int]:
        """Each group's latencies (ms) and how many pages never received theirs; every snapshot received."""
        return self._ask("results")

    def close_all(self) -> None:
        self._ask("close")

    def stop(self) -> None:
        self.connection.send(("stop",))
        self.process.join(10)


def _pages_process(connection, port: int) -> None:
    asyncio.run(_PagesLoop(connection, port).run())


class _PagesLoop:
    def __init__(self, connection, port: int):
        self.connection, self.port = connection, port
        self.pages: list[Page] = []
        self.expectations: list[Expectation] = []
        self.done: list[Expectation] = []
        self.tasks: list[asyncio.Task] = []
        self.opened_at = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, self.connection.recv)
            verb = command[0]
            if verb == "open":
                self.opened_at = time.monotonic()
                self.pages = [Page(path, cookie, watched) for path, cookie, watched in command[1]]
                self.tasks = [loop.create_task(self._follow(page)) for page in self.pages]
                self.connection.send("ok")
            elif verb == "opened":
                firsts = [page.first_at for page in self.pages if page.first_at is not None]
                self.connection.send({"statuses": dict(Counter(page.status for page in self.pages)),
                                      "snapshots": len(firsts),
                                      "last_first_s": max(firsts, default=self.opened_at) - self.opened_at})
            elif verb == "expect":
                self._expect(Expectation(command[1], command[3], command[4], set(command[2])))
            elif verb == "results":
                groups: dict[str, tuple[list, int]] = {}
                for expectation in self.done + self.expectations:
                    latencies, missing = groups.setdefault(expectation.group, ([], 0))
                    groups[expectation.group] = (latencies + expectation.latencies,
                                                 missing + len(expectation.waiting))
                self.connection.send((groups, sum(page.messages for page in self.pages)))
            elif verb == "close":
                for page in self.pages:
                    if page.writer is not None:
                        page.writer.close()
                await asyncio.gather(*self.tasks, return_exceptions=True)
                self.pages, self.tasks, self.expectations, self.done = [], [], [], []
                self.connection.send("ok")
            else:
                return

    def _expect(self, expectation: Expectation) -> None:
        # What already came since T0 counts: an update can be faster than this expectation's way here.
        for index in list(expectation.waiting):
            page = self.pages[index]
            if page.last_at >= expectation.t0 and page.last_seen is not None and page.last_seen.shows(
                    expectation.test):
                expectation.waiting.discard(index)
                expectation.latencies.append((page.last_at - expectation.t0) * 1000)
        (self.expectations if expectation.waiting else self.done).append(expectation)

    async def _follow(self, page: Page) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        page.writer = writer
        writer.write((f"GET {BASE}{page.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                      f"Cookie: {page.cookie}\r\n\r\n").encode())
        await writer.drain()
        page.status = int((await reader.readline()).split()[1])
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        if page.status != 200:
            writer.close()
            return
        buffer = b""
        try:
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    return
                buffer += (await reader.readexactly(size + 2))[:-2]
                while b"\n\n" in buffer:
                    message, buffer = buffer.split(b"\n\n", 1)
                    if message.startswith(b"event: snapshot"):
                        self._received(self.pages.index(page), page, message.decode())
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return

    def _received(self, index: int, page: Page, message: str) -> None:
        now = time.monotonic()
        page.messages += 1
        if page.first_at is None:
            page.first_at = now
        if not page.watched:
            return
        seen = Seen.of(message)
        page.last_at, page.last_seen = now, seen
        still = []
        for expectation in self.expectations:
            if index in expectation.waiting and seen.shows(expectation.test):
                expectation.waiting.discard(index)
                expectation.latencies.append((now - expectation.t0) * 1000)
            (still if expectation.waiting else self.done).append(expectation)
        self.expectations = still


# --- the webhooks ----------------------------------------------------------------------------------------------


class Webhooks:
    """New callers and hang-ups, signed as Twilio signs them, each timed."""

    def __init__(self, base: str):
        self.base = base
        self.client = requests.Session()
        self.latencies: list[float] = []

    def _post(self, path_or_url: str, form: dict) -> tuple[requests.Response, float]:
        url = path_or_url if path_or_url.startswith("http") else self.base + path_or_url
        started = time.perf_counter()
        answer = self.client.post(url, data=form, headers=signed_headers(AUTH_TOKEN, url, form), timeout=30)
        answered = time.monotonic()
        self.latencies.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, f"{url} answered {answer.status_code}"
        return answer, answered

    def new_caller(self) -> tuple[str, float]:
        """A caller rings and chooses billing; the call's sid and when its first step was answered."""
        sid = "CA" + uuid.uuid4().hex
        form = {"CallSid": sid, "From": f"+1555{next(NUMBERS):07d}", "To": NUMBER, "CallStatus": "ringing"}
        answer, answered = self._post("/twilio/voice", form)
        assert 'action="' in answer.text, f"the voice webhook answered {answer.text[-700:]}"
        action = answer.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        self._post(action, {**form, "CallStatus": "in-progress", "Digits": "1"})
        return sid, answered

    def hang_up(self, sid: str) -> float:
        """The caller hangs up: Twilio's status callback; when it was answered."""
        form = {"CallSid": sid, "From": "+15550000000", "To": NUMBER, "CallStatus": "completed", "CallDuration": "30"}
        return self._post("/twilio/status", form)[1]


def drive(hooks: Webhooks, seconds: float, rate: float, waiting: list[str], followed: list[str],
          pages: PagesClient | None = None, boards: list[int] = (), call_pages: dict[str, int] | None = None) -> None:
    """RATE steps a second for SECONDS: a new caller, a followed caller hanging up, an older caller hanging up;
    with PAGES, what each step should show on which of them. Once the followed callers are all gone (a stretch
    longer than three steps per call page), an older caller hangs up in their place, so the callers waiting stay
    as few as the boards were sized for (boards_calls_shown) however long the stretch."""
    started = time.monotonic()
    for step in itertools.count():
        due = started + step / rate
        if due - started >= seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        kind = step % 3
        leaving = followed if kind == 1 and followed else waiting
        if kind == 0 or not leaving:
            sid, answered = hooks.new_caller()
            waiting.append(sid)
            if pages:
                pages.expect("new caller on the boards", list(boards), ("has", sid), answered)
            continue
        sid = followed.pop() if leaving is followed else waiting.pop(0)
        answered = hooks.hang_up(sid)
        if pages:
            pages.expect("caller gone from the boards", list(boards), ("lacks", sid), answered)
            if sid in call_pages:
                pages.expect("call over on its page", [call_pages[sid]], ("over", ""), answered)
    time.sleep(3.0)  # what is still on its way arrives, or is counted as missing


# --- the live process ------------------------------------------------------------------------------------------


@contextmanager
def live_process(env: dict, niceness: int | None = None):
    port = free_port()
    nice = [] if niceness is None else ["--nice", str(niceness)]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "--port", str(port), *nice],
                                   cwd=ROOT, env={**env, "LIVE_STREAM_BASE": BASE}, stdout=log,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/status", timeout=1)
                    break
                except requests.ConnectionError:
                    assert process.poll() is None and time.monotonic() < deadline, "the live process did not start"
                    time.sleep(0.2)
            yield port, process
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.seek(0)
            # The advice to share the sign-in limits' store between workers is expected here (one box, no Redis).
            problems = [line for line in log.read().splitlines() if ('"level": "error"' in line
                        or '"level": "warning"' in line or "Traceback" in line) and "login_limit_per_worker" not in line]
            if problems:
                print(f"The live process logged {len(problems)} warnings and errors; the first ones:",
                      *[p[-1500:] for p in problems[:3]], sep="\n", file=sys.stderr)


def status(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/status", timeout=5).json()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- one round: idle, then with the pages open -----------------------------------------------------------------


@dataclass
class Round:
    label: str
    idle: list[float] = field(default_factory=list)
    with_pages: list[float] = field(default_factory=list)
    updates: dict[str, list] = field(default_factory=dict)
    opened: int = 0
    refused: int = 0
    first_snapshot_s: float = 0.0
    messages: int = 0
    count_after_close: dict = field(default_factory=dict)
    live_cpu_s: float = 0.0
    live_mib: float = 0.0
    topics: int = 0
    statuses: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)
    phases: int = 0  # stretches with the pages open


def one_round(label: str, base: str, port: int, live_pid: int, cookies: dict, args) -> Round:
    """REPEATS stretches of webhooks with no page open and as many with the pages open, alternating and in the
    other order every other time (the database grows as the run goes on: neither side always comes later)."""
    result = Round(label)
    hooks = Webhooks(base)
    waiting = [hooks.new_caller()[0] for _ in range(20)]
    pages = PagesClient(port)
    for repeat in range(args.repeats):
        for phase in (("idle", "pages") if repeat % 2 == 0 else ("pages", "idle")):
            if phase == "idle":
                # The same steps as with the pages open: callers of their own hang up where those of the call
                # pages would.
                unfollowed = [hooks.new_caller()[0] for _ in range(call_pages_of(args.pages))]
                hooks.latencies = []
                drive(hooks, args.seconds, args.rate, waiting, unfollowed)
                result.idle += hooks.latencies
                for sid in unfollowed:
                    hooks.hang_up(sid)
            else:
                pages_open(result, hooks, pages, port, live_pid, cookies, args, waiting)
    pages.stop()
    for sid in waiting:  # the next round's callers are the only ones of the run's on the boards
        hooks.hang_up(sid)
    return result


def pages_open(result: Round, hooks: Webhooks, pages: PagesClient, port: int, live_pid: int, cookies: dict,
               args, waiting: list[str]) -> None:
    """Open the pages (call pages of new callers of their own), time a stretch of webhooks and the updates it
    makes, close the pages; what it found is added to RESULT."""
    followed = [hooks.new_caller()[0] for _ in range(call_pages_of(args.pages))]
    boards = [Page("/board/stream", cookies["boss"], watched=n < WATCHED_BOARDS) for n in range(args.pages // 10)]
    walls = [Page("/wallboard/stream", cookies["boss"]) for _ in range(args.pages // 10)]
    consoles = [Page("/console/stream", cookies[f"agent{n:03d}"]) for n in range(CONSOLES)]
    every = boards + walls + consoles + [Page(f"/calls/{sid}/stream", cookies["boss"]) for sid in followed]
    call_pages = {sid: len(boards) + len(walls) + len(consoles) + n for n, sid in enumerate(followed)}
    pages.open(every)
    deadline = time.monotonic() + 60
    while (opened := pages.opened())["snapshots"] + sum(
            count for status, count in opened["statuses"].items() if status not in (0, 200)) < len(every):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    result.opened = min(result.opened, opened["snapshots"]) if result.phases else opened["snapshots"]
    result.statuses = dict(Counter(result.statuses) + Counter(opened["statuses"]))
    result.refused += sum(count for status, count in opened["statuses"].items() if status not in (0, 200))
    result.first_snapshot_s = max(result.first_snapshot_s, opened["last_first_s"])
    result.topics = max(result.topics, status(port)["topics"])

    cpu_before = cpu_seconds(live_pid)
    hooks.latencies = []
    unfollowed = list(followed)
    drive(hooks, args.seconds, args.rate, waiting, unfollowed, pages, range(WATCHED_BOARDS), call_pages)
    result.with_pages += hooks.latencies
    result.live_cpu_s += cpu_seconds(live_pid) - cpu_before
    result.kinds = status(port)["kinds"]
    result.live_mib = max(result.live_mib, resident_mib(live_pid))
    updates, messages = pages.results()
    for name, (latencies, missing) in updates.items():
        before, missed = result.updates.get(name, ([], 0))
        result.updates[name] = (before + latencies, missed + missing)
    result.messages += messages
    result.phases += 1

    pages.close_all()
    closed_at = time.monotonic()
    while status(port)["pages"] and time.monotonic() - closed_at < 5:
        time.sleep(0.01)
    after = {**status(port), "seconds": round(time.monotonic() - closed_at, 3)}
    if after["pages"] or after["seconds"] > result.count_after_close.get("seconds", -1):
        result.count_after_close = after  # the slowest close of the round (or one that left pages counted)
    for sid in unfollowed:  # the callers of pages that are closed now
        hooks.hang_up(sid)


def p99_ratio_interval(idle: list[float], with_pages: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 90 % interval of p99(WITH_PAGES) / p99(IDLE) by resampling each list with replacement (a bootstrap): how
    far the ratio could move by which webhooks happened to be slow. A p99 of a few hundred webhooks is one of
    the few slowest; two runs of one commit differed by more than any change did."""
    chance = random.Random(0)
    ratios = sorted(percentile(chance.choices(with_pages, k=len(with_pages)), 0.99)
                    / max(percentile(chance.choices(idle, k=len(idle)), 0.99), 1e-9) for _ in range(resamples))
    return ratios[int(0.05 * (resamples - 1))], ratios[int(0.95 * (resamples - 1))]


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"{len(values)}: p50 {statistics.median(values):.0f} ms, p99 {percentile(values, 0.99):.0f} ms, "
            f"max {max(values):.0f} ms")


def report(rounds: list[Round], args) -> None:
    print(f"## Live pages: {args.pages} open pages, gunicorn 2 workers x 4 threads and one `flask live`\n")
    print(f"Webhooks at {args.rate:g} steps/s for {args.seconds:g} s each time, {args.repeats} time(s) with no page "
          "open and as many with the pages open, alternating (new callers: voice + IVR choice; hang-ups: status "
          "callback), timed at the client.\n")
    for result in rounds:
        print(f"### {result.label}\n")
        print(f"- pages open: {result.opened} of {args.pages} ({result.refused} refused; answers {result.statuses}), every first snapshot "
              f"within {result.first_snapshot_s:.1f} s; {result.topics} topics")
        print(f"- webhooks, no page open: {summary(result.idle)}")
        print(f"- webhooks, {result.opened} pages open: {summary(result.with_pages)}")
        idle_p99 = percentile(result.idle, 0.99) if result.idle else 0
        if idle_p99 and result.with_pages:
            low, high = p99_ratio_interval(result.idle, result.with_pages)
            print(f"- webhook p99 with the pages / idle: {percentile(result.with_pages, 0.99) / idle_p99:.2f} "
                  f"(90 % interval by resampling the webhooks: {low:.2f}-{high:.2f})")
        for name, (latencies, missing) in result.updates.items():
            print(f"- update, {name} (webhook answered → page received): {summary(latencies)}"
                  f"{f'; {missing} never arrived' if missing else ''}")
        print(f"- snapshots received by all pages: {result.messages}; live process: "
              f"{result.live_cpu_s / max(result.phases, 1):.1f} s of CPU per {args.seconds:g} s with the pages open, "
              f"{result.live_mib:.0f} MiB resident at most")
        print("- each page kind's topics, and the slowest last read of one (thread and wait): " + "; ".join(
            f"{kind} {figures['topics']} for {figures['pages']} pages, {figures['slowest_read_ms']} ms"
            for kind, figures in sorted(result.kinds.items())))
        print(f"- pages closed: the live process counted {result.count_after_close['pages']} open after "
              f"{result.count_after_close['seconds']} s\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=5)
    parser.add_argument("--seeded", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1,
                        help="stretches of each kind per round, alternating (default 1: idle, then pages)")
    parser.add_argument("--live-nice", type=int, default=None,
                        help="the live process's --nice (default: its own default)")
    args = parser.parse_args()

    url, drop = fresh_database("postgres")
    rounds = []
    try:
        migrate_with_roster(url)
        prepare(url)
        with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm, \
                gunicorn_service(url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY, livekit_secret=LIVEKIT_SECRET,
                                 workers=2, threads=4, extra_env={**SERVICE_ENV, "BOARD_CALLS_SHOWN": str(
                                     boards_calls_shown(args.pages, args.seconds, args.rate))}) as served, \
                live_process(served.env, args.live_nice) as (port, process):
            cookies = {name: cookie_of(served.base_url, name)
                       for name in ["boss", *(f"agent{n:03d}" for n in range(CONSOLES))]}
            rounds.append(one_round("The calls the run makes", served.base_url, port, process.pid, cookies, args))
            seed_calls(url, args.seeded)
            rounds.append(one_round(f"With {args.seeded} more live calls seeded", served.base_url, port, process.pid,
                                    cookies, args))
    finally:
        drop()
    report(rounds, args)


if __name__ == "__main__":
    main()
