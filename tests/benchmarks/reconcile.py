"""Benchmark: one reconciler pass over many live calls, asking about each leg in turn (before) or listing (after).

    .venv/bin/python -m tests.benchmarks.reconcile [--calls 300] [--ended 10] [--database sqlite|postgres]

CALLS callers dial in and stay in the IVR (CALLS live legs); ENDED of them
then hang up unheard (their status callbacks are dropped on the way, as in
a database outage). The service runs in this process on the virtual clock;
Twilio's REST API is the stand-in served over loopback HTTP, so every
request to Twilio is a real HTTP round trip. One pass is run as it was
before the list (every leg asked about, GET Calls/{sid}) and as it is now
(the live calls listed, a page per 1000; only legs missing from the list
asked about), three times each on the same calls; then ENDED callers hang
up and one pass (now) finds and fixes them. Prints a Markdown table
of requests to Twilio and wall time; docs/performance.md keeps the latest
results. Nothing here asserts a time: it measures.
"""

from __future__ import annotations

import argparse
import statistics
import time

from alembic import command

from app import close_app, create_app
from app.calls.reconcile import Reconciliation, TwilioCalls, reconcile
from app.database import alembic_config
from app.jobs.setup import jobs_of
from app.jobs.steps import job_step
from app.sandbox.call_centre import CallCentre
from app.sandbox.served import ACCOUNT_SID, AUTH_TOKEN, NUMBER
from app.sandbox.twilio_server import TwilioStandIn
from config import Settings
from tests.benchmarks.call_flow import fresh_database

PUBLIC_BASE_URL = "https://switchboard.bench"
RUNS = 3


class AskEachLeg:
    """The pass as it was: no list of live calls, so every leg is asked about on its own."""

    def __init__(self, twilio: TwilioCalls):
        self.twilio = twilio

    def live_calls(self) -> dict[str, str]:
        return {}

    def call_status(self, sid: str) -> str | None:
        return self.twilio.call_status(sid)


def one_pass(app, twilio: TwilioCalls, network) -> tuple[Reconciliation, int, int, float]:
    """(outcome, list requests, single-call requests, seconds) of one pass."""
    tools = jobs_of(app).context["tools"]
    network.rest_log.clear()
    started = time.perf_counter()
    with tools.make_session() as session:
        outcome = reconcile(lambda: job_step(tools), twilio, session, tools.settings.reconcile_pass_seconds)
    seconds = time.perf_counter() - started
    gets = [r.path for r in network.rest_log if r.method == "GET"]
    listed = sum(1 for path in gets if path.endswith("/Calls.json"))
    return outcome, listed, len(gets) - listed, seconds


def row(name: str, runs: list) -> tuple[str, int, int, int, int, float]:
    outcome, listed, single, _ = runs[0]
    return name, outcome.asked, len(outcome.fixed), listed, single, statistics.median(run[3] for run in runs)


def measure(calls: int, ended: int, database: str) -> list[tuple[str, int, int, int, int, float]]:
    url, drop = fresh_database(database)
    command.upgrade(alembic_config(url), "head")
    settings = Settings(app_env="test", secret_key="benchmark-secret-key", database_url=url,
                        public_base_url=PUBLIC_BASE_URL, log_format="json", log_level="warning",
                        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_phone_number=NUMBER,
                        reconcile_interval_seconds=0)
    app = create_app(settings)
    centre = CallCentre(app, PUBLIC_BASE_URL, ACCOUNT_SID, AUTH_TOKEN)
    rows = []
    try:
        with TwilioStandIn(centre.network) as stand_in:
            gateway = app.extensions["gateways"].twilio
            gateway.http_client.api_base_url = stand_in.url
            centre.load_roster()
            callers = [centre.dial(f"+1555{n:07d}") for n in range(calls)]
            for name, twilio in (("before: each leg asked", AskEachLeg(gateway)), ("after: live calls listed", gateway)):
                runs = [one_pass(app, twilio, centre.network) for _ in range(RUNS)]
                rows.append(row(name, runs))
            if ended:
                answering = centre.network.transport
                centre.network.transport = lambda url, params, headers: (503, "text/plain", "")
                for caller in callers[:ended]:
                    caller.hangup()  # its status callback meets a 503, and Twilio does not retry it
                centre.network.transport = answering
                rows.append(row(f"after, {ended} ended unheard", [one_pass(app, gateway, centre.network)]))
    finally:
        centre.close()
        close_app(app)
        drop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--ended", type=int, default=10)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    rows = measure(args.calls, args.ended, args.database)
    print(f"## One reconciler pass, {args.calls} live calls, {args.ended} ended unheard ({args.database})\n")
    print("| pass | legs asked | legs fixed | list requests | single-call requests | wall time (median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, asked, fixed, listed, single, seconds in rows:
        print(f"| {name} | {asked} | {fixed} | {listed} | {single} | {seconds * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
