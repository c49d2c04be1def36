"""The OpenAPI file describes exactly the transfer API the app serves."""

import json
import re

from app.transfers.api import OPENAPI


def test_openapi_paths_match_the_routes(app):
    spec = json.loads(OPENAPI.read_text())
    documented = {
        (method.upper(), "/api" + re.sub(r"\{(\w+)\}", r"<\1>", path))
        for path, operations in spec["paths"].items()
        for method in operations
    }
    served = {
        (method, re.sub(r"<(?:int:)?(\w+)>", r"<\1>", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint != "transfers_api.openapi"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == served


def test_openapi_is_served(client):
    with client.get("/api/openapi.json") as response:
        assert response.status_code == 200 and response.get_json()["openapi"].startswith("3.")
