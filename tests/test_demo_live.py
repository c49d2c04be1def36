"""`flask demo --live`: the service under gunicorn on the database it is given, callers played through the
stand-ins; the board shows them while they play, and nothing is left running afterwards."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from dataclasses import replace

import pytest
import requests
from sqlalchemy import select

from app.database import make_engine
from app.demo.cli import demo_command
from app.demo.live import run_live
from app.models import Call, Transfer, User
from app.sandbox.served import free_port
from tests.conftest import TEST_DATABASE

SUPERVISOR, PASSWORD = "sam", "sam-password-0123"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def _rows(database_url, *columns):
    engine = make_engine(database_url, pooled=False)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(*columns)))
    finally:
        engine.dispose()


class Board:
    """A supervisor watching the board's snapshot while the demo plays (looked at every so often)."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.http = requests.Session()
        self.signed_in = False
        self.call_sids: set[str] = set()
        self.transfer_states: set[str] = set()
        self.looked_at = 0.0

    def look(self) -> None:
        if time.monotonic() - self.looked_at < 0.2:
            return
        self.looked_at = time.monotonic()
        if not self.signed_in:
            token = CSRF_INPUT.search(self.http.get(self.base + "/login", timeout=5).text).group(1)
            answer = self.http.post(self.base + "/login", timeout=5,
                                    data={"username": SUPERVISOR, "password": PASSWORD, "csrf_token": token})
            assert answer.url.endswith("/board"), answer.text[:500]
            self.signed_in = True
        snapshot = self.http.get(self.base + "/board/snapshot", timeout=5).json()
        self.call_sids.update(call["call_sid"] for call in snapshot["calls"])
        self.transfer_states.update(transfer["state"] for transfer in snapshot["transfers"])

    def close(self) -> None:
        self.http.close()


@pytest.mark.load
def test_live_demo_plays_callers_into_the_database_shows_them_on_the_board_and_stops_everything(
        settings, clean_database, tmp_path):
    # A fresh SQLite file (the demo migrates it and loads the roster); on PostgreSQL the run's emptied database.
    database_url = clean_database if TEST_DATABASE == "postgres" else f"sqlite:///{tmp_path / 'live.db'}"
    port = free_port()
    board = Board(port)
    threads_before = set(threading.enumerate())
    lines: list[str] = []
    try:
        result = run_live(replace(settings, database_url=database_url, supervisor_username=SUPERVISOR,
                                  supervisor_password=PASSWORD),
                          lines.append, callers=2, pace=0, port=port, after_step=board.look)
    finally:
        board.close()
    out = "\n".join(lines)

    assert result.problems == [], out
    assert result.callers == 2 and result.talked == 2 and result.transferred == 1, out
    assert "The demo's calls land in the service's own database" in out
    assert f"Sign in as {SUPERVISOR}, with the password in SUPERVISOR_PASSWORD" in out
    assert f"Open the board: http://localhost:{port}/board" in out
    assert "a warm transfer to" in out and "completes the transfer" in out

    # The calls and the transfer landed in the database the demo was given, all ended.
    calls = _rows(database_url, Call.call_sid, Call.status)
    assert len(calls) == 2 and {status for _, status in calls} == {"completed"}, calls
    assert [state for (state,) in _rows(database_url, Transfer.state)] == ["completed"]
    assert [role for (role,) in _rows(database_url, User.role)] == ["supervisor"]
    # While it played, the board showed both calls and the transfer under way.
    assert board.call_sids == {sid for sid, _ in calls}
    assert board.transfer_states & {"dialing", "whispering", "consulting"}, board.transfer_states

    # Nothing is left running: gunicorn has exited (and its port is closed), and no thread was left behind.
    with pytest.raises(ProcessLookupError):
        os.kill(result.service_pid, 0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    assert [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()] == []


def test_live_demo_refuses_a_port_in_use_before_it_starts_anything(make_app, settings):
    app = make_app(settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = app.test_cli_runner().invoke(demo_command, ["--live", "--port", str(port), "--callers", "1"])
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is in use (is the service running?): choose another with --port" \
        in result.output
    assert _rows(settings.database_url, Call.id) == []


def test_live_demo_does_not_run_in_production(make_app, settings):
    app = make_app(settings)
    app.config["SETTINGS"] = replace(settings, app_env="production")
    result = app.test_cli_runner().invoke(demo_command, ["--live", "--callers", "1"])
    assert result.exit_code == 1
    assert "it does not run with APP_ENV=production" in result.output
