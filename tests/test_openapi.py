"""The OpenAPI document is written from the API's views and schemas, and describes exactly what the app serves:
every route, its scope, its request and its answers; it is a valid OpenAPI 3.1 document, listed for people at
/api/docs."""

import re

import schemathesis

from app.api.common import scope_of_method

# The routes under /api that are not operations of the API: the document itself and its page.
NOT_OPERATIONS = {"api.openapi", "api.docs"}


def test_openapi_paths_match_the_routes(client, app):
    spec = client.get("/api/openapi.json").get_json()
    documented = {
        (method.upper(), re.sub(r"\{(\w+)\}", r"<\1>", path))
        for path, operations in spec["paths"].items()
        for method in operations
    }
    served = {
        (method, re.sub(r"<(?:int:)?(\w+)>", r"<\1>", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint not in NOT_OPERATIONS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == served


def test_openapi_documents_the_schemas_and_the_bearer_token(client):
    with client.get("/api/openapi.json") as response:
        spec = response.get_json()
    assert response.status_code == 200 and spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    start = spec["paths"]["/api/calls/{call_sid}/transfers"]["post"]
    assert spec["security"] == [{"bearer": []}]  # every operation, unless it says otherwise
    body = start["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("StartTransfer")
    schemas = spec["components"]["schemas"]
    start_schema = next(s for name, s in schemas.items() if name.endswith("StartTransfer"))
    assert start_schema["properties"]["mode"]["enum"] == ["warm", "blind"]
    notes = start_schema["properties"]["notes"]
    assert {"type": "string", "maxLength": 2000} in notes.get("anyOf", [notes])
    assert {"201", "400", "401", "404", "409"} <= set(start["responses"])


def test_a_malformed_body_is_answered_in_words(centre, api_headers):
    from tests.transfer_helpers import connected_call

    caller, _alice = connected_call(centre)
    url = f"/api/calls/{caller.sid}/transfers"
    headers = api_headers(centre.app)
    for body, words in (
        ({"mode": "warm"}, "give a target: 'extension' or 'queue'"),
        ({"extension": "102", "mode": "sideways"}, "'mode': "),
        ({"extension": "102", "notes": ["not", "text"]}, "'notes': "),
        ({"extension": "102", "notes": "x" * 2001}, "'notes': "),
    ):
        response = centre.client.post(url, json=body, headers=headers)
        assert response.status_code == 400 and words in response.get_json()["error"], (body, response.get_json())
    not_json = centre.client.post(url, data="extension=102", headers=headers)
    assert not_json.status_code == 400 and set(not_json.get_json()) == {"error"}
    assert centre.client.get("/api/transfers/99999999999999999999", headers=headers).status_code == 404


def test_the_document_is_valid_openapi(client):
    # Against the OpenAPI 3.1 meta-schema (schemathesis checks with it; it raises on the first problem).
    schemathesis.openapi.from_dict(client.get("/api/openapi.json").get_json()).validate()


def test_every_route_declares_its_scope_and_the_document_names_it(client, app):
    spec = client.get("/api/openapi.json").get_json()
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert scheme == {"type": "http", "scheme": "bearer"}
    views = app.view_functions
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.endpoint in NOT_OPERATIONS:
            continue
        path = re.sub(r"<(?:int:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            needed = scope_of_method(method).value
            assert getattr(views[rule.endpoint], "api_scope", None) == needed, (method, rule.rule)
            operation = spec["paths"][path][method.lower()]
            assert operation["security"] == [{"bearer": [needed]}], (method, path)


def test_every_operation_has_its_answers_and_bodies_as_schemas(client):
    spec = client.get("/api/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"400", "401", "403"} <= set(answers), (method, path)
            ok = next(status for status in answers if status.startswith("2"))
            assert answers[ok]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1] in schemas
            if method in ("post", "put") and "requestBody" in operation:
                body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert body.rsplit("/", 1)[-1] in schemas
    for path, method, body in (("/api/agents/{extension}/presence", "put", "SetPresence"),
                               ("/api/agents/{extension}/presence", "post", "SetPresence"),
                               ("/api/calls", "post", "PlaceCall")):
        assert spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"] \
            .endswith(body)
    call = schemas["Call"]["properties"]
    assert {"legs", "transcript", "summaries", "transfers", "events"} <= set(call)
    assert {"extension", "skills", "presence", "presence_since", "activity", "activity_since"} <= set(
        schemas["Agent"]["properties"])
    assert {"name", "code", "skill", "hours", "priority", "waiting", "agents_available"} <= set(
        schemas["QueueList.Queue"]["properties"])


def test_the_docs_page_lists_every_route_with_its_scope_for_supervisors(client, app):
    from app.auth.service import create_user
    from app.db import session_scope
    from tests.test_auth import log_in

    assert client.get("/api/docs").status_code == 302, "a page: signed-in supervisors only"
    spec = client.get("/api/openapi.json").get_json()
    with session_scope(app) as session:
        create_user(session, "sam", "sup-password-0001", "supervisor")
    assert log_in(client, "sam", "sup-password-0001").status_code == 302
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # The document's routes, listed: no script of a CDN (the pages' CSP allows only the service's own).
    assert not re.search(r'<script[^>]*src="(?!/static/)', html), "only the service's own scripts"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            scope = operation["security"][0]["bearer"][0]
            row = re.search(rf'data-route="{method.upper()} {re.escape(path)}">(.*?)</tr>', html, re.S)
            assert row is not None, (method, path)
            assert f"<td>{scope}</td>" in row.group(1), (method, path)
