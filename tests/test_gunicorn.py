"""The service runs under gunicorn with several workers, as in production."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def gunicorn(clean_database):
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "APP_ENV": "test",
        "DATABASE_URL": clean_database,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "2",
        "SECRET_KEY": "gunicorn-test-secret",
        "LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if _get(base + "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("gunicorn did not start: " + process.communicate()[0][-2000:])
    yield base, process
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=15)
    if process.stdout:
        process.stdout.close()


def test_gunicorn_serves_health_and_ready_with_json_logs(gunicorn):
    base, process = gunicorn
    for _ in range(6):
        assert _get(base + "/health") == (200, {"status": "ok"})
    status, body = _get(base + "/ready")
    assert status == 200 and body["database"] == "ok"
    with urllib.request.urlopen(base + "/static/audio/hold.wav", timeout=5) as clip:  # a file, sent as one
        assert clip.status == 200 and len(clip.read()) > 100_000
    process.terminate()
    output = process.communicate(timeout=15)[0]
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("logger") == "gunicorn.error" for line in lines)
    # One line per request, the service's own, with what it cost; gunicorn's access line would repeat it.
    served = [line for line in lines if line["event"] == "request_served"]
    # /health as the fixture waited for start-up, then six times; /ready; the hold clip. Each line is written
    # when its response is closed, so two requests one after the other may log in either order.
    assert {line["path"] for line in served} == {"/health", "/ready", "/static/audio/hold.wav"}
    health = [line for line in served if line["path"] == "/health"]
    (ready,) = [line for line in served if line["path"] == "/ready"]
    (clip,) = [line for line in served if line["path"] == "/static/audio/hold.wav"]
    assert len(health) >= 6
    assert all(line["status"] == 200 and line["request_id"] and line["cpu_ms"] >= 0 for line in served)
    assert {line["db_statements"] for line in health + [clip]} == {0} and ready["db_statements"] >= 1
    assert not any(line.get("logger") == "gunicorn.access" for line in lines)
    # Each worker, once started, froze its startup objects out of the full collections (app/process.py).
    frozen = [line for line in lines if line["event"] == "startup_objects_frozen"]
    assert frozen and all(line["objects"] > 10_000 for line in frozen)
    # Every line is structured: nothing printed raw by gunicorn or the app.
    assert all(line.startswith("{") for line in output.splitlines() if line.strip())


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "wsgi:app"],
    [sys.executable, "-m", "flask", "--app", "wsgi", "db", "current"],
])
def test_a_bad_setting_stops_start_up_with_its_name_not_a_traceback(command):
    env = {"PATH": os.environ.get("PATH", ""), "APP_ENV": "test", "PORT": "eighty", "LLM_PROVIDER": "groq"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "PORT: expected a whole number" in output and "GROQ_API_KEY: required when LLM_PROVIDER=groq" in output
    assert "Traceback" not in output
