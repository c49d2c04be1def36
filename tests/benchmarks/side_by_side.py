"""Benchmark: the service's new-call webhook side by side with bare Flask and the lean ceiling, under wrk.

    .venv/bin/python -m tests.benchmarks.side_by_side [--pairs 5] [--seconds 10] [--connections 32]
        [--transfers 5] [--peer PATH [--peer-python PATH/.venv/bin/python]]

Needs `wrk` (Debian: `apt-get install -y wrk`) and PostgreSQL on 127.0.0.1:5432.
In a database of its own (migrated, with the demo roster, dropped at the
end), each of these runs under gunicorn, 2 gthread workers x 4 threads:

- bare: Flask answering constant TwiML (tests/benchmarks/side_by_side_apps.py);
- lean: the least a correct new-call webhook does: Twilio's signature
  checked with twilio-python's RequestValidator, one structlog line, and in
  one transaction the delivery claimed (INSERT ... ON CONFLICT DO NOTHING
  RETURNING) and the call's row and its leg's row stored;
- service: wsgi:app with the settings of the other benchmarks
  (app/sandbox/served.py: the stand-ins, LOG_LEVEL=warning), answering its
  IVR greeting; the reconciler's timer is off (RECONCILE_INTERVAL_SECONDS=0):
  the benchmark's callers never exist on Twilio's side, and its passes over
  thousands of them would be counted as webhook cost;
- peer (--peer): TwilioDevEd/warm-transfer-flask's new-call webhook
  (/conference/connect/client), run unchanged with its own Python; it has no
  signature check and no idempotency, and it calls Twilio's REST API (here
  the Twilio stand-in) inside the webhook.

Rounds alternate: each pair runs every app once for --seconds (the order
reversed every other pair), wrk at --connections connections sending
`POST /twilio/voice` requests from a file, each a new CallSid and From, a
fresh I-Twilio-Idempotency-Token and the X-Twilio-Signature Twilio would send
for the URL the app expects (the service: PUBLIC_BASE_URL + path); a thread
never sends one twice (tests/benchmarks/side_by_side.lua). For each app it
reports requests/s, the ratio to bare Flask in the same pair (median and
range), p50/p99 latency, worker CPU per request (the gunicorn workers'
utime+stime from /proc before and after a round, over the requests), and for
the service the statements and thread CPU per webhook from its
`request_served` log lines. Then it checks the service's rounds: every
answer 200 and TwiML, and one call row per CallSid the service answered
(none lost, none doubled, none stored unanswered). Last, --transfers whole
warm transfers (tests/benchmarks/call_flow.py) give the statements and CPU
of the heavy steps, per webhook (the LLM stand-in taking SUMMARY_SECONDS, so
the target waits a turn or two for the summary), after WARM_UP_TRANSFERS
that are not counted. Nothing here asserts a time: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import bindparam, create_engine, func, select, text
from sqlalchemy.orm import Session

from app.logs import configure_logging
from app.models import Call
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.served import ACCOUNT_SID, AUTH_TOKEN, NUMBER, free_port, gunicorn_service
from app.sandbox.signing import FORM_CONTENT_TYPE, twilio_signature
from app.sandbox.twilio_network import TwilioNetwork, http_transport
from app.sandbox.twilio_server import TwilioStandIn
from tests.benchmarks.call_flow import fresh_database, migrate_with_roster, percentile, whole_transfers
from tests.benchmarks.side_by_side_apps import create_lean_tables

ROOT = Path(__file__).resolve().parents[2]
LUA = Path(__file__).with_suffix(".lua")
LIVEKIT_KEY, LIVEKIT_SECRET = "APIsidebyside", "side-by-side-livekit-secret-0123456789"
WRK_THREADS = 2
WORKERS, THREADS = 2, 4
# Requests written per second of a round for an app that keeps state: above what any of them serves here, so
# no request repeats (a round that ran out says so: `wrapped`).
LINES_PER_SECOND = 2500
WARM_UP_TRANSFERS = 2  # before the heavy steps' measured transfers
# How long the LLM stand-in takes to write a summary in the heavy steps' transfers (within
# SUMMARY_DEADLINE_SECONDS, 6 s by default).
SUMMARY_SECONDS = 2.5
GUNICORN_ARGS = ["-k", "gthread", "-w", str(WORKERS), "--threads", str(THREADS), "--timeout", "30",
                 "--graceful-timeout", "20", "--keep-alive", "5", "--no-control-socket"]
HEAVY_STEPS = {
    "/twilio/voice": "new call (IVR greeting)",
    "/twilio/ivr": "IVR choice that rings an agent",
    "/twilio/agent/answer": "agent answers",
    "/twilio/agent/whisper": "agent accepts the call",
    "/twilio/transfer/menu": "transfer menu",
    "/twilio/transfer/consult-menu": "consult menu (complete)",
    "/twilio/transfer/answer": "target answers",
    "/twilio/transfer/intro": "target's wait turn (intro)",
    "/twilio/transfer/summary-wait": "target's wait turn",
    "/twilio/transfer/whisper": "target accepts",
    "/twilio/caller/wait": "caller's hold turn",
    "/twilio/caller/connect": "caller joins the agent's room",
    "/twilio/caller/bridge-ended": "caller's bridge ends",
    "/twilio/agent/bridge-ended": "an agent's bridge ends",
    "/twilio/agent/rejoin": "agent back to the caller",
    "/twilio/status": "call status callback",
    "/twilio/agent/status": "agent leg's status callback",
    "/twilio/transfer/status": "target leg's status callback",
    "/twilio/transcription": "transcript chunk",
    "/livekit/webhook": "LiveKit room event",
}


@dataclass
class Round:
    app: str
    pair: int
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    non_2xx: int
    socket_errors: int
    not_twiml: int
    wrapped: int
    sids: list[str] = field(default_factory=list)  # the CallSids wrk sent


@dataclass
class App:
    """One app under gunicorn: where it answers, how its requests look, its master process."""

    name: str
    base_url: str
    path: str
    public_url: str  # what Twilio signs: the URL the app believes it is reached at
    process: subprocess.Popen
    log: object = None  # where its gunicorn writes
    keeps_state: bool = True
    expect: str = "<Gather"  # what its normal answer holds (the IVR's question), never a failure's TwiML


def worker_cpu_seconds(master_pid: int) -> float:
    """User and system CPU of gunicorn's workers (the master's children), threads included."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / tick


class Requests:
    """Pre-signed new-call webhooks: a new CallSid, From and idempotency token each."""

    def __init__(self) -> None:
        self.made = 0

    def write(self, app: App, count: int, path: Path) -> list[str]:
        sids = []
        with path.open("w") as out:
            for _ in range(count):
                self.made += 1
                sid = "CA" + uuid.uuid4().hex
                form = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid,
                        "CallStatus": "ringing", "Direction": "inbound", "From": f"+1555{self.made % 10**7:07d}",
                        "To": NUMBER}
                headers = {"Content-Type": FORM_CONTENT_TYPE,
                           "X-Twilio-Signature": twilio_signature(AUTH_TOKEN, app.public_url + app.path, form),
                           "I-Twilio-Idempotency-Token": uuid.uuid4().hex, "X-Request-Id": sid}
                out.write("\t".join([app.path, *(f"{k}: {v}" for k, v in headers.items()), urlencode(form)]) + "\n")
                sids.append(sid)
        return sids


def start_gunicorn(target: str, env: dict, log, *, python: str = sys.executable, cwd: Path = ROOT,
                   port: int | None = None) -> tuple[str, subprocess.Popen]:
    port = port or free_port()
    process = subprocess.Popen([python, "-m", "gunicorn", *GUNICORN_ARGS, "-b", f"127.0.0.1:{port}", target],
                               cwd=cwd, env={"PATH": os.environ.get("PATH", ""), **env}, stdout=log,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return f"http://127.0.0.1:{port}", process


def wait_until_up(app: App, seconds: float = 30) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            app.log.seek(0)
            raise RuntimeError(f"{app.name}: gunicorn exited with status {app.process.returncode}: "
                               f"{app.log.read()[-2000:]}")
        try:
            requests.get(app.base_url + "/", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{app.name} did not answer in time")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Running:
    """A wrk round under way against one app: what it sends and the app's worker CPU when it began."""

    app: App
    pair: int
    wrk: subprocess.Popen
    lines: Path
    sids: list[str]
    cpu_before: float


def start_round(app: App, pair: int, made: Requests, seconds: int, connections: int, folder: Path,
                part: str = "") -> Running:
    """Start wrk against APP for SECONDS (PART names its requests' file when several run at once)."""
    lines = folder / f"{app.name}-{pair}{part}.txt"
    count = int(seconds * LINES_PER_SECOND) if app.keeps_state else 4000
    sids = made.write(app, count, lines)
    before = worker_cpu_seconds(app.process.pid)
    wrk = subprocess.Popen(
        ["wrk", "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(LUA), app.base_url, "--", str(lines), str(WRK_THREADS), app.expect],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Running(app, pair, wrk, lines, sids, before)


def finish_round(running: Running, seconds: int) -> Round:
    """Wait for the round's wrk, then read what it and the app's workers report."""
    app = running.app
    stdout, stderr = running.wrk.communicate(timeout=seconds + 120)
    time.sleep(0.5)  # what was in flight when wrk stopped finishes
    spent = worker_cpu_seconds(app.process.pid) - running.cpu_before
    running.lines.unlink()
    report = next((json.loads(line) for line in stdout.splitlines() if line.startswith("{")), None)
    if report is None:
        raise RuntimeError(f"wrk said nothing usable for {app.name}: {stdout}{stderr}")
    sids = running.sids
    sent = [sid for thread, issued in enumerate(report["sent"])
            for sid in sids[thread::WRK_THREADS][:issued]] if app.keeps_state else []
    done = max(report["requests"], 1)
    return Round(app.name, running.pair, report["requests"] / (report["duration_us"] / 1e6), report["requests"],
                 report["p50_us"] / 1000, report["p99_us"] / 1000, spent * 1000 / done, report["non_2xx"],
                 report["socket_errors"] + report["timeouts"], report["not_twiml"], report["wrapped"], sent)


def run_round(app: App, pair: int, made: Requests, seconds: int, connections: int, folder: Path) -> Round:
    return finish_round(start_round(app, pair, made, seconds, connections, folder), seconds)


def served_lines(output: str, since: str = "", until: str = "~") -> list[dict]:
    """The service's `request_served` lines logged between SINCE and UNTIL (ISO timestamps)."""
    found = []
    for line in output.splitlines():
        if '"request_served"' in line and line.startswith("{"):
            entry = json.loads(line)
            if since <= entry["timestamp"] < until:
                found.append(entry)
    return found


def check_calls(url: str, rounds: list[Round], lines: list[dict]) -> dict:
    """Each CallSid the service answered 200 has one call row; none has two; none was stored unanswered."""
    answered = {line["request_id"] for line in lines if line["path"] == "/twilio/voice" and line["status"] == 200}
    sent = [sid for one in rounds for sid in one.sids]
    engine = create_engine(url)
    rows: dict[str, int] = {}
    query = text("SELECT call_sid, count(*) FROM calls WHERE call_sid IN :sids GROUP BY call_sid").bindparams(
        bindparam("sids", expanding=True))
    with engine.connect() as connection:
        for start in range(0, len(sent), 5000):
            rows.update(dict(connection.execute(query, {"sids": sent[start:start + 5000]}).all()))
    engine.dispose()
    answered_sent = answered.intersection(sent)
    return {
        "sent": len(sent),
        "completed by wrk": sum(one.requests for one in rounds),
        "answered 200 by the service": len(answered_sent),
        "call rows": sum(rows.values()),
        "lost (answered, no row)": sum(1 for sid in answered_sent if sid not in rows),
        "doubled (two rows or more)": sum(1 for count in rows.values() if count > 1),
        "stored unanswered": sum(1 for sid in rows if sid not in answered_sent),
        "non-2xx": sum(one.non_2xx for one in rounds),
        "not TwiML": sum(one.not_twiml for one in rounds),
        "socket errors": sum(one.socket_errors for one in rounds),
    }


def start_peer(peer: Path, python: str, url: str, twilio_url: str, log) -> tuple[str, subprocess.Popen]:
    env = {"DATABASE_URI": url.replace("postgresql+psycopg://", "postgresql://"), "PEER_TWILIO_API_BASE_URL":
           twilio_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_API_KEY": ACCOUNT_SID,
           "TWILIO_API_SECRET": AUTH_TOKEN, "TWILIO_NUMBER": NUMBER, "PYTHONPATH": f"{peer}:{Path(__file__).parent}"}
    made = subprocess.run([python, str(ROOT / "tests/benchmarks/side_by_side_peer.py")], cwd=peer,
                          env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        raise RuntimeError(f"the peer's table was not created: {made.stdout}{made.stderr}")
    # Its checkout has a `tests` package of its own: the wrapper is imported by its bare name.
    return start_gunicorn("side_by_side_peer:app", env, log, python=python, cwd=peer)


def summarise(rounds: list[Round], apps: list[str]) -> list[dict]:
    by_pair = {(one.app, one.pair): one for one in rounds}
    pairs = sorted({one.pair for one in rounds})
    table = []
    for name in apps:
        mine = [one for one in rounds if one.app == name]
        ratios = [by_pair[(name, p)].rps / by_pair[("bare", p)].rps for p in pairs]
        table.append({"app": name, "rps": statistics.median(one.rps for one in mine),
                      "rps_range": (min(one.rps for one in mine), max(one.rps for one in mine)),
                      "ratio": statistics.median(ratios), "ratio_range": (min(ratios), max(ratios)),
                      "p50": statistics.median(one.p50_ms for one in mine),
                      "p99": statistics.median(one.p99_ms for one in mine),
                      "cpu": statistics.median(one.cpu_ms_per_request for one in mine),
                      "errors": sum(one.non_2xx + one.not_twiml + one.socket_errors for one in mine),
                      "wrapped": sum(one.wrapped for one in mine)})
    return table


def heavy_steps(lines: list[dict]) -> list[tuple[str, str, int, float, float, float]]:
    by_path: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        by_path[line["path"]].append(line)
    steps = []
    for path, found in by_path.items():
        statements = [line["db_statements"] for line in found]
        steps.append((HEAVY_STEPS.get(path, ""), path, len(found), statistics.mean(statements),
                      statistics.median(line["cpu_ms"] for line in found),
                      statistics.median(line["duration_ms"] for line in found)))
    return sorted(steps, key=lambda step: -step[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="alternating rounds of every app (default 5)")
    parser.add_argument("--seconds", type=int, default=10, help="length of one round (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's open connections (default 32)")
    parser.add_argument("--transfers", type=int, default=5, help="whole warm transfers for the heavy steps")
    parser.add_argument("--peer", type=Path, help="a checkout of TwilioDevEd/warm-transfer-flask")
    parser.add_argument("--peer-python", help="the peer's Python, with its requirements (default PEER/.venv)")
    args = parser.parse_args()
    configure_logging(level="warning")  # this process's own log (the roster loaded) stays out of the report
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: on Debian or Ubuntu, `apt-get install -y wrk`")
    peer_python = args.peer_python or (str(args.peer / ".venv/bin/python") if args.peer else None)

    url, drop = fresh_database("postgres")
    folder = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    started_at = datetime.now(timezone.utc)
    made = Requests()
    rounds: list[Round] = []
    processes: list[subprocess.Popen] = []
    logs = {name: (folder / f"{name}.log").open("w+") for name in ("bare", "lean", "peer")}
    try:
        migrate_with_roster(url)
        engine = create_engine(url)
        create_lean_tables(engine)
        engine.dispose()
        peer_twilio = TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, http_transport(timeout=20))
        peer_twilio.calls_per_second = 1000.0  # Twilio's queue of outgoing calls would slow its answers
        peer_twilio.add_number(NUMBER)
        with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm, \
                TwilioStandIn(peer_twilio) as peer_rest, \
                gunicorn_service(url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY, livekit_secret=LIVEKIT_SECRET,
                                 workers=WORKERS, threads=THREADS,
                                 extra_env={"RECONCILE_INTERVAL_SECONDS": "0"}) as served:
            bare_url, bare = start_gunicorn("tests.benchmarks.side_by_side_apps:bare", {}, logs["bare"])
            processes.append(bare)
            lean_port = free_port()
            lean_port_url, lean = start_gunicorn(
                "tests.benchmarks.side_by_side_apps:lean", {"LEAN_DATABASE_URL": url, "LEAN_AUTH_TOKEN": AUTH_TOKEN,
                                                            "LEAN_PUBLIC_URL": f"http://127.0.0.1:{lean_port}"},
                logs["lean"], port=lean_port)
            processes.append(lean)
            apps = [App("bare", bare_url, "/twilio/voice", bare_url, bare, logs["bare"], keeps_state=False)]
            lean_app = App("lean", lean_port_url, "/twilio/voice", lean_port_url, lean, logs["lean"])
            apps += [lean_app, App("service", served.base_url, "/twilio/voice", served.base_url, served.process)]
            if args.peer:
                peer_url, peer = start_peer(args.peer.resolve(), peer_python, url, peer_rest.url, logs["peer"])
                processes.append(peer)
                apps.append(App("peer", peer_url, "/conference/connect/client", peer_url, peer, logs["peer"],
                                expect="<Conference"))
            for app in apps:
                wait_until_up(app)
            for app in apps:  # warm up: imports, templates, pools
                run_round(app, 0, made, 2, args.connections, folder)
            measured_from = datetime.now(timezone.utc).isoformat()
            for pair in range(1, args.pairs + 1):
                order = apps if pair % 2 else list(reversed(apps))
                for app in order:
                    rounds.append(run_round(app, pair, made, args.seconds, args.connections, folder))
                    one = rounds[-1]
                    print(f"pair {pair} {app.name}: {one.rps:.0f} req/s, p99 {one.p99_ms:.0f} ms, "
                          f"{one.cpu_ms_per_request:.2f} ms CPU/request", file=sys.stderr)
            measured_until = datetime.now(timezone.utc).isoformat()
            time.sleep(1)
            # The LLM takes a while, as a real one does: the target hears a wait turn or two before the summary.
            llm.mode, llm.delay_seconds = "slow", SUMMARY_SECONDS
            # Not counted: a worker's first run of a step compiles its statements and loads its templates (a cold
            # IVR choice cost 22 times a warm one); the 120 webhooks of two transfers reach both workers.
            whole_transfers(served, WARM_UP_TRANSFERS, defaultdict(list))
            time.sleep(1)
            transfers_from = datetime.now(timezone.utc).isoformat()
            whole_transfers(served, args.transfers, defaultdict(list), first_caller=WARM_UP_TRANSFERS)
            time.sleep(1)
            for process in processes:
                stop(process)
        # gunicorn has stopped: the service's log is whole.
        checked = check_calls(url, [one for one in rounds if one.app == "service"],
                              served_lines(served.output, measured_from))
        lean_rows = _lean_rows(url)
    finally:
        for process in processes:
            stop(process)
        for log in logs.values():
            log.close()
        drop()
        shutil.rmtree(folder, ignore_errors=True)
    webhook_lines = [line for line in served_lines(served.output, measured_from, measured_until)
                     if line["path"] == "/twilio/voice"]
    report(args, started_at, summarise(rounds, [app.name for app in apps]), rounds, checked, webhook_lines,
           heavy_steps(served_lines(served.output, transfers_from)), lean_rows)


def _lean_rows(url: str) -> dict:
    engine = create_engine(url)
    with Session(engine) as session:
        calls = session.execute(text("SELECT count(*), count(DISTINCT call_sid) FROM lean.calls")).one()
        legs = session.scalar(text("SELECT count(*) FROM lean.legs"))
        service_calls = session.scalar(select(func.count(Call.id)))
    engine.dispose()
    return {"lean calls": calls[0], "lean distinct CallSids": calls[1], "lean legs": legs,
            "service calls": service_calls}


def report(args, started_at, table, rounds, checked, webhook_lines, steps, lean_rows) -> None:
    print(f"## Side by side, {started_at:%Y-%m-%d %H:%M} UTC\n")
    print(f"{args.pairs} alternating pairs of {args.seconds:g} s rounds, wrk {WRK_THREADS} threads x "
          f"{args.connections} connections, gunicorn {WORKERS} gthread workers x {THREADS} threads each, "
          f"PostgreSQL; `POST /twilio/voice`, every request a new signed call.\n")
    print("| app | req/s (median) | ratio to bare Flask: median (range) | p50 ms | p99 ms | worker CPU ms/request "
          "| not 200 TwiML |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in table:
        low, high = row["ratio_range"]
        print(f"| {row['app']} | {row['rps']:.0f} | {row['ratio']:.2f} ({low:.2f}-{high:.2f}) | {row['p50']:.1f} "
              f"| {row['p99']:.1f} | {row['cpu']:.2f} | {row['errors']} |")
    if any(row["app"] == "peer" for row in table):
        print("\npeer: TwilioDevEd/warm-transfer-flask's /conference/connect/client, unchanged: no signature check, "
              "no idempotency; it calls Twilio's REST API (the stand-in) inside the webhook and updates one shared "
              "row.")
    if webhook_lines:
        statements = [line["db_statements"] for line in webhook_lines]
        print(f"\nService, per new-call webhook ({len(webhook_lines)} `request_served` lines of the measured rounds):"
              f" {statistics.mean(statements):.1f} statements (min {min(statements)}, max {max(statements)}), "
              f"thread CPU p50 {statistics.median(line['cpu_ms'] for line in webhook_lines):.2f} ms, "
              f"p99 {percentile([line['cpu_ms'] for line in webhook_lines], 0.99):.2f} ms.")
    print("\nCorrectness of the service's rounds: " + ", ".join(f"{k} {v}" for k, v in checked.items()) + ".")
    print("Lean's rows: " + ", ".join(f"{k} {v}" for k, v in lean_rows.items()) + ".")
    wrapped = [row["app"] for row in table if row["wrapped"] and row["app"] != "bare"]
    if wrapped:
        print(f"\nWARNING: {', '.join(wrapped)} ran out of requests and sent some twice: raise LINES_PER_SECOND.")
    print(f"\nHeavy steps: {args.transfers} whole warm transfers through the call_flow harness, one at a time "
          "(per webhook, from `request_served`):\n")
    print("| step | path | requests | statements (mean) | thread CPU ms (p50) | duration ms (p50) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, path, count, statements, cpu, duration in steps:
        print(f"| {label} | `{path}` | {count} | {statements:.1f} | {cpu:.2f} | {duration:.1f} |")


if __name__ == "__main__":
    main()
