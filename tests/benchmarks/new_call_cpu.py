"""Benchmark: the CPU of one new call, the service's `/twilio/voice` against the lean app's, in one process.

    .venv/bin/python -m tests.benchmarks.new_call_cpu [--calls 2000] [--rounds 3] [--guard-only | --arrival-guard-only]

Needs PostgreSQL on 127.0.0.1:5432; makes a database of its own (migrated,
the demo roster loaded, the lean app's tables added; dropped at the end).
Both apps run in this process, without gunicorn or a socket: each request is
a WSGI call with a signed new-call form (a new CallSid, From and Twilio
idempotency token each time), and its cost is the calling thread's CPU time
(`time.thread_time`) around it. The service runs with the settings of the
other benchmarks (app/sandbox/served.py) but no stand-in is reached: a new
call makes no REST call. The lean app is tests/benchmarks/side_by_side_apps.py's.
Requests alternate between the two apps, so both see the same machine;
after a warm-up, each of --rounds rounds sends --calls new calls to each and
reports the median thread CPU per request, and their ratio. Then one more
pass under cProfile counts the Python function calls of one of the
service's requests (deterministic, unlike time).

--guard-only: the service's side is a Twilio webhook guarded as every
webhook is (signature, delivery claim, remembered answer, commit, the
request's unit of work and log line) around a view that only answers
constant TwiML: what the guard and the web stack cost on their own.

--arrival-guard-only: the same, guarded as the new call itself is
(voice/guard.ServesArrival: no delivery claim, no answer remembered; the
call's own INSERT is its de-duplication): what a new call pays before its
step does anything.

Nothing here asserts a time: it measures. The worker CPU per request under
load comes from tests/benchmarks/side_by_side.py.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
import uuid
from urllib.parse import urlencode

import structlog
from sqlalchemy import create_engine

from app.sandbox.served import ACCOUNT_SID, AUTH_TOKEN, NUMBER, SIP_HOST, SIP_PASSWORD
from app.sandbox.signing import twilio_signature
from tests.benchmarks.call_flow import fresh_database, migrate_with_roster
from tests.benchmarks.side_by_side_apps import TWIML, create_lean_tables, make_lean

PUBLIC = "http://127.0.0.1:9"  # never reached: the URL signatures are made for
UNREACHABLE = "http://127.0.0.1:9"
GUARDED_PATH = "/benchmark/guarded"


def service_environment(database_url: str) -> dict[str, str]:
    """The service's settings for this process: those of the other benchmarks, no job worker, no reconciler."""
    return {
        "APP_ENV": "test", "LOG_FORMAT": "json", "LOG_LEVEL": "warning", "SECRET_KEY": "benchmark-secret-key",
        "DATABASE_URL": database_url, "PUBLIC_BASE_URL": PUBLIC,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": NUMBER,
        "TWILIO_API_BASE_URL": UNREACHABLE, "LIVEKIT_URL": UNREACHABLE, "LIVEKIT_API_KEY": "APIbenchmark",
        "LIVEKIT_API_SECRET": "benchmark-livekit-secret-0123456789", "LIVEKIT_SIP_HOST": SIP_HOST,
        "LIVEKIT_SIP_USERNAME": "switchboard", "LIVEKIT_SIP_PASSWORD": SIP_PASSWORD,
        "LIVEKIT_ALLOWED_ADDRESSES": "54.172.60.0/30", "LLM_PROVIDER": "groq", "GROQ_API_KEY": "gsk-benchmark",
        "LLM_BASE_URL": UNREACHABLE + "/v1", "RECONCILE_INTERVAL_SECONDS": "0", "JOBS_IN_PROCESS": "false",
    }


def new_call_environ(number: int, path: str) -> dict:
    """A WSGI environ of Twilio's new-call webhook to PATH, signed for PUBLIC + PATH."""
    form = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": ACCOUNT_SID, "From": f"+1555{number:07d}",
            "To": NUMBER, "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
    body = urlencode(form).encode()
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "9", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
        "HTTP_X_TWILIO_SIGNATURE": twilio_signature(AUTH_TOKEN, PUBLIC + path, form),
        "HTTP_I_TWILIO_IDEMPOTENCY_TOKEN": uuid.uuid4().hex,
    }


def served_once(app, environ: dict, expect: bytes) -> float:
    """The thread CPU seconds of one request; it must be answered 200 with EXPECT in its TwiML."""
    answer: dict = {}

    def start_response(status, _headers, _exc_info=None):
        answer["status"] = status

    started = time.thread_time()
    body = app(environ, start_response)
    data = b"".join(body)
    if hasattr(body, "close"):
        body.close()
    spent = time.thread_time() - started
    if not answer["status"].startswith("200") or expect not in data:
        raise RuntimeError(f"unexpected answer {answer['status']}: {data[:300]!r}")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--guard-only", action="store_true")
    only.add_argument("--arrival-guard-only", action="store_true")
    args = parser.parse_args()

    url, drop = fresh_database("postgres")
    try:
        migrate_with_roster(url)
        engine = create_engine(url)
        create_lean_tables(engine)
        engine.dispose()
        os.environ.update(service_environment(url))
        from app import create_app

        service = create_app()
        # The lean app logs one JSON line per request to a stream of its own; the service's log set-up stays.
        quiet = open(os.devnull, "w")  # noqa: SIM115 - closed at the end
        lean_log = structlog.wrap_logger(structlog.PrintLogger(quiet), processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.JSONRenderer()])
        lean = make_lean(url, AUTH_TOKEN, PUBLIC, log=lean_log)
        path, expect = "/twilio/voice", b"<Gather"
        if args.guard_only or args.arrival_guard_only:
            path, expect = GUARDED_PATH, b"<Gather"
            _add_guarded_constant_view(service, arrival=args.arrival_guard_only)
        sys.stderr = quiet  # the service's one line per request (request_served) is not the terminal's cost
        try:
            for number in range(100):
                served_once(service, new_call_environ(number, path), expect)
                served_once(lean, new_call_environ(number, "/twilio/voice"), b"<Gather")
            medians = []
            for round_number in range(args.rounds):
                own, leans = [], []
                for number in range(args.calls):
                    own.append(served_once(service, new_call_environ(number, path), expect))
                    leans.append(served_once(lean, new_call_environ(number, "/twilio/voice"), b"<Gather"))
                medians.append((statistics.median(own) * 1000, statistics.median(leans) * 1000))
            profile = cProfile.Profile()
            profile.enable()
            for number in range(200):
                served_once(service, new_call_environ(number, path), expect)
            profile.disable()
        finally:
            sys.stderr = sys.__stderr__
        calls = pstats.Stats(profile).total_calls / 200
        what = ("the guard around constant TwiML" if args.guard_only
                else "the new call's guard around constant TwiML" if args.arrival_guard_only
                else "a new call (`/twilio/voice`)")
        print(f"## One process, {what}: thread CPU per request, {args.calls} requests per app and round\n")
        print("| round | service p50 ms | lean p50 ms | service / lean |")
        print("| --- | --- | --- | --- |")
        for number, (own, leaner) in enumerate(medians, 1):
            print(f"| {number} | {own:.3f} | {leaner:.3f} | {own / leaner:.2f} |")
        print(f"\nPython function calls per service request: {calls:.0f}")
        lean.extensions["engine"].dispose()
        service.extensions["db_engine"].dispose()
        quiet.close()
    finally:
        drop()


def _add_guarded_constant_view(service, *, arrival: bool = False) -> None:
    """A view answering constant TwiML at GUARDED_PATH, behind the guard every webhook has (ARRIVAL: the new
    call's, which claims no delivery)."""
    from flask import Response

    from app.voice.guard import ServesArrival, twilio_webhook

    def guarded_constant(_form):
        return Response(TWIML, mimetype="text/xml")

    view = twilio_webhook(serves=ServesArrival() if arrival else None)(guarded_constant)
    service.extensions["csrf"].exempt(view)
    service.add_url_rule(GUARDED_PATH, "benchmark_guarded_constant", view, methods=["POST"])


if __name__ == "__main__":
    main()
