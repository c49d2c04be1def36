"""Benchmark: webhook latency, throughput and worker memory of the service under gunicorn.

    .venv/bin/python -m tests.benchmarks.call_flow [--database sqlite|postgres] [--calls 10] [--burst 40]

Runs the service as in production (gunicorn, 2 workers x 4 threads) against
the loopback stand-ins, then
1. places CALLS whole warm transfers one after another (IVR, agent answers,
   * 2 102 #, target hears the summary and accepts, complete, hang up) and
   reports every webhook's latency by step;
2. sends a BURST of new callers at once (voice webhook, then the IVR choice,
   from 8 client threads) and reports latency and requests per second;
3. reports each gunicorn worker's resident memory.
Prints a Markdown report; docs/performance.md keeps the latest results.
Nothing here asserts a time: it measures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests
from alembic import command
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app.agents.service import DEMO_ROSTER, load_roster, read_roster
from app.database import alembic_config, make_engine
from app.models import Event
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.scenarios import warm_transfer_by_dtmf
from app.sandbox.served import AUTH_TOKEN, NUMBER, gunicorn_service
from app.sandbox.signing import signed_headers
from app.supervisor.board import DEAD_AIR_EVENTS

LIVEKIT_KEY, LIVEKIT_SECRET = "APIbenchmark", "benchmark-livekit-secret-0123456789"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def fresh_database(kind: str) -> tuple[str, callable]:
    if kind == "sqlite":
        path = Path(tempfile.gettempdir()) / f"switchboard-bench-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    name = f"switchboard_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def timed_transport(timings: dict[str, list[float]]):
    session = requests.Session()

    def send(url: str, params: dict, headers: dict, answered=None):  # the answer's arrival is not marked here
        started = time.perf_counter()
        response = session.post(url, data=params, headers=headers, timeout=20)
        timings[urlsplit(url).path].append((time.perf_counter() - started) * 1000)
        return response.status_code, response.headers.get("Content-Type", ""), response.text

    return send


def whole_transfers(served, calls: int, timings, first_caller: int = 0) -> float:
    network = served.network
    network.transport = timed_transport(timings)
    started = time.perf_counter()
    for n in range(first_caller, first_caller + calls):
        caller, alice, bob = warm_transfer_by_dtmf(network, NUMBER, f"+1555300{n:04d}")
        caller.hangup()
        network.run_pending()
        for leg in (alice, bob):
            if leg.live:
                leg.hangup()
    return (time.perf_counter() - started) / calls


def dead_air(url: str) -> dict[str, list[int]]:
    """The dead air the service recorded for the transfers (milliseconds): the caller on hold, the target's wait."""
    engine = make_engine(url, pooled=False)
    with Session(engine) as session:
        found: dict[str, list[int]] = defaultdict(list)
        for event in session.scalars(select(Event).where(Event.name.in_(tuple(DEAD_AIR_EVENTS)))):
            key, _who = DEAD_AIR_EVENTS[event.name]
            found[event.name].append(int(event.detail.get(key) or 0))
    engine.dispose()
    return found


def burst(served, size: int) -> tuple[list[float], float]:
    base = served.base_url
    latencies: list[float] = []
    client = requests.Session()

    def one(n: int) -> None:
        sid = "CA" + uuid.uuid4().hex
        form = {"CallSid": sid, "From": f"+1555400{n:04d}", "To": NUMBER, "CallStatus": "ringing"}
        started = time.perf_counter()
        answer = client.post(base + "/twilio/voice", data=form,
                             headers=signed_headers(AUTH_TOKEN, base + "/twilio/voice", form), timeout=20)
        latencies.append((time.perf_counter() - started) * 1000)
        action = answer.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        choice = {**form, "CallStatus": "in-progress", "Digits": "2"}
        started = time.perf_counter()
        client.post(action, data=choice, headers=signed_headers(AUTH_TOKEN, action, choice), timeout=20)
        latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(size)))
    return latencies, (2 * size) / (time.perf_counter() - started)


def worker_memory_mib(master_pid: int) -> list[float]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    sizes = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def migrate_with_roster(url: str) -> None:
    """The database at URL migrated, with the demo roster loaded (what gunicorn_service expects)."""
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url, pooled=False)
    with Session(engine) as session:
        load_roster(session, read_roster(DEMO_ROSTER))
        session.commit()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--burst", type=int, default=40)
    args = parser.parse_args()

    url, drop = fresh_database(args.database)
    try:
        migrate_with_roster(url)
        with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm, \
                gunicorn_service(url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY,
                                 livekit_secret=LIVEKIT_SECRET, workers=2, threads=4) as served:
            timings: dict[str, list[float]] = defaultdict(list)
            per_call = whole_transfers(served, args.calls, timings)
            silences = dead_air(url)
            burst_latencies, rate = burst(served, args.burst)
            memory = worker_memory_mib(served.process.pid)
    finally:
        drop()

    print(f"## {args.database}: gunicorn 2 workers x 4 threads\n")
    print(f"{args.calls} whole warm transfers, one after another: {per_call * 1000:.0f} ms of webhook time per call "
          f"(about {sum(len(v) for v in timings.values()) // args.calls} webhooks each)\n")
    print("| webhook | requests | p50 ms | p95 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    for path, values in sorted(timings.items(), key=lambda item: -statistics.median(item[1])):
        print(f"| `{path}` | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} "
              f"| {max(values):.1f} |")
    print("\nDead air the service recorded per transfer (the call page's panel):\n")
    print("| who, between what | transfers | p50 ms | max ms |")
    print("| --- | --- | --- | --- |")
    for name, (_key, who) in DEAD_AIR_EVENTS.items():
        values = silences.get(name) or [0]
        print(f"| {who} | {len(silences.get(name, []))} | {statistics.median(values):.0f} | {max(values):.0f} |")
    print(f"\nBurst of {args.burst} new callers from 8 client threads (voice + IVR choice, each rings an agent or "
          f"queues): {rate:.0f} requests/s, p50 {statistics.median(burst_latencies):.1f} ms, "
          f"p95 {percentile(burst_latencies, 0.95):.1f} ms, max {max(burst_latencies):.1f} ms\n")
    print("Worker resident memory after the run: " + ", ".join(f"{m:.0f} MiB" for m in memory) + "\n")


if __name__ == "__main__":
    main()
