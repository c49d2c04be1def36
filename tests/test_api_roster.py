"""The JSON API's roster and whole calls: agents with their presence and activity (and since when), setting an
agent's presence by API as the board does (the board and the console see it), the queues with who waits and who
could answer, and a call read whole: legs, transcript, summaries, transfers and timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.auth.service import create_user
from app.models import Event
from app.sandbox import scenarios
from tests.test_console import make_browser_agent, sign_in, state
from tests.test_supervisor_pages import PASSWORD, agent_row
from tests.transfer_helpers import connected_call


def _supervisor(centre):
    with centre.db() as session:
        create_user(session, "sam", PASSWORD, "supervisor")
    from tests.test_supervisor_pages import signed_in

    return signed_in(centre, "sam")


def test_agents_are_listed_with_presence_and_activity_since_when(centre, api_headers):
    headers = api_headers(centre.app, "wallboard", scopes=("read",))
    caller, _alice = connected_call(centre)
    agents = centre.client.get("/api/agents", headers=headers).get_json()["agents"]
    assert [a["extension"] for a in agents] == sorted(a["extension"] for a in agents)
    alice = next(a for a in agents if a["extension"] == "101")
    row = agent_row(centre, "101")
    assert alice["name"] == row.name and alice["skills"] == row.skills
    assert (alice["presence"], alice["activity"]) == ("available", "on_call")
    assert datetime.fromisoformat(alice["activity_since"]) == row.activity_changed_at
    assert datetime.fromisoformat(alice["presence_since"]) == row.presence_changed_at
    one = centre.client.get("/api/agents/101", headers=headers)
    assert one.status_code == 200 and one.get_json() == alice
    missing = centre.client.get("/api/agents/9999", headers=headers)
    assert missing.status_code == 404 and missing.get_json() == {"error": "no agent with extension 9999"}


def test_setting_presence_by_api_moves_the_agent_and_the_board_and_console_see_it(centre, api_headers):
    make_browser_agent(centre, "101", "alice")
    console = sign_in(centre, "alice")
    sam = _supervisor(centre)
    headers = api_headers(centre.app, "wfm", scopes=("act",))

    moved = centre.client.put("/api/agents/101/presence", json={"presence": "away"}, headers=headers)
    assert moved.status_code == 200 and moved.get_json()["presence"] == "away"
    assert agent_row(centre, "101").presence == "away"
    board = next(a for a in sam.get("/board/snapshot").get_json()["agents"] if a["extension"] == "101")
    assert board["presence"] == "away"
    assert state(console)["agent"]["presence"] == "away"
    with centre.db() as session:
        event = session.scalar(select(Event).where(Event.name == "presence_set"))
        assert event.call_id is None
        assert event.detail == {"agent": "101", "by": "token:wfm", "to": "away", "was": "available"}

    # Available again by POST: a caller waiting for billing is offered to her at once (Bob is away too).
    assert centre.client.post("/api/agents/102/presence", json={"presence": "away"}, headers=headers).status_code == 200
    caller = centre.dial()
    caller.press("1")
    assert state(console)["offer"] is None
    back = centre.client.post("/api/agents/101/presence", json={"presence": "available"}, headers=headers)
    assert back.status_code == 200 and back.get_json()["presence"] == "available"
    centre.network.run_pending()
    assert state(console)["offer"] is not None


def test_an_agent_set_away_by_api_on_a_call_stays_on_it(centre, api_headers):
    headers = api_headers(centre.app)
    caller, _alice = connected_call(centre)
    answer = centre.client.put("/api/agents/101/presence", json={"presence": "away"}, headers=headers)
    assert answer.status_code == 200
    assert (answer.get_json()["presence"], answer.get_json()["activity"]) == ("away", "on_call")
    assert centre.client.get(f"/api/calls/{caller.sid}", headers=headers).get_json()["status"] == "connected"
    caller.hangup()
    assert agent_row(centre, "101").activity == "idle" and agent_row(centre, "101").presence == "away"


def test_a_presence_the_api_cannot_set_is_refused_in_words(centre, api_headers):
    headers = api_headers(centre.app)
    for body, words in (({"presence": "offline"}, "'presence': "), ({"presence": "asleep"}, "'presence': "),
                        ({}, "'presence': "), ({"presence": "away", "why": "x"}, "'why': ")):
        answer = centre.client.put("/api/agents/101/presence", json=body, headers=headers)
        assert answer.status_code == 400 and words in answer.get_json()["error"], (body, answer.get_json())
    missing = centre.client.put("/api/agents/9999/presence", json={"presence": "away"}, headers=headers)
    assert missing.status_code == 404 and missing.get_json() == {"error": "no agent with extension 9999"}
    assert agent_row(centre, "101").presence == "available"


def test_queues_show_who_waits_and_who_could_answer(centre, api_headers):
    headers = api_headers(centre.app, "wallboard", scopes=("read",))
    queues = {q["name"]: q for q in centre.client.get("/api/queues", headers=headers).get_json()["queues"]}
    billing = queues["billing"]
    assert billing["code"] == "1" and billing["skill"] == "billing" and billing["open_now"] is True
    assert billing["waiting"] == 0 and billing["agents_available"] == 2  # Alice and Bob
    assert set(billing) >= {"hours", "holidays", "timezone", "priority", "default"}

    act = api_headers(centre.app, "wfm", scopes=("act",))
    for extension in ("101", "102"):
        centre.client.put(f"/api/agents/{extension}/presence", json={"presence": "away"}, headers=act)
    caller = centre.dial()
    caller.press("1")
    billing = next(q for q in centre.client.get("/api/queues", headers=headers).get_json()["queues"]
                   if q["name"] == "billing")
    assert billing["waiting"] == 1 and billing["agents_available"] == 0


def test_a_call_is_read_whole(centre, api_headers):
    headers = api_headers(centre.app, "crm", scopes=("read",))
    caller, _alice, _bob = scenarios.warm_transfer_by_dtmf(centre.network, centre.number)
    caller.hangup()
    call = centre.client.get(f"/api/calls/{caller.sid}", headers=headers).get_json()

    roles = [(leg["role"], leg["agent"]) for leg in call["legs"]]
    assert roles[0] == ("caller", None) and ("agent", "101") in roles and ("target", "102") in roles
    assert all(leg["status"] and leg["created_at"] for leg in call["legs"])
    assert all(leg["ended_at"] for leg in call["legs"]), "the call is over: every leg ended"

    said = [(line["speaker"], line["words"]) for line in call["transcript"]]
    assert ("caller", "Hi, my bill shows two charges of 49 dollars this month") in said
    assert any("[card number removed]" in words for _who, words in said)
    assert "4111" not in str(call)

    (transfer,) = call["transfers"]
    assert (transfer["state"], transfer["target_agent"], transfer["from_agent"]) == ("completed", "102", "101")
    assert transfer["summary"] and transfer["source"] == "llm"
    (summary,) = call["summaries"]
    assert summary["transfer_id"] == transfer["id"] and summary["spoken"] == transfer["summary"]
    assert summary["source"] == "llm" and summary["model"]

    names = [event["name"] for event in call["events"]]
    assert "transfer_requested" in names and "transfer_completed" in names


def test_a_finished_call_is_found_by_part_of_its_number_with_a_read_token(centre, api_headers):
    headers = api_headers(centre.app, "crm", scopes=("read",))
    caller, _alice = connected_call(centre)
    caller.hangup()
    found = centre.client.get("/api/calls", query_string={"number": scenarios.CALLER[-7:-2]}, headers=headers)
    assert found.status_code == 200
    assert [(c["call_sid"], c["status"], c["agent"]) for c in found.get_json()["calls"]] == [
        (caller.sid, "completed", "101")]
