"""Outside targets in the transfer state machine: every refusal is a look that touches nothing but the timeline."""

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from app.actors import Actor, ActorKind
from app.models import CallStatus, Event, Transfer
from app.telephony import numbers
from app.transfers import outside
from app.transfers import service as transfers
from tests.fast.conftest import connected


@pytest.mark.parametrize("allow, target, why", [
    ((), {"number": "+442079460123"}, "outside transfers are not enabled"),
    (("+44",), {"number": "+33142685300"}, "not in a country or prefix"),
    (("+44",), {"number": "442079460123"}, "not an E.164 number"),
    (("partner.example",), {"sip_uri": "sip:desk@partner.example.evil.net"}, "not a SIP host"),
    (("partner.example",), {"sip_uri": "sip:desk@pbx.partner.example?X-Header=1"}, "not a SIP URI"),
])
def test_a_refused_outside_destination_touches_nothing_and_is_on_the_timeline(t, allow, target, why):
    t.settings = replace(t.settings, outside_transfer_allow=allow)
    call, _alice_leg = connected(t)
    before = [(leg.id, leg.status, leg.placement) for leg in call.legs]
    with pytest.raises(transfers.TransferRefused, match=why):
        transfers.start_transfer(t, call, transfers.find_target(t.session, **target), mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    assert [(leg.id, leg.status, leg.placement) for leg in call.legs] == before
    assert t.session.scalar(select(func.count()).select_from(Transfer)) == 0
    assert len(t.effects) == 0 and call.status == CallStatus.CONNECTED
    (refused,) = t.session.scalars(select(Event).where(Event.name == "transfer_refused")).all()
    assert why in refused.detail["reason"]


def test_numbers_and_sip_uris_are_normalised():
    assert numbers.normalise_number(" +44 (20) 7946-0123 ") == "+442079460123"
    assert outside.normalise_sip_uri("SIP:desk@PBX.Partner.Example:5061;transport=tls") == (
        "sip:desk@pbx.partner.example:5061;transport=tls")
    for malformed in ("+0442079460123", "+44", "sip:user:secret@pbx.example", "sip:desk@pbx..example"):
        with pytest.raises(numbers.DestinationRefused):
            (outside.normalise_sip_uri if malformed.startswith("sip") else numbers.normalise_number)(malformed)


def test_an_extension_is_read_the_same_by_every_form_and_stored_after_a_comma():
    # The console and the supervisor's form read a typed destination with destination_kind, the API with
    # normalise_outside_number: one reading of an extension for all.
    for written in ("+1 212 555 0100,123#", "+1 (212) 555-0100 ;ext=123"):
        assert outside.destination_kind(written) == "number"
    assert outside.normalise_outside_number("+1 212 555 0100,123#") == "+12125550100,123#"
    assert outside.normalise_outside_number("+1 (212) 555-0100 ;EXT=123") == "+12125550100,123"
    assert outside.split_extension("+12125550100,,9*1#") == ("+12125550100", ",,9*1#")
    assert outside.send_digits_for(",,9*1#") == "wwww9*1#"
    for malformed in ("+12125550100,", "+12125550100,abc", "+12125550100;ext=1a", "+12125550100,1;ext=2"):
        with pytest.raises(numbers.DestinationRefused):
            outside.destination_kind(malformed)


def test_an_allowed_destination_passes_the_checks_normalised(t):
    t.settings = replace(t.settings, outside_transfer_allow=("+44", "partner.example"))
    call, alice_leg = connected(t)
    number = transfers.find_target(t.session, number="+44 20 7946 0123")
    transfers.refuse_target(t, alice_leg.agent_id, number, "blind")
    assert transfers.outside_destination(t, number) == "+442079460123"
    desk = transfers.find_target(t.session, sip_uri="sip:desk@PBX.partner.example")
    assert transfers.outside_destination(t, desk) == "sip:desk@pbx.partner.example"
    assert len(t.effects) == 0
