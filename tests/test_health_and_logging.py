"""Health probes, request ids, and log lines an operator can search."""

import json

import pytest

from app.logs import get_logger
from tests.conftest import TWILIO_AUTH_TOKEN


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_reports_integrations_without_secrets(client):
    response = client.get("/ready")
    body = response.get_json()
    assert response.status_code == 200
    assert body["database"] == "ok"
    assert body["integrations"] == {"twilio": True, "livekit": False, "livekit_sip": False, "llm": "none"}
    assert TWILIO_AUTH_TOKEN not in response.get_data(as_text=True)


def test_ready_is_503_when_the_database_is_unreachable(make_app, settings, tmp_path):
    app = make_app(settings, database_url=f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_production_logs_are_json_with_request_id_and_no_secrets(app, capsys):
    @app.get("/_log_probe")
    def probe():
        get_logger("probe").info("probe_logged", auth_token=TWILIO_AUTH_TOKEN, note=f"token is {TWILIO_AUTH_TOKEN}")
        return "ok"

    client = app.test_client()
    response = client.get("/_log_probe", headers={"X-Request-Id": "req-456"})
    assert response.headers["X-Request-Id"] == "req-456"
    captured = capsys.readouterr().err
    assert TWILIO_AUTH_TOKEN not in captured
    lines = _json_lines(captured)
    probe_line = next(line for line in lines if line["event"] == "probe_logged")
    assert probe_line["request_id"] == "req-456"
    assert probe_line["level"] == "info" and "timestamp" in probe_line
    assert probe_line["auth_token"] == "[redacted]" and probe_line["note"] == "token is [redacted]"


def test_stdlib_logs_share_the_shape(app, capsys):
    import logging

    logging.getLogger("werkzeug").warning("plain stdlib message with %s", TWILIO_AUTH_TOKEN)
    lines = _json_lines(capsys.readouterr().err)
    line = next(line for line in lines if line["logger"] == "werkzeug")
    assert line["event"] == "plain stdlib message with [redacted]"
    assert line["level"] == "warning"


def test_a_new_request_id_is_made_when_none_is_sent(client):
    first = client.get("/health").headers["X-Request-Id"]
    second = client.get("/health").headers["X-Request-Id"]
    assert first != second and len(first) == 32


def test_ready_and_the_cli_say_in_words_that_the_database_is_not_migrated(make_app, settings, tmp_path):
    app = make_app(settings, database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    response = app.test_client().get("/ready")
    body = response.get_json()
    assert response.status_code == 503 and body["database"] == "not migrated"
    assert "no schema yet: run `flask --app wsgi db upgrade`" in body["problem"]
    result = app.test_cli_runner().invoke(args=["agents", "list"])
    assert result.exit_code == 1 and "no schema yet" in result.output and "Traceback" not in result.output


def test_the_cli_says_in_words_that_the_database_is_unreachable(make_app, settings, tmp_path):
    app = make_app(settings, database_url=f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    result = app.test_cli_runner().invoke(args=["roster", "load"])
    assert result.exit_code == 1 and "is not reachable" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_migrating_an_unreachable_database_is_a_sentence(make_app, settings):
    app = make_app(settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 1 and "is not reachable" in result.output and "Traceback" not in result.output


def test_every_response_carries_the_security_headers(client):
    for path in ("/login", "/health", "/api/openapi.json"):
        headers = client.get(path).headers
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in client.get("/login").headers  # plain HTTP: no HSTS
    secure = client.get("/login", base_url="https://switchboard.example.com").headers
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


def test_the_console_may_reach_livekit_and_nothing_else(make_app, settings):
    from dataclasses import replace

    app = make_app(replace(settings, livekit_url="wss://example.livekit.cloud", livekit_api_key="k",
                           livekit_api_secret="s" * 32))
    policy = app.test_client().get("/login").headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://example.livekit.cloud https://example.livekit.cloud" in policy


@pytest.mark.parametrize("status, event", [(503, "leg_dial_unconfirmed"), (400, "agent_dial_failed")])
def test_provider_faults_are_logged_as_warnings(centre, caplog, status, event):
    centre.network.fail_next("Calls.json", status=status, code=20000 + status, message="Twilio says no")
    caller = centre.dial()
    caller.press("1")
    levels = {}
    for record in caplog.records:
        if isinstance(record.msg, dict) and "event" in record.msg:
            levels.setdefault(record.msg["event"], set()).add(record.levelname)
    assert levels[event] == {"WARNING"} and levels["agent_ringing"] == {"INFO"}


def test_a_login_limit_kept_per_worker_is_named_at_start_up(make_app, settings, capfd):
    from dataclasses import replace

    def warnings() -> list[dict]:
        out, err = capfd.readouterr()
        lines = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("event") == "login_limit_per_worker"]

    make_app(replace(settings, web_concurrency=3, ratelimit_storage_uri="memory://"))
    warned = warnings()
    assert warned and warned[0]["workers"] == 3 and warned[0]["level"] == "warning" and "redis://" in warned[0]["advice"]
    make_app(replace(settings, web_concurrency=3, ratelimit_storage_uri="redis://localhost:6379/0"))
    assert warnings() == []


def test_ready_says_the_database_is_unreachable_without_saying_where(make_app, settings, caplog):
    """/ready answers anyone: where the database is, who connects to it and the driver's words stay in the log."""
    app = make_app(settings, database_url="postgresql+psycopg://switchboard_user@127.0.0.1:1/secretname")
    response = app.test_client().get("/ready")
    body = response.get_data(as_text=True)
    assert response.status_code == 503 and response.get_json()["database"] == "unreachable"
    assert "switchboard_user" not in body and "secretname" not in body and "127.0.0.1" not in body
    assert "not reachable" in response.get_json()["problem"]


def test_a_failed_statement_never_shows_its_values():
    """A statement's error (logged with its traceback where a step fails) does not carry the bound values:
    callers' numbers, names, a CallToken."""
    from sqlalchemy import text

    from app.database import make_engine

    engine = make_engine("sqlite://")
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE t (number TEXT UNIQUE)"))
            connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": "+15551230001"})
            with pytest.raises(Exception) as failed:
                connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": "+15551230001"})
        assert "+15551230001" not in str(failed.value) and "hidden" in str(failed.value)
    finally:
        engine.dispose()


def test_a_recording_is_named_in_logs_by_its_sid_never_its_url():
    from app.calls.inputs import Recording

    url = "https://api.twilio.com/2010-04-01/Accounts/AC123/Recordings/RE0123456789abcdef0123456789abcdef"
    assert Recording(url, 12).sid == "RE0123456789abcdef0123456789abcdef"
    assert Recording(url + ".mp3", 12).sid == "RE0123456789abcdef0123456789abcdef"
    assert Recording("", None).sid is None and Recording("https://example.com/other", 1).sid is None


def test_the_masker_hides_every_secret_however_the_line_holds_it():
    from app.logs import MASK, SecretMasker

    masker = SecretMasker(["s3cret-long-value", "s3cret", ""])
    line = masker(None, "info", {
        "event": "probe s3cret", "note": "a s3cret-long-value and a s3cret", "count": 3, "nothing": None,
        "api_key": "harmless text", "nested": {"password": "x", "text": "s3cret"}, "listed": ["s3cret", 1],
        "pair": ("s3cret-long-value",),
    })
    assert line == {
        "event": f"probe {MASK}", "note": f"a {MASK} and a {MASK}", "count": 3, "nothing": None,
        "api_key": MASK, "nested": {"password": MASK, "text": MASK}, "listed": [MASK, 1], "pair": (MASK,),
    }
    assert SecretMasker([])(None, "info", {"event": "plain", "token_count": 2}) == {"event": "plain",
                                                                                   "token_count": MASK}
