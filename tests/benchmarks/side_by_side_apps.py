"""The two yardsticks tests/benchmarks/side_by_side.py runs beside the service, each under gunicorn.

    gunicorn tests.benchmarks.side_by_side_apps:bare
    gunicorn tests.benchmarks.side_by_side_apps:lean   (LEAN_DATABASE_URL, LEAN_AUTH_TOKEN, LEAN_PUBLIC_URL)

`bare`: Flask answering constant TwiML, nothing else: what the web stack
costs on its own.

`lean`: the least a correct new-call webhook can do. It checks Twilio's
signature with twilio-python's RequestValidator for the public URL, writes
one structlog line, and in one transaction claims the delivery
(`INSERT ... ON CONFLICT DO NOTHING RETURNING`, keyed by the
I-Twilio-Idempotency-Token) and stores the call and its caller's leg, then
answers TwiML. A repeated delivery changes nothing and gets the same answer.
Its tables live in a schema of their own, `lean` (`create_lean_tables`).
"""

from __future__ import annotations

import os
import sys

import structlog
from flask import Flask, Response, request
from sqlalchemy import text
from sqlalchemy.engine import Engine
from twilio.request_validator import RequestValidator

TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Gather input="dtmf speech" numDigits="1" '
         'action="/twilio/ivr"><Say>Thank you for calling. Please tell us why you are calling, or press 1 for '
         'billing, press 2 for technical.</Say></Gather></Response>')

LEAN_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS lean;
CREATE TABLE IF NOT EXISTS lean.deliveries (
    delivery_key varchar(128) PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS lean.calls (
    id bigserial PRIMARY KEY,
    call_sid varchar(64) NOT NULL,
    from_number varchar(32) NOT NULL,
    to_number varchar(32) NOT NULL,
    status varchar(16) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS lean_calls_call_sid ON lean.calls (call_sid);
CREATE TABLE IF NOT EXISTS lean.legs (
    id bigserial PRIMARY KEY,
    call_id bigint NOT NULL REFERENCES lean.calls (id),
    call_sid varchar(64) NOT NULL,
    role varchar(16) NOT NULL,
    status varchar(16) NOT NULL
);
"""

CLAIM = text("INSERT INTO lean.deliveries (delivery_key) VALUES (:key) ON CONFLICT DO NOTHING RETURNING 1")
NEW_CALL = text("INSERT INTO lean.calls (call_sid, from_number, to_number, status) "
                "VALUES (:sid, :from_number, :to_number, 'ivr') RETURNING id")
NEW_LEG = text("INSERT INTO lean.legs (call_id, call_sid, role, status) VALUES (:call_id, :sid, 'caller', 'ivr')")


def create_lean_tables(engine: Engine) -> None:
    """The lean webhook's tables, in the schema `lean` of ENGINE's database."""
    with engine.begin() as connection:
        connection.exec_driver_sql(LEAN_SCHEMA)


def make_bare() -> Flask:
    bare_app = Flask("bare")

    @bare_app.post("/twilio/voice")
    def voice():
        return Response(TWIML, mimetype="text/xml")

    return bare_app


def make_lean(database_url: str, auth_token: str, public_url: str, log=None) -> Flask:
    """The lean app; LOG, when given, is its logger (in a process that runs the service too, whose structlog set-up
    must stay as it is), else structlog is set up for the process: a JSON line on stderr."""
    from sqlalchemy import create_engine

    if log is None:
        structlog.configure(processors=[structlog.processors.TimeStamper(fmt="iso", utc=True),
                                        structlog.processors.JSONRenderer()],
                            logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        log = structlog.get_logger()
    engine = create_engine(database_url, pool_size=5, max_overflow=5, pool_pre_ping=True)
    validator = RequestValidator(auth_token)
    lean_app = Flask("lean")
    lean_app.extensions["engine"] = engine  # for a caller that ends it (tests/benchmarks/new_call_cpu.py)

    @lean_app.post("/twilio/voice")
    def voice():
        form = request.form
        if not validator.validate(public_url + request.path, form, request.headers.get("X-Twilio-Signature", "")):
            return Response("invalid signature\n", status=403, mimetype="text/plain")
        sid = form.get("CallSid", "")
        key = request.headers.get("I-Twilio-Idempotency-Token", "").strip()[:128] or f"voice:{sid}"
        log.info("call_received", call_sid=sid, from_number=form.get("From"), path=request.path)
        with engine.begin() as connection:
            if connection.execute(CLAIM, {"key": key}).first() is not None:
                call_id = connection.execute(NEW_CALL, {"sid": sid, "from_number": form.get("From", ""),
                                                        "to_number": form.get("To", "")}).scalar_one()
                connection.execute(NEW_LEG, {"call_id": call_id, "sid": sid})
        return Response(TWIML, mimetype="text/xml")

    return lean_app


bare = make_bare()


def __getattr__(name: str):
    # `lean` is built when gunicorn asks for it, from its environment; importing this module for `bare` needs none.
    if name == "lean":
        return make_lean(os.environ["LEAN_DATABASE_URL"], os.environ["LEAN_AUTH_TOKEN"], os.environ["LEAN_PUBLIC_URL"])
    raise AttributeError(name)
