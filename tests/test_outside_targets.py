"""Transfers to outside targets: an E.164 number or a SIP URI, rung only when the allow-list names it."""

from dataclasses import replace

import pytest
from sqlalchemy import select

from app.models import Call, Event, Leg
from config import ConfigError, load_settings
from tests.transfer_helpers import (
    accepts,
    call_row,
    connected_call,
    in_room,
    transfer_row,
)

OUTSIDE = "+442079460123"
PARTNER_DESK = "sip:desk@pbx.partner.example"


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, outside_transfer_allow=("+44", "+1212", "partner.example"))


def start(centre, api_headers, caller, **body):
    return centre.client.post(f"/api/calls/{caller.sid}/transfers", json=body, headers=api_headers(centre.app))


def calls_created(centre) -> list:
    return [r for r in centre.network.rest_log if r.method == "POST" and r.path.endswith("/Calls.json")]


def leg_of_transfer(centre):
    with centre.db() as session:
        return session.get(Leg, transfer_row(centre).target_leg_id)


def test_warm_transfer_to_an_outside_number_rings_it_and_completes(centre, api_headers):
    caller, alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id
    response = start(centre, api_headers, caller, number="+44 20 7946-0123", mode="warm", notes="refund agreed")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["target_number"] == OUTSIDE
    centre.network.run_pending()

    dialled = calls_created(centre)[-1].form
    # Rung by the REST API from the number the caller dialled (a Twilio number of the account).
    assert dialled["To"] == OUTSIDE and dialled["From"] == centre.number
    assert "Calling the outside number 4 4 2 0 7 9 4 6 0 1 2 3. The caller is on hold" in alice.heard_text
    assert caller.waiting_on.tag == "Play"
    outside = centre.network.last_call(to=OUTSIDE)
    centre.network.answer(outside.sid)
    assert outside.heard_text == "Transfer from Alice Moreno. Press 1 to hear the summary, or 2 to decline."
    accepts(centre, outside)
    whisper = outside.heard_text
    assert "Here is the summary." in whisper and "Press 1 to accept" in whisper
    assert "4111" not in whisper
    assert leg_of_transfer(centre).agent_id is None  # no agent row, no presence
    transfer = transfer_row(centre)
    consult = f"{call_id}-consult-{transfer.id}"
    assert transfer.state == "consulting"
    assert in_room(outside, consult) and in_room(alice, consult)

    done = centre.client.post(f"/api/transfers/{transfer.id}/complete", headers=api_headers(centre.app, "crm2"))
    assert done.status_code == 200 and done.get_json()["state"] == "completed"
    centre.network.run_pending()
    assert in_room(caller, str(call_id)) and in_room(outside, str(call_id)) and not alice.live
    timeline = centre.timeline(caller.sid)
    for step in ("transfer_dialing", "transfer_whispering", "transfer_consulting", "transfer_completed"):
        assert step in timeline

    # The outside party hangs up: the caller is thanked, nobody is left to route to.
    outside.hangup()
    centre.network.run_pending()
    assert not outside.live and "Thank you for calling" in caller.heard_text


def test_blind_transfer_to_a_sip_uri(centre, api_headers):
    caller, alice = connected_call(centre)
    call_id = call_row(centre, caller.sid).id
    response = start(centre, api_headers, caller, sip_uri=PARTNER_DESK, mode="blind")
    assert response.status_code == 201, response.get_json()
    centre.network.run_pending()
    assert "Transferring the caller" in alice.heard_text and not alice.live
    desk = centre.network.last_call(to=PARTNER_DESK)
    assert calls_created(centre)[-1].form["From"] == centre.number
    centre.network.answer(desk.sid)
    accepts(centre, desk)
    centre.network.run_pending()
    assert transfer_row(centre).state == "completed"
    assert in_room(caller, str(call_id)) and in_room(desk, str(call_id))


@pytest.mark.parametrize("body, reason", [
    ({"number": "+33142685300"}, "+33142685300 is not in a country or prefix outside transfers may call"),
    ({"number": "+12135550199"}, "+12135550199 is not in a country or prefix outside transfers may call"),
    ({"sip_uri": "sip:premium@toll.example.net"}, "toll.example.net is not a SIP host outside transfers may call"),
    ({"sip_uri": "sip:desk@notpartner.example"}, "notpartner.example is not a SIP host outside transfers may call"),
])
def test_a_destination_off_the_allow_list_is_refused_and_nothing_is_touched(centre, api_headers, body, reason):
    caller, alice = connected_call(centre)
    placed_before = len(calls_created(centre))
    requests_before = len(centre.network.rest_log)
    response = start(centre, api_headers, caller, **body)
    assert response.status_code == 409 and response.get_json() == {"error": reason}
    centre.network.run_pending()
    # No REST request to Twilio at all, no leg, no transfer, one event with the reason.
    assert len(centre.network.rest_log) == requests_before and len(calls_created(centre)) == placed_before
    assert in_room(caller, str(call_row(centre, caller.sid).id)) and alice.bridged
    with centre.db() as session:
        refused = session.scalars(select(Event).where(Event.name == "transfer_refused")).all()
        assert [e.detail["reason"] for e in refused] == [reason]
        assert session.scalars(select(Leg).where(Leg.role == "target")).all() == []
    assert "transfer_requested" not in centre.timeline(caller.sid)


@pytest.mark.parametrize("body, words", [
    ({"number": "02079460123"}, "not an E.164 number"),
    ({"number": "+44 abc"}, "not an E.164 number"),
    ({"sip_uri": "sip:desk@pbx.partner.example?X-Evil=1"}, "not a SIP URI"),
    ({"sip_uri": "desk@pbx.partner.example"}, "not a SIP URI"),
    ({"number": OUTSIDE, "extension": "102"}, "exactly one"),
])
def test_a_malformed_destination_is_a_bad_request(centre, api_headers, body, words):
    caller, _alice = connected_call(centre)
    requests_before = len(centre.network.rest_log)
    response = start(centre, api_headers, caller, **body)
    assert response.status_code == 400 and words in response.get_json()["error"]
    assert len(centre.network.rest_log) == requests_before


@pytest.mark.parametrize("outcome", ["declines", "rings_out", "voicemail"])
def test_an_outside_party_that_does_not_take_the_call_gives_the_caller_back_to_a(centre, api_headers, outcome):
    caller, alice = connected_call(centre)
    assert start(centre, api_headers, caller, number=OUTSIDE).status_code == 201
    centre.network.run_pending()
    outside = centre.network.last_call(to=OUTSIDE)
    if outcome == "declines":
        centre.network.answer(outside.sid)
        outside.press("2")
    elif outcome == "rings_out":
        centre.network.ring_out(outside.sid, "no-answer")
    else:
        # A voicemail that detection took for a person (`unknown`) records the greeting: nobody presses a key.
        centre.network.answer(outside.sid, answered_by="unknown")
        assert outside.heard_text == "Transfer from Alice Moreno. Press 1 to hear the summary, or 2 to decline."
        outside.silence()
        assert "summary." not in outside.heard_text.replace("hear the summary", "")
    centre.network.run_pending()
    transfer = transfer_row(centre)
    assert transfer.state == ("no_answer" if outcome == "rings_out" else "declined")
    assert not outside.live
    assert in_room(caller, str(call_row(centre, caller.sid).id)) and in_room(alice, str(call_row(centre, caller.sid).id))
    assert "transfer_target_missed" in centre.timeline(caller.sid)
    said = "did not answer" if outcome == "rings_out" else "declined the transfer"
    assert f"the outside number 4 4 2 0 7 9 4 6 0 1 2 3 {said}" in alice.heard_text


@pytest.mark.parametrize("answered_by", ["machine_start", "fax"])
def test_a_machine_answering_an_outside_target_hears_nothing_and_a_hears_voicemail(centre, api_headers, answered_by):
    caller, alice = connected_call(centre)
    call_id = str(call_row(centre, caller.sid).id)
    assert start(centre, api_headers, caller, number=OUTSIDE, notes="refund agreed").status_code == 201
    centre.network.run_pending()
    # Rung with Twilio's answering-machine detection; the answer URL is told who answered.
    assert calls_created(centre)[-1].form["MachineDetection"] == "Enable"
    outside = centre.network.last_call(to=OUTSIDE)
    centre.network.answer(outside.sid, answered_by=answered_by)
    centre.network.run_pending()
    # Not a word: no greeting, no summary, not the caller's number.
    assert outside.heard == [] and not outside.live
    transfer = transfer_row(centre)
    assert transfer.state == "voicemail"
    assert "The transfer to the outside number 4 4 2 0 7 9 4 6 0 1 2 3 reached voicemail. Returning you to your " \
           "caller." in alice.heard_text
    assert "declined" not in alice.heard_text
    assert in_room(caller, call_id) and in_room(alice, call_id)
    timeline = centre.timeline(caller.sid)
    assert "transfer_target_machine" in timeline and "transfer_voicemail" in timeline
    with centre.db() as session:
        machine = session.scalar(select(Event).where(Event.name == "transfer_target_machine"))
        assert machine.detail["answered_by"] == ("fax" if answered_by == "fax" else "machine")
        assert session.get(Leg, transfer.target_leg_id).end_reason == "voicemail"


@pytest.mark.parametrize("written, stored, keys", [
    ("+1 212 555 0100,123#", "+12125550100,123#", "ww123#"),
    ("+12125550100;ext=123", "+12125550100,123", "ww123"),
    ("+12125550100,,4#", "+12125550100,,4#", "wwww4#"),
])
def test_an_outside_number_with_an_extension_has_its_keys_sent_once_answered(centre, api_headers, written, stored,
                                                                             keys):
    caller, alice = connected_call(centre)
    response = start(centre, api_headers, caller, number=written)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["target_number"] == stored
    centre.network.run_pending()
    dialled = calls_created(centre)[-1].form
    # The number alone is dialled; the extension goes as SendDigits, so Twilio's detection would be ignored.
    assert dialled["To"] == "+12125550100" and dialled["SendDigits"] == keys and "MachineDetection" not in dialled
    assert "Calling the outside number 1 2 1 2 5 5 5 0 1 0 0, extension" in alice.heard_text
    desk = centre.network.last_call(to="+12125550100")
    centre.network.answer(desk.sid)
    assert desk.digits_sent == [keys]
    accepts(centre, desk)
    assert transfer_row(centre).state == "consulting"


@pytest.mark.parametrize("body, status, words", [
    ({"number": "+13105550100,123#"}, 409, "+13105550100 is not in a country or prefix outside transfers may call"),
    ({"number": "+12125550100,12a"}, 400, "no extension Twilio can send"),
    ({"number": "+12125550100;ext="}, 400, "no extension Twilio can send"),
    ({"number": "+12125550100," + "1" * 31}, 400, "no extension Twilio can send"),
])
def test_an_extension_is_checked_and_the_allow_list_is_on_the_number_alone(centre, api_headers, body, status, words):
    caller, _alice = connected_call(centre)
    placed = len(calls_created(centre))
    response = start(centre, api_headers, caller, **body)
    assert response.status_code == status and words in response.get_json()["error"], response.get_json()
    assert len(calls_created(centre)) == placed


def test_an_outside_party_sees_the_callers_number_through_the_call_token(centre, api_headers):
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], outside_transfer_caller_id="caller")
    caller, alice = connected_call(centre)
    with centre.db() as session:
        assert session.get(Call, call_row(centre, caller.sid).id).call_token == caller.call_token
    assert start(centre, api_headers, caller, number=OUTSIDE).status_code == 201
    centre.network.run_pending()
    dialled = calls_created(centre)[-1].form
    assert dialled["From"] == caller.from_ and dialled["CallToken"] == caller.call_token
    outside = centre.network.last_call(to=OUTSIDE)
    assert outside.from_ == caller.from_  # what the outside party's phone shows
    centre.network.answer(outside.sid)
    accepts(centre, outside)
    assert transfer_row(centre).state == "consulting"
    caller.hangup()
    with centre.db() as session:  # not kept with the call's history
        assert session.get(Call, call_row(centre, caller.sid).id).call_token is None


def test_twilio_refuses_a_caller_id_the_account_does_not_own_without_the_callers_call_token(centre):
    # The stand-in as Twilio documents it: From must be the account's (error 21210) unless the CallToken
    # of an inbound call from that very number comes with it.
    form = {"To": OUTSIDE, "From": "+15551230001", "Url": "https://example.test/answer"}
    status, body = centre.network.rest_create_call(form)
    assert status == 400 and body["code"] == 21210
    other = centre.network.incoming_call("+15551230077", centre.number)
    assert centre.network.rest_create_call({**form, "CallToken": other.call_token})[1].get("code") == 21210
    mine = centre.network.incoming_call("+15551230001", centre.number)
    assert centre.network.rest_create_call({**form, "CallToken": mine.call_token})[0] == 201
    centre.network.verified_caller_ids.add("+15551230001")
    assert centre.network.rest_create_call(form)[0] == 201


def test_the_allow_list_and_caller_id_settings():
    settings = load_settings({"OUTSIDE_TRANSFER_ALLOW": "+44, +1212 ,PBX.Partner.example"}, dotenv=False)
    assert settings.outside_transfer_prefixes == ("+44", "+1212")
    assert settings.outside_transfer_sip_domains == ("pbx.partner.example",)
    assert not load_settings({}, dotenv=False).outside_transfers_enabled
    with pytest.raises(ConfigError) as bad:
        load_settings({"OUTSIDE_TRANSFER_ALLOW": "+44x,premium rate"}, dotenv=False)
    assert "OUTSIDE_TRANSFER_ALLOW" in str(bad.value)
    # The caller's own number is possible through the inbound call's CallToken.
    assert load_settings({"OUTSIDE_TRANSFER_CALLER_ID": "caller"}, dotenv=False).outside_transfer_caller_id == "caller"
    with pytest.raises(ConfigError) as caller_id:
        load_settings({"OUTSIDE_TRANSFER_CALLER_ID": "them"}, dotenv=False)
    assert "OUTSIDE_TRANSFER_CALLER_ID" in str(caller_id.value)
