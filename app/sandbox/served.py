"""The service under gunicorn on loopback, wired to the stand-ins, as it runs in production.

Used by the multi-worker tests and the benchmarks: every webhook is real HTTP
to a gunicorn worker, and the service reaches Twilio's REST API, LiveKit and
the LLM through its base-URL settings.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from app.sandbox.twilio_network import TwilioNetwork, http_transport
from app.sandbox.twilio_server import TwilioStandIn
from app.sandbox.wiring import (
    TWILIO_SIGNALLING_RANGE,
    http_post,
    unwire_livekit,
    wire_livekit,
)

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "0" * 31 + "7"
AUTH_TOKEN = "served-twilio-auth-token-0123456789"
NUMBER = "+15550100000"
SIP_HOST = "switchboard-test.sip.livekit.cloud"
SIP_PASSWORD = "served-sip-password-123"


@dataclass
class Served:
    """A running service and the simulated Twilio in front of it."""

    base_url: str
    network: TwilioNetwork
    process: subprocess.Popen
    output: str = ""
    livekit_webhook_failures: list = None
    env: dict = None  # the service's environment, for another process of the same service (the live pages')
    job_processes: list = None  # its `flask jobs work` processes, if any


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn_service(database_url: str, *, livekit, llm, livekit_key: str, livekit_secret: str,
                     workers: int = 3, threads: int = 4, extra_env: dict[str, str] | None = None,
                     network: TwilioNetwork | None = None, port: int | None = None,
                     public_url: str | None = None, job_workers: int = 0) -> Iterator[Served]:
    """Run gunicorn on PORT (default: a free one) against DATABASE_URL (migrated, with a roster) and the stand-ins.

    NETWORK is Twilio's side (default: one TwilioNetwork over HTTP); the load
    check passes several behind one REST API (tests/benchmarks/load.py).
    PUBLIC_URL is where Twilio and LiveKit reach the service (default: the
    gunicorn itself): a proxy in front of several instances. With
    JOB_WORKERS, the web workers leave jobs and timers to that many
    `flask jobs work` processes beside them (JOBS_IN_PROCESS=false;
    docs/jobs.md), stopped with it.
    gunicorn runs in a process group of its own: a Ctrl-C at the terminal
    reaches only the caller, which hangs up its calls before it stops gunicorn.
    """
    port = port or free_port()
    base = public_url or f"http://127.0.0.1:{port}"
    network = network or TwilioNetwork(ACCOUNT_SID, AUTH_TOKEN, http_transport(timeout=20))
    network.pauses_in_real_time = True  # the service runs on the real clock
    network.add_number(NUMBER, voice_url=base + "/twilio/voice", status_callback=base + "/twilio/status")
    with TwilioStandIn(network) as twilio:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "APP_ENV": "test", "LOG_FORMAT": "json", "LOG_LEVEL": "warning", "SECRET_KEY": "served-secret-key",
            "DATABASE_URL": database_url, "PORT": str(port), "PUBLIC_BASE_URL": base,
            "WEB_CONCURRENCY": str(workers), "WEB_THREADS": str(threads),
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": NUMBER, "TWILIO_API_BASE_URL": twilio.url,
            "LIVEKIT_URL": livekit.url, "LIVEKIT_API_KEY": livekit_key, "LIVEKIT_API_SECRET": livekit_secret,
            "LIVEKIT_SIP_HOST": SIP_HOST, "LIVEKIT_SIP_USERNAME": "switchboard",
            "LIVEKIT_SIP_PASSWORD": SIP_PASSWORD, "LIVEKIT_ALLOWED_ADDRESSES": TWILIO_SIGNALLING_RANGE,
            "LLM_PROVIDER": "groq", "GROQ_API_KEY": "gsk-served-key-0123456789", "LLM_BASE_URL": llm.base_url,
            **({"JOBS_IN_PROCESS": "false"} if job_workers else {}),
            **(extra_env or {}),
        }
        # The LiveKit stand-in takes the service's <Dial><Sip> legs and sends
        # its webhooks to the service, as a LiveKit project would.
        provision = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "provision", "--only", "livekit"],
                                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        if provision.returncode != 0:
            raise RuntimeError(f"flask provision failed: {provision.stdout}{provision.stderr}")
        failures: list = []
        wire_livekit(network, livekit, sip_host=SIP_HOST, public_base_url=base, post=http_post, failures=failures)
        # A file, not a pipe: nobody reads a pipe while the service runs, and a
        # full pipe would block every worker thread that logs.
        with tempfile.TemporaryFile(mode="w+") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "wsgi:app"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )
            workers_of_jobs = [subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "work"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            ) for _ in range(job_workers)]
            served = Served(base, network, process, livekit_webhook_failures=failures, env=env,
                            job_processes=workers_of_jobs)
            try:
                _wait_until_up(f"http://127.0.0.1:{port}", process)
                yield served
            finally:
                unwire_livekit(livekit)
                for running in (process, *workers_of_jobs):
                    running.terminate()
                for running in (process, *workers_of_jobs):
                    running.wait(timeout=30)
                log.seek(0)
                served.output = log.read()


def _wait_until_up(base: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            urllib.request.urlopen(base + "/health", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not answer /health in time")
