"""`flask live` as an operator runs it: its own process, pages let in side by side, SIGTERM ends it cleanly."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.auth.service import create_user
from app.db import session_scope
from app.sandbox.served import free_port
from tests.test_supervisor_pages import PASSWORD, csrf_token_from

ROOT = Path(__file__).resolve().parents[1]
SECRET = "live-command-test-secret"


def test_flask_live_lets_pages_in_side_by_side_and_stops_on_sigterm(make_app, settings):
    app = make_app(settings, secret_key=SECRET)
    with session_scope(app) as session:
        create_user(session, "sam", PASSWORD, "supervisor")
    client = app.test_client()
    client.post("/login", data={"username": "sam", "password": PASSWORD,
                                "csrf_token": csrf_token_from(client.get("/login"))})
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "APP_ENV": "test", "LOG_FORMAT": "json", "SECRET_KEY": SECRET,
           "DATABASE_URL": settings.database_url, "LIVE_STREAM_BASE": "/live"}
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "--port", str(port)],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        connections = []
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    status = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    status.request("GET", "/status")
                    assert json.loads(status.getresponse().read())["pages"] == 0
                    status.close()
                    break
                except ConnectionRefusedError:
                    assert process.poll() is None and time.monotonic() < deadline, "flask live did not start"
                    time.sleep(0.1)
            # Eight pages asked for at once: each is let in by a request context of its own.
            for path in ["/live/board/stream", "/live/wallboard/stream"] * 4:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", path, headers={"Cookie": f"{cookie.key}={cookie.value}"})
                connections.append(connection)
            responses = [connection.getresponse() for connection in connections]
            assert [response.status for response in responses] == [200] * 8
            assert all(b"event: snapshot" in response.readline() + response.readline() + response.readline()
                       for response in responses)
        finally:
            for connection in connections:
                connection.close()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
            log.seek(0)
            output = log.read()
        # uvicorn stops cleanly, then lets SIGTERM end the process as it would have (exit status -15).
        assert code in (0, -signal.SIGTERM), output[-2000:]
        assert '"event": "live_stopped"' in output and "Application shutdown complete" in output
        assert '"event": "startup_objects_frozen"' in output  # before serving (app/process.py)
        assert "Exception" not in output and '"level": "error"' not in output
