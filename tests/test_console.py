"""The agent console: presence, calls and transfers offered in the browser, the transfer form."""

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, update

from app.auth.service import create_user
from app.jobs.steps import follow_up
from app.models import Agent, Call, Leg, LegRole, utcnow
from app.routing.service import offer_call
from app.web.unit_of_work import telephony
from tests.conftest import TEST_DATABASE
from tests.transfer_helpers import (
    ALICE,
    BOB,
    accepts,
    agent_activity,
    call_row,
    calls_placed,
    connected_call,
    in_room,
    transfer_row,
)

STATIC = Path(__file__).resolve().parent.parent / "app" / "static"
PASSWORD = "console-password-1"


def make_browser_agent(centre, extension: str, username: str) -> None:
    """Take the agent's SIP URI away (so they work in the browser) and give them a login."""
    with centre.db() as session:
        session.execute(update(Agent).where(Agent.extension == extension).values(sip_uri=None))
        create_user(session, username, PASSWORD, "agent", agent_extension=extension)


def sign_in(centre, username: str):
    """A test client signed in as USERNAME, with the console's CSRF token."""
    client = centre.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    console = client.get("/console")
    assert console.status_code == 200
    client.csrf = re.search(r'data-csrf="([^"]+)"', console.get_data(as_text=True)).group(1)
    return client


def act(centre, client, path: str, **fields):
    """POST a console action as its JavaScript does, then let Twilio run what it caused."""
    response = client.post(path, data={"csrf_token": client.csrf, **fields}, headers={"Accept": "application/json"})
    centre.network.run_pending()
    return response


def state(client) -> dict:
    response = client.get("/console/state", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def caller_in_queue(centre, reason="I was charged twice for my internet bill"):
    caller = centre.dial()
    caller.speak(reason)
    return caller


def leg_of(centre, extension: str, role=LegRole.AGENT) -> Leg:
    with centre.db() as session:
        leg = session.scalar(
            select(Leg).join(Agent, Leg.agent_id == Agent.id)
            .where(Agent.extension == extension, Leg.role == role).order_by(Leg.id.desc())
        )
        session.expunge(leg)
        return leg


def test_browser_agent_is_offered_a_call_and_accepts(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    caller = caller_in_queue(centre)

    assert centre.network.calls_to(ALICE) == []  # nothing dialled: the console is the phone
    offer = state(alice)["offer"]
    assert offer["kind"] == "call" and offer["in_browser"] is True
    assert offer["caller"] == "+15551230001" and offer["queue"] == "billing"
    assert "charged twice" in offer["reason"]
    assert leg_of(centre, "101").livekit_identity == "agent-101"

    response = act(centre, alice, "/console/accept", leg_id=offer["leg_id"])
    assert response.status_code == 200 and response.get_json()["message"] == "Connected to the caller."
    call_id = call_row(centre, caller.sid).id
    centre.browser_joins(f"call_{call_id}", "agent-101")  # the console connects with its token
    assert in_room(centre.network.call(caller.sid), str(call_id))

    now = state(alice)
    assert now["offer"] is None
    assert now["call"]["room"] == f"call_{call_id}" and now["call"]["caller"] == "+15551230001"
    assert now["call"]["has_caller"] is True and now["agent"]["activity"] == "on_call"
    token = alice.get("/console/token").get_json()
    assert token["room"] == f"call_{call_id}" and token["identity"] == "agent-101"
    assert call_row(centre, caller.sid).status == "connected"
    assert "agent_accepted" in centre.timeline(caller.sid)

    # A second click changes nothing.
    assert act(centre, alice, "/console/accept", leg_id=offer["leg_id"]).status_code == 200
    assert state(alice)["call"]["room"] == f"call_{call_id}"


def test_decline_rings_the_next_agent(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    caller = caller_in_queue(centre)
    offer = state(alice)["offer"]

    response = act(centre, alice, "/console/decline", leg_id=offer["leg_id"])
    assert response.status_code == 200
    assert state(alice)["offer"] is None
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    assert "charged twice" in bob.heard_text
    assert leg_of(centre, "101").status == "declined"
    assert agent_activity(centre, "101") == "idle"
    assert act(centre, alice, "/console/accept", leg_id=offer["leg_id"]).status_code == 409
    assert call_row(centre, caller.sid).status == "ringing_agent"


def test_ring_timeout_without_twilio_rings_the_next_agent(centre):
    make_browser_agent(centre, "101", "alice")
    make_browser_agent(centre, "201", "carmen")
    alice = sign_in(centre, "alice")
    carmen = sign_in(centre, "carmen")
    caller_in_queue(centre)
    offer = state(alice)["offer"]
    assert state(carmen)["offer"] is None  # billing is not Carmen's skill

    timeout = centre.app.config["SETTINGS"].agent_ring_timeout_seconds
    with centre.db() as session:
        session.execute(update(Leg).where(Leg.id == offer["leg_id"])
                        .values(created_at=utcnow() - timedelta(seconds=timeout + 1)))
    # Any console's poll enforces it, not only the ringing agent's (whose browser may be closed).
    assert state(carmen)["offer"] is None
    centre.network.run_pending()

    leg = leg_of(centre, "101")
    assert leg.status == "no_answer"
    assert centre.agent_phone(BOB).live
    with centre.db() as session:
        assert session.scalar(select(Agent.missed_in_row).where(Agent.extension == "101")) == 1
    assert state(alice)["offer"] is None
    refused = act(centre, alice, "/console/accept", leg_id=offer["leg_id"])
    assert refused.status_code == 409 and "offer is over" in refused.get_json()["error"]


@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="row locks are PostgreSQL's; SQLite serialises writers")
def test_a_ring_given_up_by_another_consoles_poll_takes_the_calls_lock_first(centre):
    """Any console's poll gives up a browser ring past its timeout, though it finds the ringing legs without their
    calls' locks. It takes the call's lock before it claims the ring, as every step of the call does: a step of
    the call under way (the caller hanging up, having read the transfer and the legs) finishes first, and the poll
    then reads what it left, instead of ringing the next agent for a call that step is ending."""
    make_browser_agent(centre, "101", "alice")
    make_browser_agent(centre, "201", "carmen")
    alice, carmen = sign_in(centre, "alice"), sign_in(centre, "carmen")
    caller_in_queue(centre)
    offer = state(alice)["offer"]
    timeout = centre.app.config["SETTINGS"].agent_ring_timeout_seconds
    with centre.db() as session:
        session.execute(update(Leg).where(Leg.id == offer["leg_id"])
                        .values(created_at=utcnow() - timedelta(seconds=timeout + 1)))
    sent = []

    def listener(_conn, _cursor, statement, *_args) -> None:
        sent.append(" ".join(statement.split()))

    engine = centre.app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert state(carmen)["offer"] is None
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    claim = next(i for i, text in enumerate(sent) if text.startswith("UPDATE legs SET placement"))
    locks = [i for i, text in enumerate(sent) if "FROM calls" in text and "FOR NO KEY UPDATE" in text]
    assert locks and locks[0] < claim, "the call is locked before its ring is claimed"
    centre.network.run_pending()
    assert leg_of(centre, "101").status == "no_answer" and centre.agent_phone(BOB).live


def test_offering_the_call_again_replaces_a_browser_leg_past_its_timeout(centre):
    make_browser_agent(centre, "101", "alice")
    caller = caller_in_queue(centre)
    first = leg_of(centre, "101")
    with centre.app.test_request_context():
        t = telephony()
        call = t.session.scalar(select(Call).where(Call.call_sid == caller.sid))
        assert offer_call(t, call).id == first.id  # still within the timeout: the same leg
        t.session.get(Leg, first.id).created_at = utcnow() - timedelta(seconds=60)
        assert offer_call(t, call).agent.extension == "102"
        t.session.commit()
        follow_up(t)  # as every edge does once its step is committed: Twilio dials Bob
        t.session.commit()
    centre.network.run_pending()
    assert leg_of(centre, "101").status == "no_answer"
    assert centre.agent_phone(BOB).live


def wait_for_summary(client, timeout=8.0) -> dict:
    give_up = time.monotonic() + timeout
    while True:
        offer = state(client)["offer"]
        if offer and offer.get("summary", {}).get("ready"):
            return offer
        assert time.monotonic() < give_up, offer
        time.sleep(0.1)


def test_browser_agent_as_warm_transfer_target_sees_the_summary_and_accepts(centre):
    make_browser_agent(centre, "102", "bob")
    bob = sign_in(centre, "bob")
    caller, alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id
    alice.press_star()
    alice.press("2102#")
    assert "Calling Bob Okafor" in alice.heard_text
    assert centre.network.calls_to(BOB) == []

    offer = wait_for_summary(bob)
    assert offer["kind"] == "transfer" and offer["from_agent"] == "Alice Moreno" and offer["mode"] == "warm"
    summary = offer["summary"]
    assert summary["fallback"] is False and summary["spoken"]
    assert {f["label"] for f in summary["fields"]} >= {"Reason"}
    assert "4111" not in str(offer)

    response = act(centre, bob, "/console/accept", leg_id=offer["leg_id"])
    assert response.get_json()["message"] == "Consulting with the transferring agent."
    transfer = transfer_row(centre)
    assert transfer.state == "consulting"
    now = state(bob)["call"]
    assert now["room"] == transfer.consult_room and now["transfer"]["role"] == "target"
    assert bob.get("/console/token").get_json()["room"] == transfer.consult_room
    centre.browser_joins(transfer.consult_room, "agent-102")  # LiveKit answers Alice's leg once Bob publishes
    assert in_room(alice, f"{call_id}-consult-{transfer.id}")

    alice.press_star()
    alice.press("2")  # complete: Bob's console moves to the caller's room
    assert state(bob)["call"]["room"] == f"call_{call_id}"
    assert bob.get("/console/token").get_json()["room"] == f"call_{call_id}"
    centre.browser_joins(f"call_{call_id}", "agent-102")
    assert in_room(caller, str(call_id)) and transfer_row(centre).state == "completed"


def test_fallback_summary_is_marked(centre):
    centre.llm.mode = "error"
    make_browser_agent(centre, "102", "bob")
    bob = sign_in(centre, "bob")
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    summary = wait_for_summary(bob)["summary"]
    assert summary["fallback"] is True and summary["spoken"]


def test_browser_target_declines_and_a_returns_to_the_caller(centre):
    make_browser_agent(centre, "102", "bob")
    bob = sign_in(centre, "bob")
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    offer = state(bob)["offer"]
    act(centre, bob, "/console/decline", leg_id=offer["leg_id"])
    assert "Bob Okafor declined the transfer" in alice.heard_text
    assert transfer_row(centre).state == "declined"
    assert in_room(caller, str(call_row(centre, caller.sid).id))


def accepted_browser_call(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    caller = caller_in_queue(centre)
    act(centre, alice, "/console/accept", leg_id=state(alice)["offer"]["leg_id"])
    centre.browser_joins(state(alice)["call"]["room"], "agent-101")
    return caller, alice


@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="row locks are PostgreSQL's; SQLite serialises writers")
def test_a_console_transfer_of_a_call_handed_on_meanwhile_is_refused(centre, monkeypatch):
    """The console checks that the agent has the caller before the call's lock; a step that hands the caller on
    meanwhile (a supervisor's three-way call completed, say) wins: the transfer is refused after the lock,
    instead of putting the other agent's caller on hold."""
    from app.models import Agent, Transfer
    from app.transfers import service as transfers

    caller, alice = accepted_browser_call(centre)
    original = transfers.resolve_target

    def handed_on_meanwhile(t, code):
        with centre.db() as session:  # another step: the caller is now Bob's
            bob_id = session.scalar(select(Agent.id).where(Agent.extension == "102"))
            session.execute(update(Call).where(Call.call_sid == caller.sid).values(agent_id=bob_id))
        return original(t, code)

    monkeypatch.setattr(transfers, "resolve_target", handed_on_meanwhile)
    refused = act(centre, alice, "/console/transfer", target="201", mode="warm")
    assert refused.status_code == 409 and "only the agent with the caller" in refused.get_json()["error"]
    with centre.db() as session:
        assert session.scalar(select(Transfer.id)) is None
    assert call_row(centre, caller.sid).status == "connected"


def test_browser_agent_transfers_from_the_form_and_completes(centre):
    caller, alice = accepted_browser_call(centre)
    call_id = call_row(centre, caller.sid).id
    response = act(centre, alice, "/console/transfer", target="102", mode="warm", notes="Refund the second charge")
    assert response.status_code == 200, response.get_json()
    transfer = transfer_row(centre)
    assert transfer.trigger == "web" and transfer.notes == "Refund the second charge"
    assert centre.network.call(caller.sid).waiting_on.tag == "Play"  # the caller holds
    now = state(alice)["call"]
    assert now["room"] == transfer.consult_room  # the console reconnects there
    assert now["transfer"]["state"] == "dialing" and now["transfer"]["can_cancel"]
    assert not now["transfer"]["can_complete"]

    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    assert state(alice)["call"]["transfer"]["can_complete"]
    assert act(centre, alice, "/console/transfer/complete", transfer_id=transfer.id).status_code == 200
    assert in_room(centre.network.call(caller.sid), str(call_id)) and in_room(bob, str(call_id))
    assert transfer_row(centre).state == "completed"
    assert state(alice)["call"] is None and agent_activity(centre, "101") == "idle"


def test_browser_agent_cancels_the_transfer(centre):
    caller, alice = accepted_browser_call(centre)
    call_id = call_row(centre, caller.sid).id
    act(centre, alice, "/console/transfer", target="102", mode="warm", notes="")
    transfer = transfer_row(centre)
    response = act(centre, alice, "/console/transfer/cancel", transfer_id=transfer.id)
    assert response.status_code == 200
    assert transfer_row(centre).state == "cancelled"
    assert state(alice)["call"]["room"] == f"call_{call_id}"
    centre.browser_joins(f"call_{call_id}", "agent-101")
    assert in_room(centre.network.call(caller.sid), str(call_id))
    assert not centre.agent_phone(BOB).live


def test_transfer_refusals_are_words(centre):
    caller, alice = accepted_browser_call(centre)
    response = act(centre, alice, "/console/transfer", target="999", mode="warm")
    assert response.status_code == 409 and response.get_json() == {"error": "9 9 9 is not an extension or a queue"}
    assert act(centre, alice, "/console/transfer", target="101", mode="warm").get_json()["error"] == (
        "you cannot transfer a call to yourself")
    assert act(centre, alice, "/console/transfer", target="102", mode="sideways").status_code == 400
    assert state(alice)["call"]["transfer"] is None


def test_browser_agent_hangs_up(centre):
    caller, alice = accepted_browser_call(centre)
    assert act(centre, alice, "/console/hangup", leg_id=state(alice)["call"]["leg_id"]).status_code == 200
    assert "The agent has ended the call" in centre.network.call(caller.sid).heard_text
    assert state(alice)["call"] is None and agent_activity(centre, "101") == "idle"
    assert "agent_left" in centre.timeline(caller.sid)


def test_a_browser_agent_who_hangs_up_is_offered_the_waiting_caller_in_the_same_request(centre):
    caller, alice = accepted_browser_call(centre)
    with centre.db() as session:  # Bob away: Alice is billing's only agent
        session.execute(update(Agent).where(Agent.extension == "102").values(presence="away"))
    waiting = centre.network.incoming_call("+15557770912", centre.number)
    waiting.speak("a question about my bill")
    assert call_row(centre, waiting.sid).status == "queued"
    act(centre, alice, "/console/hangup", leg_id=state(alice)["call"]["leg_id"])
    # No hold turn, no clock moved: the hang-up's own follow-up offered her the waiting caller.
    offer = state(alice)["offer"]
    assert offer is not None and offer["caller"] == "+15557770912"
    assert call_row(centre, waiting.sid).status == "ringing_agent"


def test_a_browser_agent_whose_media_never_connects_sends_the_caller_back_to_be_offered_elsewhere(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    caller = caller_in_queue(centre)
    act(centre, alice, "/console/accept", leg_id=state(alice)["offer"]["leg_id"])
    room = state(alice)["call"]["room"]
    queued_at = call_row(centre, caller.sid).queued_at
    # The console's WebRTC never connects: LiveKit reports the participant's connection aborted.
    centre.livekit.abort_connection(room, "agent-101")
    centre.network.run_pending()
    assert "agent_media_failed" in centre.timeline(caller.sid)
    call = call_row(centre, caller.sid)
    assert call.status == "ringing_agent" and call.queued_at == queued_at  # offered on, in their old place
    assert centre.network.last_call(to=BOB).live
    assert state(alice)["call"] is None and agent_activity(centre, "101") == "idle"
    assert caller.waiting_on.tag == "Play"  # back on hold music, not ringing in an empty room


def check_browser_joins_now(centre) -> int:
    """The `check_browser_joins` timer's job, once, then Twilio does what it caused."""
    from app.calls.room_events import expire_browser_joins
    from app.jobs.setup import jobs_of
    from app.jobs.steps import job_step

    with centre.app.app_context(), job_step(jobs_of(centre.app).context["tools"]) as t:
        expired = expire_browser_joins(t)
    centre.network.run_pending()
    return expired


def test_a_browser_agent_who_never_joins_the_room_is_given_up_after_the_join_wait(centre):
    # A LiveKit release that does not send participant_connection_aborted says nothing at all.
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    caller = caller_in_queue(centre)
    act(centre, alice, "/console/accept", leg_id=state(alice)["offer"]["leg_id"])
    assert check_browser_joins_now(centre) == 0  # within BROWSER_JOIN_SECONDS: still waited for
    centre.network.advance(centre.app.config["SETTINGS"].browser_join_seconds + 1)
    assert check_browser_joins_now(centre) == 1
    timeline = centre.timeline(caller.sid)
    assert "browser_never_joined" in timeline and "agent_media_failed" in timeline
    assert call_row(centre, caller.sid).status == "ringing_agent" and centre.network.last_call(to=BOB).live
    assert state(alice)["call"] is None and agent_activity(centre, "101") == "idle"
    assert check_browser_joins_now(centre) == 0  # once


def test_a_browser_agent_who_joined_is_left_alone_by_the_join_wait(centre):
    caller, alice = accepted_browser_call(centre)
    centre.network.advance(centre.app.config["SETTINGS"].browser_join_seconds + 1)
    assert check_browser_joins_now(centre) == 0
    assert call_row(centre, caller.sid).status == "connected" and "browser_never_joined" not in centre.timeline(
        caller.sid)


def test_presence_toggle(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    response = act(centre, alice, "/console/presence", presence="away")
    assert response.status_code == 200 and response.get_json() == {"message": "You are away."}
    assert state(alice)["agent"]["presence"] == "away"
    caller_in_queue(centre)
    assert state(alice)["offer"] is None  # away agents are not offered calls
    assert act(centre, alice, "/console/presence", presence="asleep").status_code == 400
    act(centre, alice, "/console/presence", presence="available")
    assert state(alice)["agent"]["presence"] == "available"


def test_console_posts_need_the_csrf_token(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    response = alice.post("/console/presence", data={"presence": "offline"}, headers={"Accept": "application/json"})
    assert response.status_code == 400 and "security token" in response.get_json()["error"]
    assert state(alice)["agent"]["presence"] == "available"


def test_an_agent_sees_and_touches_only_their_own_call(centre):
    caller, alice = accepted_browser_call(centre)
    make_browser_agent(centre, "201", "carmen")
    carmen = sign_in(centre, "carmen")
    mine = state(alice)["call"]
    assert state(carmen)["call"] is None and state(carmen)["offer"] is None
    assert act(centre, carmen, "/console/hangup", leg_id=mine["leg_id"]).status_code == 404
    assert act(centre, carmen, "/console/accept", leg_id=mine["leg_id"]).status_code == 404
    assert carmen.get("/console/token").status_code == 404
    assert state(alice)["call"]["leg_id"] == mine["leg_id"]


def test_console_is_for_agents(centre):
    assert centre.client.get("/console").status_code == 302
    assert centre.client.get("/console/state").status_code == 302
    with centre.db() as session:
        create_user(session, "sue", PASSWORD, "supervisor")
    sue = centre.app.test_client()
    page = sue.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    sue.post("/login", data={"username": "sue", "password": PASSWORD, "csrf_token": token})
    assert sue.get("/console").status_code == 403


def test_caller_words_reach_the_page_only_as_text(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    caller_in_queue(centre, reason="<img src=x onerror=alert(1)> my bill")
    assert state(alice)["offer"]["reason"].startswith("<img")  # JSON carries it as data

    script = (STATIC / "console.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "outerHTML" not in script
    assert "textContent" in script
    page = alice.get("/console").get_data(as_text=True)
    assert '<script src="/static/vendor/livekit-client.umd.js"></script>' in page
    assert not re.search(r'<script[^>]+src="(https?:)?//', page)  # no CDN
    assert '<link rel="stylesheet" href="/static/console.css">' in page


@pytest.mark.parametrize("path", ["/console/accept", "/console/decline", "/console/hangup"])
def test_a_missing_leg_is_refused_in_words(centre, path):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    response = act(centre, alice, path)
    assert response.status_code == 400 and response.get_json() == {"error": "leg id is missing"}


def test_a_browser_agent_whose_tab_goes_away_is_noticed_through_livekit(centre):
    caller, alice = accepted_browser_call(centre)
    room = f"call_{call_row(centre, caller.sid).id}"
    centre.livekit.leave(room, "agent-101")  # the tab closes: LiveKit sends participant_left itself
    centre.network.run_pending()
    assert any('"participant_left"' in body and '"agent-101"' in body and status == 200
               for body, status in centre.livekit_deliveries)
    assert "The agent has ended the call" in centre.network.call(caller.sid).heard_text
    assert agent_activity(centre, "101") == "idle"


def test_a_reloaded_console_is_not_taken_for_the_agent_leaving(centre):
    from app.sandbox.livekit_server import sign_webhook, webhook_body
    from tests.conftest import LIVEKIT_API_KEY, LIVEKIT_API_SECRET

    caller, alice = accepted_browser_call(centre)
    room = f"call_{call_row(centre, caller.sid).id}"
    centre.livekit.add_participant(room, "agent-101")  # the reloaded page is already back in the room
    body = webhook_body("participant_left", room, participant_identity="agent-101", event_id="EV_old_tab")
    headers = {"Authorization": sign_webhook(body, LIVEKIT_API_KEY, LIVEKIT_API_SECRET),
               "Content-Type": "application/webhook+json"}
    assert centre.client.post("/livekit/webhook", data=body, headers=headers).status_code == 200
    centre.network.run_pending()
    assert "The agent has ended the call" not in centre.network.call(caller.sid).heard_text
    assert agent_activity(centre, "101") == "on_call"


def test_a_browser_agent_moved_while_livekit_is_asked_about_their_departure_stays_on_the_call(centre, monkeypatch):
    """LiveKit's participant_left for a browser agent is checked with LiveKit (the step commits first). A step
    that meanwhile placed the leg in another room (a swap, a three-way call) wins: the departure from the room
    the leg has left does not end it."""
    caller, _alice = accepted_browser_call(centre)
    room = f"call_{call_row(centre, caller.sid).id}"
    livekit = centre.app.extensions["gateways"].livekit
    original = livekit.list_participants

    def moved_meanwhile(asked):
        with centre.db() as session:  # as a step of the call would, while no lock is held
            session.execute(update(Leg).where(Leg.livekit_identity == "agent-101", Leg.status == "connected")
                            .values(room_name="consult_elsewhere"))
        return original(asked)

    monkeypatch.setattr(livekit, "list_participants", moved_meanwhile)
    centre.livekit.leave(room, "agent-101")  # LiveKit sends participant_left itself
    centre.network.run_pending()
    assert any('"participant_left"' in body and '"agent-101"' in body and status == 200
               for body, status in centre.livekit_deliveries)
    assert "The agent has ended the call" not in centre.network.call(caller.sid).heard_text
    assert leg_of(centre, "101").status == "connected" and agent_activity(centre, "101") == "on_call"


def test_browser_agent_swaps_and_makes_a_three_way_call_from_the_console(centre):
    caller, alice = accepted_browser_call(centre)
    call_room = call_row(centre, caller.sid).room_name
    assert act(centre, alice, "/console/transfer", target="102", mode="warm").status_code == 200
    transfer = transfer_row(centre)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    offered = state(alice)["call"]["transfer"]
    assert offered["can_swap"] and offered["can_three_way"]

    assert act(centre, alice, "/console/transfer/swap", transfer_id=transfer.id).status_code == 200
    assert state(alice)["call"]["room"] == call_room  # the console reconnects to the caller
    centre.browser_joins(call_room, "agent-101")
    assert in_room(centre.network.call(caller.sid), str(call_row(centre, caller.sid).id))
    assert centre.network.call(bob.sid).waiting_on.tag == "Play"  # Bob holds

    assert act(centre, alice, "/console/transfer/three-way", transfer_id=transfer.id).status_code == 200
    assert transfer_row(centre).state == "completed"
    assert state(alice)["call"]["room"] == call_room
    assert in_room(centre.network.call(bob.sid), str(call_row(centre, caller.sid).id))


def test_an_id_beyond_the_databases_integers_is_refused_in_words(centre):
    make_browser_agent(centre, "101", "alice")
    alice = sign_in(centre, "alice")
    response = act(centre, alice, "/console/accept", leg_id="99999999999999999999999")
    assert response.status_code == 400 and response.get_json() == {"error": "leg id is not an id"}


def test_a_browser_agent_who_hands_the_call_on_leaves_its_room_and_cannot_come_back(centre):
    caller, alice = accepted_browser_call(centre)
    call_room = call_row(centre, caller.sid).room_name
    assert "agent-101" in centre.livekit.participants[call_room]
    assert act(centre, alice, "/console/transfer", target="102", mode="warm").status_code == 200
    consult = transfer_row(centre).consult_room
    # Moved to the consult room: LiveKit removes the console from the caller's room.
    assert "agent-101" not in centre.livekit.participants.get(call_room, {})
    centre.browser_joins(consult, "agent-101")
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    assert act(centre, alice, "/console/transfer/complete", transfer_id=transfer_row(centre).id).status_code == 200
    assert "agent-101" not in centre.livekit.participants.get(consult, {})
    # A console kept open (its token, or one LiveKit refreshed, still valid) joins the caller's room again:
    centre.livekit.add_participant(call_room, "agent-101")
    centre.network.run_pending()
    assert "agent-101" not in centre.livekit.participants.get(call_room, {})
    assert "livekit_participant_refused" in centre.timeline(caller.sid, livekit=True)
    assert centre.client.get("/console/token").status_code in (302, 401, 404)  # and no new token for it


@pytest.mark.usefixtures("outside_allowed")
def test_browser_agent_transfers_to_an_outside_number_from_the_form(centre):
    caller, alice = accepted_browser_call(centre)
    page = alice.get("/console").get_data(as_text=True)
    assert 'name="outside"' in page and "numbers starting +44; SIP hosts under partner.example" in page
    placed = len(calls_placed(centre))
    response = act(centre, alice, "/console/transfer", target="", outside="+44 20 7946-0123", mode="warm")
    assert response.status_code == 200, response.get_json()
    (ring,) = calls_placed(centre)[placed:]
    assert ring.form["To"] == "+442079460123" and ring.form["From"] == centre.number
    transfer = transfer_row(centre)
    assert transfer.target_number == "+442079460123" and transfer.trigger == "web"
    assert centre.network.call(caller.sid).waiting_on.tag == "Play"  # the caller holds
    shown = state(alice)["call"]["transfer"]
    assert shown["target"] == "+442079460123" and shown["state"] == "dialing" and shown["can_cancel"]


@pytest.mark.parametrize("fields, status, error", [
    ({"outside": "+33 1 23 45 67 89"}, 409, "+33123456789 is not in a country or prefix outside transfers may call"),
    ({"outside": "sip:desk@pbx.elsewhere.example"}, 409, "pbx.elsewhere.example is not a SIP host outside transfers may call"),
    ({"outside": "<img src=x onerror=alert(1)>"}, 400,
     "<img src=x onerror=alert(1)> is not an E.164 number (+, country code, number)"),
    ({"outside": "+442079460123", "target": "102"}, 400,
     "enter an extension or a queue number, or an outside number: not both"),
    ({"outside": " "}, 400, "enter an extension or a queue number, or an outside number or SIP URI"),
])
@pytest.mark.usefixtures("outside_allowed")
def test_an_outside_destination_the_console_refuses_rings_nothing(centre, fields, status, error):
    caller, alice = accepted_browser_call(centre)
    requests_before = len(centre.network.rest_log)
    response = act(centre, alice, "/console/transfer", mode="warm", **fields)
    # JSON carries the reason as data; console.js places it with textContent only.
    assert response.status_code == status and response.get_json() == {"error": error}
    assert centre.network.rest_log[requests_before:] == []
    assert state(alice)["call"]["transfer"] is None and call_row(centre, caller.sid).status == "connected"


def test_with_no_allow_list_the_consoles_outside_field_is_off_and_a_number_is_refused(centre):
    caller, alice = accepted_browser_call(centre)
    page = alice.get("/console").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="outside"[^>]*disabled', page)
    assert "Outside transfers are off on this service" in page and "OUTSIDE_TRANSFER_ALLOW" in page
    requests_before = len(centre.network.rest_log)
    response = act(centre, alice, "/console/transfer", outside="+442079460123", mode="blind")
    assert response.status_code == 409 and response.get_json() == {"error": "outside transfers are not enabled"}
    assert centre.network.rest_log[requests_before:] == []
    assert "transfer_refused" in centre.timeline(caller.sid) and state(alice)["call"]["transfer"] is None
