"""Benchmark: do two service instances on one PostgreSQL serve more new calls than one?

    .venv/bin/python -m tests.benchmarks.instances [--pairs 3] [--seconds 10] [--connections 32] [--cpus 0.5]

Needs `wrk`, PostgreSQL on 127.0.0.1:5432 and root (the CPU limits are
cgroups: tests/benchmarks/cpu_limit.py). In a database of its own (migrated,
with the demo roster, dropped at the end), two instances of the service run
as in production (gunicorn, 2 gthread workers x 4 threads each, the
benchmarks' settings of app/sandbox/served.py, the reconciler's timer off as
in side_by_side.py), both believing they are reached at one public URL, as
behind a load balancer. Each instance is held to --cpus of the machine's CPU
(gunicorn's master and workers in one cgroup with that quota): the CPU of a
small machine of its own. PostgreSQL and wrk are not limited.

Rounds alternate (order reversed every other pair): `one` sends wrk's
--connections connections to the first instance; `two` sends half of them to
each instance at once (two wrk processes). Every request is a new signed
`POST /twilio/voice` call with its own idempotency token
(tests/benchmarks/side_by_side.lua), so no request is ever sent twice.
It reports requests/s (both wrk processes' requests over the round), p50 and
p99 (the slower instance's), worker CPU per request, and how long the kernel
held each instance back for its quota. Then it checks every round: every
answer 200 TwiML with the IVR's question, and one call row per CallSid the
instances answered (none lost, none doubled, none stored unanswered).
Nothing here asserts a time: it measures.

What it cannot show: two machines' networks, or a database on a machine of
its own; PostgreSQL here shares the two cores with everything else.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from app.logs import configure_logging
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.served import free_port, gunicorn_service
from tests.benchmarks.call_flow import fresh_database, migrate_with_roster
from tests.benchmarks.cpu_limit import CpuLimit
from tests.benchmarks.side_by_side import (
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    THREADS,
    WORKERS,
    App,
    Requests,
    Round,
    check_calls,
    finish_round,
    served_lines,
    start_round,
)


def run(arrangement: str, instances: list[App], limits: list[CpuLimit], pair: int, made: Requests, seconds: int,
        connections: int, folder: Path) -> dict:
    used = instances[:1] if arrangement == "one" else instances
    share = connections // len(used)
    throttled = [limit.throttled_seconds() for limit in limits]
    started = [start_round(app, pair, made, seconds, share, folder, part=f"-{arrangement}") for app in used]
    rounds = [finish_round(each, seconds) for each in started]
    return {"arrangement": arrangement, "pair": pair, "rounds": rounds,
            "rps": sum(one.rps for one in rounds),
            "p50": max(one.p50_ms for one in rounds), "p99": max(one.p99_ms for one in rounds),
            "cpu": sum(one.cpu_ms_per_request * one.requests for one in rounds) / max(
                sum(one.requests for one in rounds), 1),
            "errors": sum(one.non_2xx + one.not_twiml + one.socket_errors for one in rounds),
            "wrapped": sum(one.wrapped for one in rounds),
            "throttled": [limit.throttled_seconds() - before for limit, before in zip(limits, throttled)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="alternating rounds of one and two instances")
    parser.add_argument("--seconds", type=int, default=10, help="length of one round (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's open connections in all (default 32)")
    parser.add_argument("--cpus", type=float, default=0.5, help="CPU each instance may use (default 0.5)")
    args = parser.parse_args()
    configure_logging(level="warning")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: on Debian or Ubuntu, `apt-get install -y wrk`")

    url, drop = fresh_database("postgres")
    folder = Path(tempfile.mkdtemp(prefix="instances-"))
    started_at = datetime.now(timezone.utc)
    made = Requests()
    results: list[dict] = []
    served = []
    try:
        migrate_with_roster(url)
        ports = [free_port(), free_port()]
        public = f"http://127.0.0.1:{ports[0]}"  # what Twilio signs: the one address both stand behind
        with ExitStack() as stack:
            livekit = stack.enter_context(LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET))
            llm = stack.enter_context(LLMStandIn())
            limits = []
            instances = []
            for number, port in enumerate(ports):
                one = stack.enter_context(gunicorn_service(
                    url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY, livekit_secret=LIVEKIT_SECRET,
                    workers=WORKERS, threads=THREADS, port=port, public_url=public,
                    extra_env={"RECONCILE_INTERVAL_SECONDS": "0"}))
                served.append(one)
                limit = stack.enter_context(CpuLimit(f"instance-{number}", args.cpus))
                limit.add(one.process.pid)
                limits.append(limit)
                instances.append(App(f"instance-{number}", f"http://127.0.0.1:{port}", "/twilio/voice", public,
                                     one.process))
            for arrangement in ("one", "two"):  # warm up: imports, templates, pools
                run(arrangement, instances, limits, 0, made, 2, args.connections, folder)
            measured_from = datetime.now(timezone.utc).isoformat()
            for pair in range(1, args.pairs + 1):
                for arrangement in (("one", "two") if pair % 2 else ("two", "one")):
                    results.append(run(arrangement, instances, limits, pair, made, args.seconds, args.connections,
                                       folder))
                    last = results[-1]
                    print(f"pair {pair} {arrangement}: {last['rps']:.0f} req/s, p99 {last['p99']:.0f} ms, "
                          f"{last['cpu']:.2f} ms CPU/request, throttled "
                          f"{', '.join(f'{t:.1f}' for t in last['throttled'])} s", file=sys.stderr)
            time.sleep(1)
        # The instances have stopped: their logs are whole.
        lines = [line for one in served for line in served_lines(one.output, measured_from)]
        rounds: list[Round] = [one for result in results for one in result["rounds"]]
        checked = check_calls(url, rounds, lines)
    finally:
        drop()
        shutil.rmtree(folder, ignore_errors=True)
    report(args, started_at, results, checked, lines)


def report(args, started_at, results: list[dict], checked: dict, lines: list[dict]) -> None:
    print(f"## One instance or two, {started_at:%Y-%m-%d %H:%M} UTC\n")
    print(f"{args.pairs} alternating pairs of {args.seconds} s rounds; wrk {args.connections} connections in all; "
          f"each instance gunicorn {WORKERS} gthread workers x {THREADS} threads held to {args.cpus:g} CPU; "
          "PostgreSQL on the same machine, not limited; `POST /twilio/voice`, every request a new signed call.\n")
    print("| instances | req/s (median) | range | p50 ms | p99 ms | worker CPU ms/request | held back by the quota s "
          "(per round, median) | not 200 TwiML |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    medians = {}
    for arrangement in ("one", "two"):
        mine = [result for result in results if result["arrangement"] == arrangement]
        rates = [result["rps"] for result in mine]
        medians[arrangement] = statistics.median(rates)
        held = statistics.median(sum(result["throttled"][:1 if arrangement == "one" else 2]) for result in mine)
        print(f"| {arrangement} | {medians[arrangement]:.0f} | {min(rates):.0f}-{max(rates):.0f} "
              f"| {statistics.median(r['p50'] for r in mine):.1f} | {statistics.median(r['p99'] for r in mine):.1f} "
              f"| {statistics.median(r['cpu'] for r in mine):.2f} | {held:.1f} "
              f"| {sum(r['errors'] for r in mine)} |")
    by_pair = {(result["arrangement"], result["pair"]): result["rps"] for result in results}
    ratios = [by_pair[("two", pair)] / by_pair[("one", pair)] for pair in range(1, args.pairs + 1)]
    print(f"\nTwo instances against one, pair by pair: {', '.join(f'{ratio:.2f}' for ratio in ratios)}.")
    served = [line for line in lines if line["path"] == "/twilio/voice" and line["status"] == 200]
    print(f"Service, per new call ({len(served)} `request_served` lines): thread CPU p50 "
          f"{statistics.median(line['cpu_ms'] for line in served):.2f} ms.")
    print("\nCorrectness of every round: " + ", ".join(f"{k} {v}" for k, v in checked.items()) + ".")
    if any(result["wrapped"] for result in results):
        print("\nWARNING: a round ran out of requests and sent some twice: raise LINES_PER_SECOND.")


if __name__ == "__main__":
    main()
