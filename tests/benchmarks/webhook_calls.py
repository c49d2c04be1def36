"""Benchmark: the Python function calls of each webhook of a whole warm transfer, counted under cProfile.

    .venv/bin/python -m tests.benchmarks.webhook_calls [--transfers 8]

Needs PostgreSQL on 127.0.0.1:5432; makes a database of its own (migrated,
the demo roster loaded, dropped at the end). Runs the service as the other
benchmarks do (gunicorn, against the loopback stand-ins) but with one
worker of 4 threads, whose Python loads tests/benchmarks/counted/
sitecustomize.py: every request runs under cProfile, and after a path's
first three requests (a step's first run compiles its statements and loads
its templates) its total of function calls is kept. TRANSFERS whole warm
transfers by DTMF (call_flow.whole_transfers) go through it; then the
script prints, per path, the requests counted and their mean calls, and
the total over all of them.

With --charge PATH (repeatable), the requests of PATH are traced instead of
profiled, and every call is charged to the nearest function of the
service's own (app/) on the stack: a table per PATH of the functions its
calls were charged to (the top --top of them, per request), which is where
to look for what a webhook spends (the library's calls show under the
service's function that made them). The tracer counts the calls cProfile
does (within a few per thousand), so the totals stay comparable.

Function calls are deterministic where thread CPU is not (the heavy steps'
CPU medians moved 10 to 25 % between two runs of one commit on a shared
2-core machine): this is how docs/performance.md compares one commit with
another. The profiler's own cost makes the requests several times slower:
the counts, not the times, are the measurement. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.served import gunicorn_service
from tests.benchmarks.call_flow import LIVEKIT_KEY, LIVEKIT_SECRET, fresh_database, migrate_with_roster, whole_transfers

COUNTED = Path(__file__).parent / "counted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=8)
    parser.add_argument("--charge", action="append", default=[], metavar="PATH",
                        help="trace PATH's requests and charge each call to the service's function that made it")
    parser.add_argument("--top", type=int, default=15, help="functions shown per charged path")
    args = parser.parse_args()
    url, drop = fresh_database("postgres")
    try:
        migrate_with_roster(url)
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "calls")
            environment = {"RECONCILE_INTERVAL_SECONDS": "0", "PYTHONPATH": str(COUNTED), "WEBHOOK_CALLS_OUT": out,
                           "WEBHOOK_CALLS_CHARGE": ",".join(args.charge)}
            with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm:
                with gunicorn_service(url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY,
                                      livekit_secret=LIVEKIT_SECRET, workers=1, threads=4,
                                      extra_env=environment) as served:
                    whole_transfers(served, args.transfers, defaultdict(list))
                    time.sleep(1)
            # gunicorn has stopped: its worker wrote its counts at exit (its other processes, nothing).
            counted: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            charged: dict[str, Counter] = defaultdict(Counter)
            charged_requests: Counter = Counter()
            for name in glob.glob(out + ".*"):
                lines = Path(name).read_text().splitlines()
                if name.endswith(".charged"):
                    traced_here: dict[str, int] = {}  # a worker's file names its requests on every line of a path
                    for line in lines:
                        path, requests, function, calls = line.split("\t")
                        charged[path][function] += int(calls)
                        traced_here[path] = int(requests)
                    charged_requests.update(traced_here)
                    continue
                for line in lines:
                    path, requests, calls = line.split("\t")
                    counted[path][0] += int(requests)
                    counted[path][1] += int(calls)
    finally:
        drop()
    if not counted:
        raise SystemExit("no request was counted: did the worker load tests/benchmarks/counted/sitecustomize.py?")
    print(f"## Python function calls per request, {args.transfers} whole warm transfers, one gunicorn worker\n")
    print("| path | requests counted | calls per request (mean) |")
    print("| --- | --- | --- |")
    for path, (requests, calls) in sorted(counted.items()):
        print(f"| `{path}` | {requests} | {calls / requests:,.0f} |")
    requests = sum(r for r, _ in counted.values())
    calls = sum(c for _, c in counted.values())
    print(f"\nAll {requests:,} requests counted: {calls:,} calls.")
    for path, functions in sorted(charged.items()):
        requests = charged_requests[path]
        print(f"\n### `{path}`: calls charged to the service's own functions, per request ({requests} traced)\n")
        print("| function (under app/) | calls per request |")
        print("| --- | --- |")
        for function, calls in functions.most_common(args.top):
            print(f"| `{function}` | {calls / requests:,.0f} |")


if __name__ == "__main__":
    main()
