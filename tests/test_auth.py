"""Sign-in, sign-out, guards, CSRF, the login rate limit, API tokens and the user/token commands, over real HTTP."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from flask import Blueprint, jsonify, render_template_string
from sqlalchemy import delete, func, select, update
from werkzeug.security import generate_password_hash

from app import clock
from app.auth import service
from app.auth.guards import api_token_required, current_agent_id, roles_required
from app.auth.limit_store import client_key, client_network
from app.auth.service import Scope
from app.auth.setup import csrf_exempt, init_auth
from app.auth.views import blueprint as auth_blueprint
from app.auth.views import safe_next
from app.commands.users import api_tokens_cli, users_cli
from app.db import session_scope
from app.models import Agent, ApiToken, LoginSession, User, utcnow

SUPERVISOR_PASSWORD = "sup-password-0001"
AGENT_PASSWORD = "agent-password-0001"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')

probe = Blueprint("auth_probe", __name__, url_prefix="/probe")
probe_api = Blueprint("auth_probe_api", __name__, url_prefix="/probe/api")
probe_hooks = Blueprint("auth_probe_hooks", __name__, url_prefix="/probe/hooks")
probe_hook = Blueprint("voice", __name__, url_prefix="/voice")
csrf_exempt(probe_api)


@probe_hook.post("/incoming")
def incoming():
    return "<Response/>", 200, {"Content-Type": "text/xml"}


probe_hooks.register_blueprint(probe_hook)
csrf_exempt(probe_hooks)


@probe.get("/board")
@roles_required("supervisor")
def board():
    return render_template_string('{% extends "base.html" %}{% block main %}<p>the board</p>{% endblock %}')


@probe.get("/console")
@roles_required("agent")
def console():
    return jsonify(agent_id=current_agent_id())


@probe_api.get("/ping")
@api_token_required(Scope.READ)
def ping():
    return jsonify(ok=True)


@probe_api.post("/ping")
@api_token_required(Scope.ACT)
def ping_to_act():
    return jsonify(ok=True)


@pytest.fixture
def app(make_app, settings):
    """A fresh app with sign-in wired in (unless the factory already does it) and probe routes."""
    app = make_app(settings)
    if not hasattr(app, "login_manager"):
        init_auth(app)
    if "auth" not in app.blueprints:
        app.register_blueprint(auth_blueprint)
    app.register_blueprint(probe)
    app.register_blueprint(probe_api)
    app.register_blueprint(probe_hooks)
    return app


@pytest.fixture(scope="module")
def password_hashes():
    # Hashing is slow on purpose; hash once for the module, not once per test.
    return {"sam": generate_password_hash(SUPERVISOR_PASSWORD), "ada": generate_password_hash(AGENT_PASSWORD)}


@pytest.fixture
def people(app, password_hashes):
    """A supervisor 'sam' and an agent user 'ada' tied to agent 101; returns ada's agent id."""
    with session_scope(app) as session:
        agent = Agent(name="Ada", extension="101")
        session.add(agent)
        session.flush()
        session.add(User(username="sam", password_hash=password_hashes["sam"], role="supervisor"))
        session.add(User(username="ada", password_hash=password_hashes["ada"], role="agent", agent_id=agent.id))
        return agent.id


def csrf_token_from(response) -> str:
    match = CSRF_INPUT.search(response.get_data(as_text=True))
    assert match, "no csrf_token input on the page"
    return match.group(1)


def log_in(client, username, password, next_url=None):
    query = {"next": next_url} if next_url else {}
    token = csrf_token_from(client.get("/login", query_string=query))
    return client.post(
        "/login", query_string=query, data={"username": username, "password": password, "csrf_token": token}
    )


def test_supervisor_logs_in_uses_the_session_and_logs_out(client, people):
    response = log_in(client, "sam", SUPERVISOR_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/board"

    page = client.get("/probe/board")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "the board" in text and "sam" in text and "Sign out" in text

    response = client.post("/logout", data={"csrf_token": csrf_token_from(page)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "You are signed out." in client.get("/login").get_data(as_text=True)
    assert client.get("/probe/board").status_code == 302


def test_agent_lands_on_the_console_and_is_known_by_agent_id(client, people):
    response = log_in(client, "ada", AGENT_PASSWORD)
    assert response.headers["Location"] == "/console"
    assert client.get("/probe/console").get_json() == {"agent_id": people}


@pytest.mark.parametrize("username, password", [("sam", "not-the-password"), ("nobody", SUPERVISOR_PASSWORD)])
def test_wrong_credentials_are_refused_with_a_message(client, people, username, password):
    response = log_in(client, username, password)
    assert response.status_code == 200
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert client.get("/probe/board").status_code == 302


def test_a_post_without_csrf_token_is_refused(client, people):
    client.get("/login")
    response = client.post("/login", data={"username": "sam", "password": SUPERVISOR_PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/probe/board").status_code == 302


def _from(app, address):
    """A browser of APP at ADDRESS (the address the sign-in limit counts by)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _fail(client, username, times):
    token = csrf_token_from(client.get("/login"))
    form = {"username": username, "password": "not-the-password", "csrf_token": token}
    return [client.post("/login", data=form).status_code for _ in range(times)]


def test_successful_sign_ins_never_count(app, people):
    # A shared office at shift start: one address, one sign-in after another.
    office = [_from(app, "198.51.100.7") for _ in range(12)]
    assert [log_in(client, "ada", AGENT_PASSWORD).status_code for client in office] == [302] * 12


def test_five_wrong_passwords_lock_the_user_out_from_that_address_only(app, people):
    attacker = _from(app, "203.0.113.9")
    assert _fail(attacker, "sam", 5) == [200] * 5
    refused = log_in(attacker, "sam", SUPERVISOR_PASSWORD)
    assert refused.status_code == 429
    assert "Too many wrong passwords for this user from your address" in refused.get_data(as_text=True)
    assert 0 < int(refused.headers["Retry-After"]) <= 300
    # The real user, at their own desk, and a colleague at the attacker's address, are not affected.
    assert log_in(_from(app, "198.51.100.7"), "sam", SUPERVISOR_PASSWORD).headers["Location"] == "/board"
    assert log_in(_from(app, "203.0.113.9"), "ada", AGENT_PASSWORD).headers["Location"] == "/console"
    # Another spelling of the same username shares its counter.
    assert _fail(attacker, "SAM", 1) == [429]


def test_wrong_passwords_from_one_ipv6_64_count_together(app, people):
    # An attacker moving through the addresses of their own /64 is one address to the limit.
    addresses = [f"2001:db8:5:9::{n:x}" for n in range(1, 7)]
    assert [_fail(_from(app, address), "sam", 1)[0] for address in addresses] == [200] * 5 + [429]
    assert log_in(_from(app, "2001:db8:5:a::1"), "sam", SUPERVISOR_PASSWORD).status_code == 302  # another /64


def test_wrong_passwords_count_by_address_whatever_port_a_proxy_wrote(app, people):
    # Some proxies write the client's port into X-Forwarded-For: each new connection must not be a new address.
    addresses = [f"203.0.113.9:{40000 + n}" for n in range(3)] + [f"[2001:db8:5:9::{n}]:443" for n in (1, 2, 3)]
    assert [_fail(_from(app, address), "sam", 1)[0] for address in addresses[:3]] == [200] * 3
    assert _fail(_from(app, "203.0.113.9"), "sam", 3) == [200, 200, 429]
    assert [_fail(_from(app, address), "sam", 2)[-1] for address in addresses[3:]] == [200, 200, 429]


def test_failures_from_many_64s_of_one_ipv6_56_are_held_by_the_network():
    from app.auth.sign_in_limit import Refusal, SignInLimit

    limit = SignInLimit("memory://", per_address=2, per_user=2, window_seconds=600)
    # Sixteen /64s of one /56, a wrong password each (each /64 within its own limit of two), then another /64.
    for n in range(16):
        assert limit.attempt("sam", f"2001:db8:9:{n:x}::1", lambda: None) is None
    refused = limit.attempt("bob", "2001:db8:9:ff::1", lambda: "bob")
    assert isinstance(refused, Refusal) and refused.scope == "network" and "your network" in refused.words
    assert limit.attempt("bob", "2001:db8:9:100::1", lambda: "bob") == "bob"  # another /56
    assert client_network("2001:db8:9:ff::1") == "2001:db8:9::/56"
    assert client_network("203.0.113.9") is None and client_network("[::ffff:203.0.113.9]:80") is None
    assert client_network("[2001:db8:9:ff::1]:443") == "2001:db8:9::/56" and client_network("junk") is None


def test_client_key_names_the_address_without_its_port():
    assert client_key("203.0.113.9:51234") == client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("[2001:db8::1]:443") == client_key("[2001:db8::2]") == client_key("2001:db8::3") \
        == "2001:db8::/64"
    assert client_key("[::ffff:203.0.113.9]:80") == "203.0.113.9"
    assert client_key("proxy-said-this") == "proxy-said-this"
    assert client_key("[2001:db8::1]junk") == "[2001:db8::1]junk" and client_key("1.2.3.4:x") == "1.2.3.4:x"


def test_a_success_forgets_the_users_failures(app, people):
    desk = _from(app, "198.51.100.7")
    assert _fail(desk, "sam", 4) == [200] * 4
    assert log_in(desk, "sam", SUPERVISOR_PASSWORD).status_code == 302
    assert _fail(_from(app, "198.51.100.7"), "sam", 6) == [200] * 5 + [429]


def test_one_address_trying_many_users_is_refused_for_all(make_app, settings, people):
    app = make_app(settings, login_failures_per_address=3)
    if "auth" not in app.blueprints:
        app.register_blueprint(auth_blueprint)
    sprayer = _from(app, "203.0.113.9")
    assert [_fail(sprayer, name, 1)[0] for name in ("sam", "ada", "bob", "eve")] == [200, 200, 200, 429]
    refused = log_in(sprayer, "ada", AGENT_PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed sign-ins from your address" in refused.get_data(as_text=True)
    assert log_in(_from(app, "198.51.100.7"), "ada", AGENT_PASSWORD).status_code == 302


def test_a_form_that_checks_no_password_is_not_counted(client, people):
    token = csrf_token_from(client.get("/login"))
    # A blank password is refused before any (deliberately slow) hashing: no password was tried.
    for _ in range(8):
        assert client.post("/login", data={"username": "sam", "password": "", "csrf_token": token}).status_code == 200
    assert log_in(client, "sam", SUPERVISOR_PASSWORD).status_code == 302


def test_with_the_store_down_failures_are_counted_in_the_process(make_app, settings, people):
    # Nothing listens on port 1: every look at the store fails, and the limit is kept in memory meanwhile.
    app = make_app(settings, ratelimit_storage_uri="redis://127.0.0.1:1/0")
    if "auth" not in app.blueprints:
        app.register_blueprint(auth_blueprint)
    client = _from(app, "203.0.113.9")
    assert _fail(client, "sam", 6) == [200] * 5 + [429]
    assert log_in(_from(app, "198.51.100.7"), "sam", SUPERVISOR_PASSWORD).status_code == 302


def test_exempt_blueprints_take_posts_without_csrf_token(client):
    assert client.post("/probe/hooks/voice/incoming", data={"CallSid": "CA1"}).status_code == 200


def test_anonymous_is_sent_to_login_and_agent_cannot_open_supervisor_pages(client, people):
    response = client.get("/probe/board?view=queues")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fprobe%2Fboard%3Fview%3Dqueues"

    log_in(client, "ada", AGENT_PASSWORD)
    response = client.get("/probe/board")
    assert response.status_code == 403
    assert "This page is for supervisor accounts" in response.get_data(as_text=True)


def test_a_relative_next_is_followed_after_login(client, people):
    response = log_in(client, "sam", SUPERVISOR_PASSWORD, next_url="/probe/board?view=queues")
    assert response.headers["Location"] == "/probe/board?view=queues"


@pytest.mark.parametrize(
    "target", ["https://evil.example/login", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"]
)
def test_next_to_another_site_is_ignored(client, people, target):
    response = log_in(client, "sam", SUPERVISOR_PASSWORD, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/board"


@pytest.mark.parametrize(
    "target, expected",
    [("/board", "/board"), ("/a?b=c", "/a?b=c"), ("", None), ("board", None), ("/\t/evil.example", None)],
)
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_changing_the_password_ends_open_sessions(app, client, people):
    log_in(client, "sam", SUPERVISOR_PASSWORD)
    assert client.get("/probe/board").status_code == 200
    with session_scope(app) as session:
        service.change_password(session, "sam", "a-brand-new-password")
    assert client.get("/probe/board").status_code == 302


def test_api_token_required(app, client):
    with session_scope(app) as session:
        token = service.create_api_token(session, "wallboard", ["read", "act"])

    response = client.get("/probe/api/ping")
    assert response.status_code == 401
    assert "error" in response.get_json()
    assert client.get("/probe/api/ping", headers={"Authorization": "Bearer sb_wrong"}).status_code == 401
    assert client.get("/probe/api/ping", headers={"Authorization": f"Basic {token}"}).status_code == 401

    good = {"Authorization": f"Bearer {token}"}
    assert client.get("/probe/api/ping", headers=good).get_json() == {"ok": True}
    assert client.post("/probe/api/ping", headers=good).status_code == 200, "the token API needs no CSRF token"

    with session_scope(app) as session:
        service.revoke_api_token(session, "wallboard")
    response = client.get("/probe/api/ping", headers=good)
    assert response.status_code == 401
    assert "error" in response.get_json()


def test_api_lets_a_supervisor_session_through_but_not_an_agent(app, people):
    supervisor = app.test_client()
    log_in(supervisor, "sam", SUPERVISOR_PASSWORD)
    assert supervisor.get("/probe/api/ping").status_code == 200
    token = csrf_token_from(supervisor.get("/probe/board"))
    assert supervisor.post("/probe/api/ping").status_code == 400, "a cookie session must prove CSRF on changes"
    assert supervisor.post("/probe/api/ping", headers={"X-CSRFToken": token}).status_code == 200

    agent = app.test_client()
    log_in(agent, "ada", AGENT_PASSWORD)
    assert agent.get("/probe/api/ping").status_code == 403


def test_passwords_and_tokens_are_stored_hashed(app):
    with session_scope(app) as session:
        session.add(Agent(name="Ada", extension="101"))
        session.flush()
        service.create_user(session, "sam", SUPERVISOR_PASSWORD, "supervisor")
        service.create_user(session, "ada", AGENT_PASSWORD, "agent", "101")
        token = service.create_api_token(session, "reports", ["read"])
        hashes = dict(session.execute(select(User.username, User.password_hash)).all())
        stored = session.scalar(select(ApiToken.token_hash).where(ApiToken.name == "reports"))
    assert hashes["sam"] != SUPERVISOR_PASSWORD and SUPERVISOR_PASSWORD not in hashes["sam"]
    assert hashes["ada"] != AGENT_PASSWORD and hashes["ada"].startswith(("scrypt:", "pbkdf2:"))
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_cli_users_create_list_and_set_password(app, runner):
    with session_scope(app) as session:
        session.add(Agent(name="Bea", extension="102"))

    result = runner.invoke(
        users_cli, ["create", "--username", "lee", "--role", "supervisor"], input="lee-password-01\nlee-password-01\n"
    )
    assert result.exit_code == 0, result.output
    assert "lee-password-01" not in result.output, "the prompt hides the password"
    result = runner.invoke(
        users_cli,
        ["create", "--username", "bea", "--role", "agent", "--agent-extension", "102", "--password-stdin"],
        input="bea-password-01\n",
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        users_cli, ["create", "--username", "bob", "--role", "agent", "--password-stdin"], input="bob-password-01\n"
    )
    assert result.exit_code != 0 and "extension" in result.output

    listing = runner.invoke(users_cli, ["list"]).output
    assert re.search(r"bea\s+agent\s+102", listing) and re.search(r"lee\s+supervisor\s+-", listing)

    result = runner.invoke(
        users_cli, ["set-password", "--username", "bea", "--password-stdin"], input="bea-password-02\n"
    )
    assert result.exit_code == 0, result.output
    with session_scope(app) as session:
        assert service.authenticate(session, "bea", "bea-password-01") is None
        assert service.authenticate(session, "bea", "bea-password-02") is not None


def test_cli_bootstrap_creates_the_supervisor_once(make_app, settings):
    app = make_app(settings, supervisor_username="boss", supervisor_password="boss-password-01")
    runner = app.test_cli_runner()
    first = runner.invoke(users_cli, ["bootstrap"])
    assert first.exit_code == 0 and "supervisor boss created" in first.output
    second = runner.invoke(users_cli, ["bootstrap"])
    assert second.exit_code == 0 and "already exists" in second.output
    with session_scope(app) as session:
        assert session.scalars(select(User.username)).all() == ["boss"]


def test_cli_bootstrap_without_settings_does_nothing(runner, app):
    result = runner.invoke(users_cli, ["bootstrap"])  # no terminal here: it says how, and creates nobody
    assert result.exit_code == 0 and "No supervisor exists yet" in result.output
    with session_scope(app) as session:
        assert session.scalars(select(User)).all() == []


def test_cli_api_tokens(app, runner, client):
    created = runner.invoke(api_tokens_cli, ["create", "wallboard", "--scope", "read"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert client.get("/probe/api/ping", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listing = runner.invoke(api_tokens_cli, ["list"]).output
    assert "wallboard" in listing and token not in listing and token[3:12] not in listing

    assert runner.invoke(api_tokens_cli, ["revoke", "wallboard"]).exit_code == 0
    assert client.get("/probe/api/ping", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert runner.invoke(api_tokens_cli, ["revoke", "wallboard"]).exit_code != 0


def _redis_answers() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def test_with_redis_the_login_limit_is_shared_by_every_worker(make_app, settings, people):
    import os
    import uuid

    if not _redis_answers():
        # CI starts Redis (.ci/run): there a missing server fails the run.
        message = "no Redis server on 127.0.0.1:6379 to share the limit through"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    # Two apps stand for two gunicorn workers; the address only names the counter.
    workers = [make_app(settings, ratelimit_storage_uri="redis://127.0.0.1:6379/15") for _ in range(2)]
    address = f"192.0.2.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:8]}"
    clients = [worker.test_client() for worker in workers]
    for client in clients:
        client.environ_base["REMOTE_ADDR"] = address
    statuses = [_fail(clients[attempt % 2], "sam", 1)[0] for attempt in range(6)]
    assert statuses == [200, 200, 200, 200, 200, 429]
    # Successes from that address, on either worker, count for nobody.
    assert [log_in(_from(worker, address), "ada", AGENT_PASSWORD).status_code for worker in workers * 3] == [302] * 6


def test_the_start_page_leads_to_sign_in_or_the_users_home(app, people):
    anonymous = app.test_client()
    assert anonymous.get("/").headers["Location"] == "/login"
    supervisor, agent = app.test_client(), app.test_client()
    log_in(supervisor, "sam", SUPERVISOR_PASSWORD)
    log_in(agent, "ada", AGENT_PASSWORD)
    assert supervisor.get("/").headers["Location"] == "/board"
    assert agent.get("/").headers["Location"] == "/console"


def test_bootstrap_asks_at_the_terminal_for_the_first_supervisor_once(app, runner):
    from app.auth.service import authenticate

    answered = runner.invoke(args=["users", "bootstrap", "--ask"],
                             input="first-sup\nlong-enough-password\nlong-enough-password\n")
    assert answered.exit_code == 0, answered.output
    assert "supervisor first-sup created" in answered.output
    with session_scope(app) as session:
        assert authenticate(session, "first-sup", "long-enough-password") is not None
    again = runner.invoke(args=["users", "bootstrap", "--ask"], input="someone\nx\nx\n")
    assert "a supervisor exists; nothing to do" in again.output


def test_bootstrap_without_a_terminal_says_how_to_create_a_supervisor(runner):
    result = runner.invoke(args=["users", "bootstrap", "--no-ask"])
    assert result.exit_code == 0 and "users create --username NAME --role supervisor" in result.output


# Signing out ends the session on the server: a copy of the cookie taken before is refused after.

PASSWORDS = {"sam": SUPERVISOR_PASSWORD, "ada": AGENT_PASSWORD}


def copy_of_cookie(app, client):
    """A second browser holding the same session cookie as CLIENT."""
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie after sign-in"
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def login_sessions(app) -> int:
    with session_scope(app) as session:
        return session.scalar(select(func.count()).select_from(LoginSession))


def sign_out(client, page):
    response = client.post("/logout", data={"csrf_token": csrf_token_from(client.get(page))})
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def test_a_supervisor_cookie_copied_before_logout_is_refused_after(app, client, people):
    log_in(client, "sam", SUPERVISOR_PASSWORD)
    thief = copy_of_cookie(app, client)
    assert thief.get("/board").status_code == 200, "the copy works while the session is open"
    assert thief.get("/api/transfers/1").status_code == 404, "and on the JSON API"

    sign_out(client, "/board")
    assert login_sessions(app) == 0

    page = thief.get("/board")
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=%2Fboard"
    api = thief.get("/api/transfers/1", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert "error" in api.get_json()


def test_an_agent_cookie_copied_before_logout_is_refused_after(app, client, people):
    log_in(client, "ada", AGENT_PASSWORD)
    thief = copy_of_cookie(app, client)
    assert thief.get("/console").status_code == 200
    assert thief.get("/console/state").status_code == 200

    sign_out(client, "/console")

    for path in ("/console", "/console/state"):
        response = thief.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next=")
    # A change with the dead cookie and a CSRF token that fits it does nothing either.
    token = csrf_token_from(thief.get("/login"))
    assert thief.post("/console/presence", data={"presence": "away", "csrf_token": token}).status_code == 302
    with session_scope(app) as session:
        assert session.scalar(select(Agent.presence)) != "away"


def test_signing_out_ends_only_that_browser(app, people):
    desk, phone = app.test_client(), app.test_client()
    log_in(desk, "sam", SUPERVISOR_PASSWORD)
    log_in(phone, "sam", SUPERVISOR_PASSWORD)
    assert login_sessions(app) == 2
    sign_out(desk, "/board")
    assert desk.get("/board").status_code == 302
    assert phone.get("/board").status_code == 200


def test_signing_in_again_ends_the_session_the_browser_had(app, client, people):
    log_in(client, "sam", SUPERVISOR_PASSWORD)
    before = copy_of_cookie(app, client)
    token = csrf_token_from(client.get("/board"))
    response = client.post("/login", data={"username": "ada", "password": AGENT_PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/console"
    assert login_sessions(app) == 1
    assert before.get("/board").status_code == 302
    assert client.get("/console").status_code == 200


def test_a_password_change_from_the_cli_ends_every_session_of_that_user(app, people, runner):
    sam, ada = app.test_client(), app.test_client()
    log_in(sam, "sam", SUPERVISOR_PASSWORD)
    log_in(ada, "ada", AGENT_PASSWORD)
    result = runner.invoke(args=["users", "set-password", "--username", "sam", "--password-stdin"],
                           input="sam-password-0002\n")
    assert result.exit_code == 0, result.output
    assert sam.get("/board").status_code == 302
    assert ada.get("/console").status_code == 200, "other users stay signed in"


def test_deleting_a_user_ends_their_sessions(app, client, people):
    log_in(client, "ada", AGENT_PASSWORD)
    with session_scope(app) as session:
        session.execute(delete(User).where(User.username == "ada"))
    assert login_sessions(app) == 0, "the database drops a deleted user's sessions"
    assert client.get("/console").status_code == 302


def test_only_a_digest_of_the_session_key_is_stored(app, client, people):
    log_in(client, "sam", SUPERVISOR_PASSWORD)
    with client.session_transaction() as cookie:
        key = cookie["_user_id"]
    with session_scope(app) as session:
        stored = session.scalar(select(LoginSession.key_hash))
    assert key not in stored and stored == service.hash_api_token(key)


@pytest.mark.parametrize("forged", ["1", "1:0123456789abcdef", "x" * 10_000, ""])
def test_a_forged_session_key_signs_nobody_in(app, people, forged):
    # With the secret key, someone could sign any cookie; what it names must still be an open session.
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = forged
    assert client.get("/board").status_code == 302


def test_last_seen_is_written_only_every_few_minutes(app, client, people):
    log_in(client, "sam", SUPERVISOR_PASSWORD)

    def last_seen():
        with session_scope(app) as session:
            return session.scalar(select(LoginSession.last_seen_at))

    signed_in = last_seen()
    start = utcnow()
    try:
        clock.use_clock(lambda: start + timedelta(minutes=1))
        assert client.get("/board").status_code == 200
        assert last_seen() == signed_in
        later = start + service.LAST_SEEN_RESOLUTION + timedelta(minutes=1)
        clock.use_clock(lambda: later)
        assert client.get("/board").status_code == 200
        assert last_seen() == later
    finally:
        clock.use_clock(None)


def test_a_session_left_idle_past_the_limit_is_ended(app, client, people):
    log_in(client, "sam", SUPERVISOR_PASSWORD)
    start = utcnow()
    idle = timedelta(hours=app.config["SETTINGS"].login_idle_hours)
    try:
        clock.use_clock(lambda: start + idle - timedelta(minutes=1))
        assert client.get("/board").status_code == 200  # used within the limit: it goes on
        clock.use_clock(lambda: start + 2 * idle)
        assert client.get("/board").status_code == 302  # idle past it: signed out
        assert login_sessions(app) == 0
    finally:
        clock.use_clock(None)


def test_prune_ends_sessions_nobody_came_back_to(app, people, runner):
    desk, phone = app.test_client(), app.test_client()
    log_in(desk, "sam", SUPERVISOR_PASSWORD)
    log_in(phone, "ada", AGENT_PASSWORD)
    with session_scope(app) as session:
        idle = utcnow() - timedelta(hours=app.config["SETTINGS"].login_idle_hours + 1)
        session.execute(update(LoginSession).where(LoginSession.user_id == select(User.id).where(
            User.username == "sam").scalar_subquery()).values(last_seen_at=idle))
    result = runner.invoke(args=["db", "prune"])
    assert result.exit_code == 0, result.output
    assert "ended 1 login sessions idle for more than 12 h" in result.output
    assert login_sessions(app) == 1 and phone.get("/console").status_code == 200
