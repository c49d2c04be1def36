"""A transfer to a queue whose agents are all busy waits there, ahead of the queue's callers.

Whole calls through the service's webhooks on the demo roster: technical is
Bob (102, also billing) and Carmen (201); Dev (202) is away. Two callers
about the internet take Bob and Carmen; Alice (billing) then transfers her
caller to technical (queue code 2).
"""

from __future__ import annotations

from sqlalchemy import select

from app.models import Agent, Call
from tests.transfer_helpers import (
    ALICE,
    BOB,
    CARMEN,
    HOLD_TURN_SECONDS,
    accepts,
    agent_activity,
    call_row,
    connected_call,
    in_room,
    transfer_row,
)

TECHNICAL = "My internet router is broken"


def _technical_busy(centre):
    """Bob and Carmen each on a technical call; returns their (caller, agent) pairs."""
    return [connected_call(centre, number=number, reason=TECHNICAL) for number in ("+15557770001", "+15557770002")]


def _phone_of(centre, agent_call):
    """The SIP URI an agent's call rang."""
    return BOB if agent_call.to == BOB else CARMEN


def _waiting_transfer(centre, mode_key: str):
    """Bob and Carmen busy, Alice transfers her caller to technical (1: blind, 2: warm); returns
    (busy, caller, alice), busy being the technical calls' (caller, agent) pairs."""
    busy = _technical_busy(centre)
    assert {agent.to for _caller, agent in busy} == {BOB, CARMEN}
    caller, alice = connected_call(centre)
    assert alice.to == ALICE
    alice.press_star()
    alice.press(f"{mode_key}2#")  # 2: the technical queue's code
    return busy, caller, alice


def test_a_blind_transfer_to_a_busy_queue_waits_and_reaches_the_first_agent_free_before_a_later_caller(centre):
    busy, caller, alice = _waiting_transfer(centre, "1")
    assert "Everyone at technical is busy. The caller waits there, first in line" in alice.heard_text
    assert not alice.live and agent_activity(centre, "101") == "idle"
    transfer = transfer_row(centre)
    assert transfer.state == "waiting" and transfer.waiting_since is not None
    # A caller about the internet who comes later waits behind the transfer.
    later = centre.network.incoming_call("+15557770009", centre.number)
    later.speak(TECHNICAL)
    assert call_row(centre, later.sid).status == "queued"
    # The transferred caller hears where they are in the line, on their next hold turn.
    caller.music_ends()
    assert "You are being transferred to technical. Everyone there is busy; you are first in line" in caller.heard_text
    # Carmen's caller hangs up: the freed agent is rung for the transfer, not for the later caller.
    first_caller, first_agent = busy[0]
    first_caller.hangup()
    freed = centre.agent_phone(_phone_of(centre, first_agent))
    assert freed.sid != first_agent.sid
    assert call_row(centre, later.sid).status == "queued"
    centre.network.answer(freed.sid)
    assert "Transfer from Alice Moreno" in freed.heard_text
    accepts(centre, freed)
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(freed, str(call_id))
    transfer = transfer_row(centre)
    assert transfer.state == "completed"
    timeline = centre.timeline(caller.sid)
    assert timeline.index("transfer_waiting") < timeline.index("transfer_wait_over") < timeline.index(
        "transfer_completed")


def test_a_warm_transfer_waits_with_the_agent_on_hold_then_consults_the_first_agent_free(centre):
    busy, caller, alice = _waiting_transfer(centre, "2")
    assert "Everyone at technical is busy. The caller is on hold, first in line" in alice.heard_text
    assert alice.live and transfer_row(centre).state == "waiting"
    second_caller, second_agent = busy[1]
    second_caller.hangup()
    target = centre.agent_phone(_phone_of(centre, second_agent))
    assert "Calling" in alice.heard_text.rsplit("Everyone at technical is busy", 1)[1]
    centre.network.answer(target.sid)
    accepts(centre, target)
    assert transfer_row(centre).state == "consulting"
    alice.press_star()
    alice.press("2")  # complete
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(target, str(call_id))
    assert transfer_row(centre).state == "completed"


def test_a_warm_transfer_nobody_takes_within_the_wait_limit_returns_the_agent_to_the_caller(centre):
    _busy, caller, alice = _waiting_transfer(centre, "2")
    limit = centre.app.config["SETTINGS"].max_queue_wait_seconds
    # The caller's hold turns come round as the music ends: the first one past the limit ends the wait.
    centre.network.advance(limit + HOLD_TURN_SECONDS)
    transfer = transfer_row(centre)
    assert transfer.state == "no_answer" and "nobody at technical was free" in transfer.end_reason
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(alice, str(call_id))
    assert "technical did not answer. Returning you to your caller" in alice.heard_text
    assert call_row(centre, caller.sid).status == "connected"  # stored so, not left on hold


def test_a_blind_transfer_nobody_takes_within_the_wait_limit_queues_the_caller_again(centre):
    """Alice left on the blind transfer: past the limit, the caller's hold turn puts them back in their queue
    (billing), where Alice, free again, is rung. Stored so, not left on hold with the music (the step's move of
    the call was once dropped by a refresh of the call before it was written)."""
    _busy, caller, _alice = _waiting_transfer(centre, "1")
    limit = centre.app.config["SETTINGS"].max_queue_wait_seconds
    centre.network.advance(limit + HOLD_TURN_SECONDS)
    transfer = transfer_row(centre)
    assert transfer.state == "no_answer" and "nobody at technical was free" in transfer.end_reason
    assert call_row(centre, caller.sid).status == "ringing_agent"
    timeline = centre.timeline(caller.sid)
    assert timeline.index("transfer_no_answer") < timeline.index("call_requeued") < timeline.index("agent_ringing",
                                                                                                  timeline.index("call_requeued"))
    assert centre.agent_phone(ALICE).status in ("queued", "ringing")


def test_the_agent_can_go_back_to_the_caller_while_the_transfer_waits(centre):
    _busy, caller, alice = _waiting_transfer(centre, "2")
    alice.press("1")  # the hold menu: return to the caller
    transfer = transfer_row(centre)
    assert transfer.state == "cancelled"
    call_id = call_row(centre, caller.sid).id
    assert in_room(caller, str(call_id)) and in_room(alice, str(call_id))
    # Freed later, nobody is rung for the cancelled transfer.
    with centre.db() as session:
        assert session.scalar(select(Call).where(Call.call_sid == caller.sid)).status == "connected"


def test_the_caller_hanging_up_ends_the_waiting_transfer_and_frees_nothing_twice(centre):
    _busy, caller, alice = _waiting_transfer(centre, "2")
    caller.hangup()
    transfer = transfer_row(centre)
    assert transfer.state == "caller_hung_up"
    assert agent_activity(centre, "101") == "idle"


def test_a_queue_with_nobody_available_at_all_refuses_the_transfer(centre):
    with centre.db() as session:
        for agent in session.scalars(select(Agent).where(Agent.extension.in_(("102", "201")))):
            agent.presence = "away"
        session.commit()
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("12#")
    assert "Sorry, nobody at the technical queue is available" in alice.heard_text
    assert centre.network.calls_to(CARMEN) == [] and len(centre.network.calls_to(BOB)) == 0
    assert transfer_row(centre).state == "requested"  # the menu asks again


def test_the_api_starts_a_transfer_that_waits_and_says_its_place(centre, api_headers):
    busy = _technical_busy(centre)
    caller, alice = connected_call(centre)
    headers = api_headers(centre.app)
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"queue": "technical"}, headers=headers)
    assert response.status_code == 201, response.get_json()
    transfer = response.get_json()
    assert transfer["state"] == "waiting" and transfer["place_in_line"] == 1
    (waiting,) = [event for event in transfer["events"] if event["name"] == "transfer_waiting"]
    assert waiting["detail"]["place"] == 1  # the timeline says where it waits, as the API does
    centre.network.run_pending()
    assert "Everyone at technical is busy" in alice.heard_text
    busy[0][0].hangup()
    status = centre.client.get(f"/api/transfers/{transfer['id']}", headers=headers).get_json()
    assert status["state"] == "dialing" and status["place_in_line"] is None


DEV = "sip:dev@switchboard-demo.sip.twilio.com"  # technical, away on the demo roster


def test_an_agent_made_available_from_the_cli_is_rung_for_the_waiting_transfer_at_once(centre):
    _busy, caller, alice = _waiting_transfer(centre, "1")
    result = centre.app.test_cli_runner().invoke(args=["agents", "presence", "202", "available"])
    assert result.exit_code == 0, result.output
    centre.network.run_pending()
    dev = centre.agent_phone(DEV)
    assert transfer_row(centre).state == "dialing"
    centre.network.answer(dev.sid)
    accepts(centre, dev)
    assert in_room(caller, str(call_row(centre, caller.sid).id)) and transfer_row(centre).state == "completed"


def test_a_browser_agent_made_available_in_the_console_is_offered_the_waiting_transfer_at_once(centre):
    from tests.test_console import act, make_browser_agent, sign_in, state

    make_browser_agent(centre, "202", "dev")
    _busy, caller, alice = _waiting_transfer(centre, "2")
    dev = sign_in(centre, "dev")
    response = act(centre, dev, "/console/presence", presence="available")
    assert response.status_code == 200, response.get_data(as_text=True)
    offer = state(dev)["offer"]
    assert offer is not None and offer["kind"] == "transfer", offer
    assert transfer_row(centre).state == "dialing"
