"""The JSON API's tokens: each route needs its scope (read to look, act to change), an expired or revoked token is
refused in words, every request is logged with the token's name and never the token, and `flask api-tokens`
creates, lists and revokes them with their scopes and expiry."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.api.common import scope_of_method
from app.auth import service
from app.commands.users import api_tokens_cli
from app.models import ApiToken

# Every API route, with a path to call it on and a body: enough to pass the guard, not to change anything (an
# unknown id or agent is 404, a body that names nothing is 400).
ROUTES = {
    ("GET", "/api/calls"): ("/api/calls", None),
    ("POST", "/api/calls"): ("/api/calls", {}),
    ("GET", "/api/calls/<call_sid>"): ("/api/calls/CA-none", None),
    ("POST", "/api/calls/<call_sid>/transfers"): ("/api/calls/CA-none/transfers", {}),
    ("GET", "/api/callbacks"): ("/api/callbacks", None),
    ("GET", "/api/transfers/<transfer_id>"): ("/api/transfers/999", None),
    **{("POST", f"/api/transfers/<transfer_id>/{action}"): (f"/api/transfers/999/{action}", None)
       for action in ("complete", "cancel", "three-way", "swap")},
    ("GET", "/api/agents"): ("/api/agents", None),
    ("GET", "/api/agents/<extension>"): ("/api/agents/999", None),
    ("PUT", "/api/agents/<extension>/presence"): ("/api/agents/999/presence", {"presence": "away"}),
    ("POST", "/api/agents/<extension>/presence"): ("/api/agents/999/presence", {"presence": "away"}),
    ("GET", "/api/queues"): ("/api/queues", None),
    ("GET", "/api/queues/figures"): ("/api/queues/figures", None),
}


def test_the_table_names_every_api_route(app):
    served = {(method, re.sub(r"<(?:int:)?(\w+)>", r"<\1>", rule.rule))
              for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") and rule.endpoint not in ("api.openapi", "api.docs")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == set(ROUTES)


def _call(client, method, route, headers):
    path, body = ROUTES[route]
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda route: " ".join(route))
def test_each_route_with_a_read_token_an_act_token_and_none(centre, api_headers, route):
    method, _path = route
    needed = scope_of_method(method)
    read = api_headers(centre.app, "wallboard", scopes=("read",))
    act = api_headers(centre.app, "dialler", scopes=("act",))
    client = centre.client

    anonymous = _call(client, method, route, {})
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.get_json() == {"error": "an API token is required: send 'Authorization: Bearer <token>'"}

    allowed, refused = (read, act) if needed == service.Scope.READ else (act, read)
    refused_name, other = ("dialler", "act") if needed == service.Scope.READ else ("wallboard", "read")
    answer = _call(client, method, route, refused)
    assert answer.status_code == 403
    assert answer.get_json() == {"error": f"the API token '{refused_name}' has the scope {other} only; this needs "
                                          f"the {needed} scope (a token created with --scope {needed})"}
    passed = _call(client, method, route, allowed)
    assert passed.status_code in (200, 400, 404), passed.get_json()


def test_an_expired_token_is_refused_in_words(centre):
    with centre.db() as session:
        token = service.create_api_token(session, "temp", ["read"], timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    assert centre.client.get("/api/agents", headers=headers).status_code == 200
    centre.network.advance(3601)
    refused = centre.client.get("/api/agents", headers=headers)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    words = refused.get_json()["error"]
    assert words.startswith("the API token 'temp' expired at ") and words.endswith(" UTC; create a new one")


def test_a_revoked_token_is_refused_at_once(centre, api_headers):
    headers = api_headers(centre.app, "crm")
    assert centre.client.get("/api/queues", headers=headers).status_code == 200
    with centre.db() as session:
        service.revoke_api_token(session, "crm")
    refused = centre.client.get("/api/queues", headers=headers)
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "the API token is not valid (it may have been revoked)"}


def test_every_request_is_logged_with_the_token_name_never_the_token(centre, api_headers, capsys):
    headers = api_headers(centre.app, "wallboard", scopes=("read",))
    token = headers["Authorization"].removeprefix("Bearer ")
    capsys.readouterr()
    centre.client.get("/api/agents", headers=headers)
    centre.client.post("/api/agents/101/presence", json={"presence": "away"}, headers=headers)
    centre.client.get("/api/agents")
    captured = capsys.readouterr().err
    assert token not in captured and token[3:12] not in captured
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["event"] == "api_request"]
    assert [(r["method"], r["path"], r["status"], r.get("api_client")) for r in requests] == [
        ("GET", "/api/agents", 200, "wallboard"),
        ("POST", "/api/agents/101/presence", 403, None),  # refused for its scope: the name is in the answer
        ("GET", "/api/agents", 401, None),
    ]
    assert all(r["request_id"] for r in requests)


def test_the_last_use_is_kept(centre, api_headers):
    headers = api_headers(centre.app, "crm")
    with centre.db() as session:
        assert session.scalar(select(ApiToken.last_used_at).where(ApiToken.name == "crm")) is None
    centre.client.get("/api/agents", headers=headers)
    with centre.db() as session:
        assert session.scalar(select(ApiToken.last_used_at).where(ApiToken.name == "crm")) is not None


def test_cli_creates_tokens_with_scopes_and_expiry_and_lists_them(app, runner, client):
    created = runner.invoke(api_tokens_cli, ["create", "dialler", "--scope", "read", "--scope", "act",
                                             "--expires-in", "30d"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert runner.invoke(api_tokens_cli, ["create", "wallboard", "--scope", "read"]).exit_code == 0
    assert client.get("/api/queues", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listing = runner.invoke(api_tokens_cli, ["list"]).output.splitlines()
    dialler = next(line for line in listing if line.startswith("dialler"))
    wallboard = next(line for line in listing if line.startswith("wallboard"))
    assert "scopes read act" in dialler and re.search(r"expires \d{4}-\d\d-\d\d \d\d:\d\d UTC", dialler)
    assert re.search(r"last used \d{4}-\d\d-\d\d \d\d:\d\d UTC", dialler)
    assert "scopes read " in wallboard and "never expires" in wallboard and "last used never" in wallboard
    assert token not in "\n".join(listing)

    assert runner.invoke(api_tokens_cli, ["revoke", "dialler"]).exit_code == 0
    assert client.get("/api/queues", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("arguments, words", [
    (["create", "x"], "Missing option '--scope'"),
    (["create", "x", "--scope", "write"], "'write' is not one of 'read', 'act'"),
    (["create", "x", "--scope", "read", "--expires-in", "soon"],
     "expires-in 'soon' is not a lifetime: give days or hours, like 30d or 12h"),
    (["create", "x", "--scope", "read", "--expires-in", "0d"], "expires-in must be from 1h to 3650d"),
    (["create", "x", "--scope", "read", "--expires-in", "4000d"], "expires-in must be from 1h to 3650d"),
])
def test_cli_refuses_a_token_it_cannot_make_in_words(app, runner, arguments, words):
    result = runner.invoke(api_tokens_cli, arguments)
    assert result.exit_code != 0 and words in result.output
    assert runner.invoke(api_tokens_cli, ["list"]).output.strip() == "no tokens"


def test_tokens_made_before_scopes_keep_both_and_no_expiry(app):
    from app.db import session_scope

    with session_scope(app) as session:
        session.add(ApiToken(name="old", token_hash=service.hash_api_token("sb_old")))
        session.flush()
        old = session.scalar(select(ApiToken).where(ApiToken.name == "old"))
        session.refresh(old)
        assert service.token_scopes(old) == (service.Scope.READ, service.Scope.ACT) and old.expires_at is None
