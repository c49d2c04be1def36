"""The OpenAPI document is written from the API's views and schemas, and describes exactly what the app serves."""

import re


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
        if rule.rule.startswith("/api/") and rule.endpoint != "api.openapi"
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
