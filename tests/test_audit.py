"""Who did it: every action from a page, the console or the JSON API is on the call's timeline with the user
(their username) or the API token (token:<its name>) that asked, as `by`."""

from __future__ import annotations

from sqlalchemy import select

from app.models import Event
from tests.test_console import accepted_browser_call, act, make_browser_agent, sign_in, state
from tests.test_supervisor_pages import csrf_token_from, signed_in, users  # noqa: F401 - the users fixture
from tests.transfer_helpers import BOB, accepts, call_row, connected_call, transfer_row


def events_by(centre, name: str) -> list:
    """The `by` of every NAME event, oldest first."""
    with centre.db() as session:
        return [event.detail.get("by") for event in session.scalars(select(Event).where(Event.name == name)
                                                                     .order_by(Event.id))]


def bob_answers(centre):
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    return bob


def test_a_supervisors_transfer_steps_from_the_call_page_are_theirs(centre, users):  # noqa: F811
    caller, _alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    started = sam.post(f"/calls/{caller.sid}/transfer", data={
        "target": "agent:102", "mode": "warm", "notes": "Wants the refund today", "csrf_token": csrf_token_from(page)})
    assert started.status_code == 302, started.get_data(as_text=True)
    centre.network.run_pending()
    transfer = transfer_row(centre)
    assert transfer.requested_by == "sam" and transfer.trigger == "web"
    assert events_by(centre, "transfer_requested") == ["sam"]
    bob_answers(centre)

    def press(action: str):
        token = csrf_token_from(sam.get(f"/calls/{caller.sid}"))
        response = sam.post(f"/calls/{caller.sid}/transfers/{transfer.id}/{action}", data={"csrf_token": token})
        assert response.status_code == 302
        centre.network.run_pending()

    press("swap")
    press("complete")
    assert events_by(centre, "transfer_swapped") == ["sam"]
    assert events_by(centre, "transfer_completed") == ["sam"]

    # The call page shows who in the timeline's own column, and credits the notes to the supervisor.
    html = sam.get(f"/calls/{caller.sid}").get_data(as_text=True)
    assert "<th>By</th>" in html and '<td class="by">sam</td>' in html
    assert "Notes from sam:</b> Wants the refund today" in html
    requested = next(e for e in sam.get(f"/calls/{caller.sid}/snapshot").get_json()["timeline"]
                     if e["name"] == "transfer_requested")
    assert requested["by"] == "sam" and "by" not in dict(requested["detail"])


def test_a_supervisors_cancel_and_notes_reach_the_target_as_theirs(centre, users):  # noqa: F811
    make_browser_agent(centre, "102", "bob")
    caller, _alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    sam.post(f"/calls/{caller.sid}/transfer", data={
        "target": "agent:102", "mode": "warm", "notes": "Second charge on the 3rd",
        "csrf_token": csrf_token_from(sam.get(f"/calls/{caller.sid}"))})
    centre.network.run_pending()
    offer = state(sign_in(centre, "bob"))["offer"]
    assert offer["kind"] == "transfer" and offer["notes_by"] == "sam" and offer["from_agent"] == "Alice Moreno"
    transfer = transfer_row(centre)
    token = csrf_token_from(sam.get(f"/calls/{caller.sid}"))
    sam.post(f"/calls/{caller.sid}/transfers/{transfer.id}/cancel", data={"csrf_token": token})
    assert events_by(centre, "transfer_cancelled") == ["sam"]
    assert transfer_row(centre).end_reason == "cancelled by sam"


def test_an_agents_steps_at_the_console_are_theirs(centre):
    caller, alice = accepted_browser_call(centre)
    assert act(centre, alice, "/console/transfer", target="102", mode="warm", notes="Card declined").status_code == 200
    first = transfer_row(centre)
    assert first.requested_by == "alice"
    assert act(centre, alice, "/console/transfer/cancel", transfer_id=first.id).status_code == 200
    centre.browser_joins(f"call_{call_row(centre, caller.sid).id}", "agent-101")

    assert act(centre, alice, "/console/transfer", target="102", mode="warm").status_code == 200
    second = transfer_row(centre)
    bob_answers(centre)
    assert act(centre, alice, "/console/transfer/swap", transfer_id=second.id).status_code == 200
    assert act(centre, alice, "/console/transfer/three-way", transfer_id=second.id).status_code == 200
    assert events_by(centre, "transfer_requested") == ["alice", "alice"]
    assert events_by(centre, "transfer_cancelled") == ["alice"]
    assert events_by(centre, "transfer_swapped") == ["alice"]
    assert events_by(centre, "transfer_completed") == ["alice"]

    assert act(centre, alice, "/console/presence", presence="away").status_code == 200
    with centre.db() as session:
        event = session.scalar(select(Event).where(Event.name == "presence_set"))
        assert event.detail == {"agent": "101", "by": "alice", "to": "away", "was": "available"}


def test_api_steps_are_the_tokens_or_the_supervisors(centre, api_headers, users):  # noqa: F811
    caller, _alice = connected_call(centre)
    headers = api_headers(centre.app, "crm")
    started = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "102", "notes": "VIP"},
                                 headers=headers)
    assert started.status_code == 201, started.get_json()
    transfer = started.get_json()
    assert transfer["requested_by"] == "token:crm"
    requested = next(e for e in transfer["events"] if e["name"] == "transfer_requested")
    assert requested["detail"]["by"] == "token:crm"
    centre.network.run_pending()
    bob_answers(centre)
    assert centre.client.post(f"/api/transfers/{transfer['id']}/swap", headers=headers).status_code == 200
    centre.network.run_pending()
    done = centre.client.post(f"/api/transfers/{transfer['id']}/three-way", headers=headers)
    assert done.status_code == 200
    assert events_by(centre, "transfer_swapped") == ["token:crm"]
    assert events_by(centre, "transfer_completed") == ["token:crm"]

    # A signed-in supervisor using the API is credited by username.
    caller.hangup()
    centre.network.run_pending()
    other, _alice = connected_call(centre, number="+15557770402")
    sam = signed_in(centre, "sam")
    token = csrf_token_from(sam.get("/board"))
    placed = sam.post(f"/api/calls/{other.sid}/transfers", json={"extension": "201"}, headers={"X-CSRFToken": token})
    assert placed.status_code == 201, placed.get_json()
    cancelled = sam.post(f"/api/transfers/{placed.get_json()['id']}/cancel", headers={"X-CSRFToken": token})
    assert cancelled.status_code == 200
    assert events_by(centre, "transfer_requested") == ["token:crm", "sam"]
    assert events_by(centre, "transfer_cancelled") == ["sam"]
