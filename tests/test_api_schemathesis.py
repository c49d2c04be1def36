"""Schemathesis against the JSON API, in process: every operation, valid and hostile requests, a token with both
scopes (read and act).

No answer is a 5xx, every answer is one the OpenAPI document describes, ids
past the database's integers name nothing (404) and fields past their length
are refused (400). The data is a real call, connected through the stand-ins,
with a warm transfer under way, and the demo roster's agents and queues, so
some ids exist and some actions apply (an agent's presence among them).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.schemas import StartTransfer
from app.models import MAX_ID
from tests.transfer_helpers import connected_call

pytestmark = pytest.mark.load

# Per generation mode and operation: every operation is called (about a minute a mode on two cores); one
# operation fuzzed on its own with real ids gets ONE_OPERATION.
EXAMPLES = 15
ONE_OPERATION = 150

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth]


def _max_lengths() -> dict[str, int]:
    limits = {}
    for name, field in StartTransfer.model_fields.items():
        for rule in field.metadata:
            if getattr(rule, "max_length", None) is not None:
                limits[name] = rule.max_length
    return limits


MAX_LENGTHS = _max_lengths()


@pytest.fixture
def api(centre, api_headers):
    """The centre with one live call and a transfer of it open; returns (schema, token headers, the call's sid)."""
    caller, _alice = connected_call(centre)
    headers = api_headers(centre.app)
    started = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "102"}, headers=headers)
    assert started.status_code == 201, started.get_json()
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", centre.app)
    return schema, headers, caller.sid


def bounded(ctx, response, case) -> bool | None:
    """Ids past the database's integers are 404; body strings past their maxLength are 400."""
    if response.status_code in (401, 403):  # refused before anything is read
        return None
    transfer_id = (case.path_parameters or {}).get("transfer_id")
    if isinstance(transfer_id, int) and not isinstance(transfer_id, bool) and transfer_id > MAX_ID:
        assert response.status_code == 404, f"transfer id {transfer_id} answered {response.status_code}"
    if isinstance(case.body, dict):
        for name, limit in MAX_LENGTHS.items():
            value = case.body.get(name)
            if isinstance(value, str) and len(value) > limit:
                assert response.status_code == 400, f"{name} of {len(value)} characters answered {response.status_code}"
    return None


def _fuzz(strategy, headers, examples=EXAMPLES) -> set[tuple[str, int]]:
    """Send EXAMPLES of what STRATEGY generates, check every answer; the (operation, status) pairs seen."""
    seen: set[tuple[str, int]] = set()

    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(headers=headers, checks=CHECKS, additional_checks=[bounded])
        seen.add((case.operation.label, response.status_code))

    run()
    return seen


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_answers_every_request_as_documented(api, mode):
    schema, headers, _sid = api
    operations = [operation.ok() for operation in schema.get_all_operations()]
    seen = set().union(*(_fuzz(operation.as_strategy(mode), headers) for operation in operations))
    assert {label for label, _status in seen} == {operation.label for operation in operations}, \
        "every operation was called"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_starting_a_transfer_of_the_live_call_with_any_body(api, mode):
    schema, headers, sid = api
    start = schema["/api/calls/{call_sid}/transfers"]["POST"]
    seen = _fuzz(start.as_strategy(mode, path_parameters={"call_sid": sid}), headers, ONE_OPERATION)
    assert seen, "no request reached the view"


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_setting_a_real_agents_presence_with_any_body(api, mode, method):
    schema, headers, _sid = api
    presence = schema["/api/agents/{extension}/presence"][method]
    seen = _fuzz(presence.as_strategy(mode, path_parameters={"extension": "102"}), headers, ONE_OPERATION // 3)
    statuses = {status for _label, status in seen}
    # Valid bodies set the presence; hostile ones are refused in words (400), or before anything is read when
    # they mangle the token (401).
    assert statuses <= ({200} if mode == GenerationMode.POSITIVE else {200, 400, 401}), statuses
    assert statuses & {200, 400}, "some request reached the view"


def test_the_live_call_is_read_whole(api, centre):
    _schema, headers, sid = api
    call = centre.client.get(f"/api/calls/{sid}", headers=headers).get_json()
    assert [leg["role"] for leg in call["legs"]][:2] == ["caller", "agent"]
    assert call["transfers"][0]["state"] in ("dialing", "whispering", "consulting") and call["transcript"]


TRANSFER_ACTIONS = [("GET", ""), ("POST", "/complete"), ("POST", "/cancel"), ("POST", "/three-way"),
                    ("POST", "/swap")]


@pytest.mark.parametrize("transfer_id", [MAX_ID + 1, 2**63, 10**30])
def test_ids_past_the_database_integers_are_404(api, centre, transfer_id):
    _schema, headers, _sid = api
    for method, action in TRANSFER_ACTIONS:
        response = centre.client.open(f"/api/transfers/{transfer_id}{action}", method=method, headers=headers)
        assert response.status_code == 404, (method, action)
        assert response.get_json() == {"error": f"no transfer {transfer_id}"}


@pytest.mark.parametrize("field", sorted(MAX_LENGTHS))
def test_fields_past_their_length_are_400(api, centre, field):
    _schema, headers, sid = api
    body = {field: "9" * (MAX_LENGTHS[field] + 1)}
    if field == "notes":  # the rest name the target; notes come with one
        body["extension"] = "102"
    response = centre.client.post(f"/api/calls/{sid}/transfers", json=body, headers=headers)
    assert response.status_code == 400
    assert f"'{field}'" in response.get_json()["error"]


@pytest.mark.parametrize("transfer_id", ["-1", "0.1", "abc"])
def test_a_transfer_id_that_misses_the_route_is_answered_in_json(centre, api_headers, transfer_id):
    response = centre.client.get(f"/api/transfers/{transfer_id}", headers=api_headers(centre.app))
    assert response.status_code == 404
    assert response.is_json and "error" in response.get_json()
