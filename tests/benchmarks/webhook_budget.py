"""Benchmark: the worst-case webhooks, with every call to Twilio and LiveKit they make slower than its timeout.

    .venv/bin/python -m tests.benchmarks.webhook_budget [--database sqlite|postgres] [--slow 8]

Runs the service as in production (gunicorn, 2 workers x 4 threads) against
the loopback stand-ins, with the gateways' timeouts at their defaults (5 s
each) and WEBHOOK_BUDGET_SECONDS at its default (10 s). A caller reaches
Alice; then, in turn, the stand-ins answer each call to Twilio or LiveKit
only after SLOW seconds (longer than any timeout), for the two webhooks
that make the most of them:
1. `*`: the service asks LiveKit who is in the room (ListParticipants);
2. the menu choice `2 102 #`: Twilio moves the caller to hold music (POST
   Calls/{sid}.json), LiveKit creates the consult room (CreateRoom) and
   Twilio rings Bob (POST Calls.json).
Each webhook's time is measured from Twilio sending it to its answer
arriving, over real HTTP. Prints a Markdown table; docs/performance.md
keeps the latest results. Nothing here asserts a time: it measures.
"""

from __future__ import annotations

import argparse
import time
from urllib.parse import urlsplit

from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.scenarios import connected_call
from app.sandbox.served import NUMBER, gunicorn_service
from tests.benchmarks.call_flow import LIVEKIT_KEY, LIVEKIT_SECRET, fresh_database, migrate_with_roster

BUDGET_SECONDS = 10.0


def timed_transport(inner, timings: list[tuple[str, float]]):
    """INNER, recording each webhook's path and the seconds until its answer arrived."""
    def send(url, params, headers, answered=None):
        started = time.perf_counter()
        arrived: list[float] = []

        def on_answer() -> None:
            arrived.append(time.perf_counter())
            if answered is not None:
                answered()

        result = inner(url, params, headers, on_answer)
        timings.append((urlsplit(url).path, (arrived[0] if arrived else time.perf_counter()) - started))
        return result

    return send


def measure(database: str, slow: float) -> list[tuple[str, str, float]]:
    url, drop = fresh_database(database)
    rows = []
    sleep = lambda: time.sleep(slow)  # noqa: E731 - a stand-in's slow answer
    try:
        migrate_with_roster(url)
        with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm, \
                gunicorn_service(url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY,
                                 livekit_secret=LIVEKIT_SECRET, workers=2, threads=4) as served:
            network = served.network
            timings: list[tuple[str, float]] = []
            network.transport = timed_transport(network.transport, timings)
            caller, alice = connected_call(network, NUMBER)

            livekit.delay_next("ListParticipants", slow)
            timings.clear()
            alice.press_star()
            rows.append(("`*` (ListParticipants slow)", *_the(timings, "/twilio/agent/bridge-ended")))

            livekit.delay_next("CreateRoom", slow)
            network.while_answering_next("Calls.json", sleep, method="POST")
            network.while_answering_next(f"Calls/{caller.sid}.json", sleep, method="POST")
            timings.clear()
            alice.press("2102#")
            rows.append(("`2 102 #` (the caller's hold, CreateRoom and the dial all slow)",
                         *_the(timings, "/twilio/transfer/menu")))
            time.sleep(slow + 1)  # what the budget left for after the answer finishes before the service stops
    finally:
        drop()
    return rows


def _the(timings: list[tuple[str, float]], path: str) -> tuple[str, float]:
    seconds = [took for where, took in timings if where == path]
    return path, seconds[0] if seconds else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--slow", type=float, default=8.0)
    args = parser.parse_args()
    rows = measure(args.database, args.slow)
    print(f"## Worst-case webhooks, every outside call {args.slow:g} s slow ({args.database})\n")
    print("| webhook | path | time to answer | budget | Twilio's limit |")
    print("| --- | --- | --- | --- | --- |")
    for name, path, seconds in rows:
        print(f"| {name} | `{path}` | {seconds:.2f} s | {BUDGET_SECONDS:g} s | 15 s |")


if __name__ == "__main__":
    main()
