"""The transfer state machine, step by step: refusals touch nothing; moves are recorded as effects."""

import pytest
from sqlalchemy import func, select

from app.actors import Actor, ActorKind
from app.calls import reactions
from app.calls.service import end_call
from app.models import (
    Activity,
    CallStatus,
    Leg,
    LegRole,
    LegStatus,
    Presence,
    Transfer,
    TransferState,
)
from app.primitives.effects import CloseRoom, HangUp, OpenRoom, Redirect, StartSummary
from app.primitives.legs import caller_leg
from app.telephony.outcomes import CallProgress
from app.transfers import service as transfers
from tests.fast.conftest import agent, connected, moved_to, set_presence


def _kinds(t):
    return [(type(e).__name__, getattr(e, "url", getattr(e, "room", None))) for e in t.effects]


@pytest.mark.parametrize("target, why", [
    ({"extension": "101"}, "yourself"),
    ({"extension": "201", "presence": Presence.AWAY}, "not available"),
    ({"queue": "technical", "away": ("102",)}, "nobody at the technical queue is available"),
])
def test_a_refused_transfer_touches_no_leg(t, target, why):
    call, alice_leg = connected(t)
    if "presence" in target:
        set_presence(t, target["extension"], target["presence"])
    for extension in target.get("away", ()):
        set_presence(t, extension, Presence.AWAY)
    found = transfers.find_target(t.session, extension=target.get("extension"), queue=target.get("queue"))
    before = [(leg.id, leg.status, leg.placement) for leg in call.legs]
    with pytest.raises(transfers.TransferRefused, match=why):
        transfers.start_transfer(t, call, found, mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    assert [(leg.id, leg.status, leg.placement) for leg in call.legs] == before
    assert t.session.scalar(select(func.count()).select_from(Transfer)) == 0
    assert len(t.effects) == 0 and call.status == CallStatus.CONNECTED


def test_a_busy_target_is_refused_before_the_caller_is_held(t):
    call, _ = connected(t)
    agent(t, "102").activity = Activity.ON_CALL
    with pytest.raises(transfers.TransferRefused, match="Bob is not available"):
        transfers.start_transfer(t, call, transfers.find_target(t.session, extension="102"), mode="warm",
                                 trigger="web", by=Actor(ActorKind.USER, "sam"))
    assert len(t.effects) == 0


def test_a_warm_transfer_holds_the_caller_rings_the_target_and_holds_the_agent(t):
    call, alice_leg = connected(t)
    transfer = transfers.start_transfer(t, call, transfers.find_target(t.session, extension="102"),
                                        mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    assert transfer.state == TransferState.DIALING and call.status == CallStatus.ON_HOLD
    assert agent(t, "102").activity == Activity.RINGING
    effects = list(t.effects)
    # The caller's hold comes first, once a target is sure to be rung; then the consult room and the ring.
    assert [type(e) for e in effects] == [Redirect, StartSummary, OpenRoom, Redirect]
    caller_move, alice_move = effects[0], effects[3]
    assert caller_move.url == moved_to(t.urls.caller_wait(call.id), caller_leg(call))
    assert effects[2].room == transfer.consult_room
    assert alice_move.leg_id == alice_leg.id and alice_leg.status == LegStatus.ON_HOLD


def test_cancelling_brings_everyone_back_and_closes_the_consult_room(t):
    call, alice_leg = connected(t)
    transfer = transfers.start_transfer(t, call, transfers.find_target(t.session, extension="102"),
                                        mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    target_leg = transfer.target_leg
    target_leg.twilio_call_sid = "CAbob"
    t.effects.take()
    transfers.cancel(t, transfer, "changed my mind", requester=None)
    assert transfer.state == TransferState.CANCELLED and call.status == CallStatus.CONNECTED
    # Bob's phone is cancelled: he is offered nothing until Twilio confirms it.
    assert target_leg.status == LegStatus.CANCELED and agent(t, "102").activity == Activity.LEAVING
    assert _kinds(t) == [
        ("HangUp", None),
        ("Redirect", moved_to(t.urls.agent_rejoin(alice_leg.id, "returned"), alice_leg)),
        ("Redirect", moved_to(t.urls.caller_connect(call.id), caller_leg(call))),
        ("CloseRoom", transfer.consult_room),
    ]
    reactions.target_leg_status(t, target_leg, CallProgress.CANCELED)  # Twilio's callback for Bob's leg
    assert agent(t, "102").activity == Activity.IDLE and agent(t, "102").id in t.freed_agent_ids


def test_the_caller_hanging_up_ends_every_leg_and_records_what_twilio_and_livekit_must_do(t):
    call, alice_leg = connected(t)
    ringing = Leg(call_id=call.id, role=LegRole.TARGET, agent_id=agent(t, "102").id, status=LegStatus.DIALING,
                  twilio_call_sid="CAbob")
    t.session.add(ringing)
    t.session.flush()
    t.session.refresh(call)
    end_call(t, call, CallProgress.COMPLETED)
    assert call.status == CallStatus.COMPLETED and all(leg.is_final for leg in call.legs)
    hang_up, = [e for e in t.effects if isinstance(e, HangUp)]
    tell, = [e for e in t.effects if isinstance(e, Redirect)]
    assert hang_up.call_sid == "CAbob"
    assert tell.leg_id == alice_leg.id and tell.otherwise == HangUp(call.id, "CAalice", alice_leg.id)
    assert [e.room for e in t.effects if isinstance(e, CloseRoom)] == [call.room_name]


def _technical_busy(t):
    agent(t, "102").activity = Activity.ON_CALL  # Bob, the fast roster's one technical agent


def test_a_transfer_to_a_busy_queue_waits_there_with_the_agent_on_hold_and_rings_no_one(t):
    call, alice_leg = connected(t)
    _technical_busy(t)
    transfer = transfers.start_transfer(t, call, transfers.find_target(t.session, queue="technical"),
                                        mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    assert transfer.state == TransferState.WAITING and transfer.waiting_since is not None
    assert transfer.target_leg_id is None and transfer.consult_room is None
    assert call.status == CallStatus.ON_HOLD and alice_leg.status == LegStatus.ON_HOLD
    assert [type(e) for e in t.effects] == [Redirect, StartSummary, Redirect]  # no room opened, nobody dialled
    assert list(t.effects)[2].url == moved_to(t.urls.agent_rejoin(alice_leg.id, "queued"), alice_leg)


def test_a_waiting_transfer_rings_the_first_agent_freed_then_goes_on_as_any_other(t):
    call, alice_leg = connected(t)
    _technical_busy(t)
    transfer = transfers.start_transfer(t, call, transfers.find_target(t.session, queue="technical"),
                                        mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    t.effects.take()
    bob = agent(t, "102")
    bob.activity = Activity.IDLE
    t.freed_agent_ids.add(bob.id)
    assert transfers.offer_waiting_transfers(t) == 1
    assert transfer.state == TransferState.DIALING and transfer.target_leg.agent_id == bob.id
    assert bob.activity == Activity.RINGING
    assert [type(e).__name__ for e in t.effects][:1] == ["OpenRoom"]  # the consult room, now someone rings


def test_a_waiting_transfer_past_the_wait_limit_ends_and_returns_the_agent(t):
    from datetime import timedelta

    call, alice_leg = connected(t)
    _technical_busy(t)
    transfer = transfers.start_transfer(t, call, transfers.find_target(t.session, queue="technical"),
                                        mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    transfer.waiting_since -= timedelta(seconds=t.settings.max_queue_wait_seconds + 1)
    assert transfers.expire_stale_transfer(t, call)
    assert transfer.state == TransferState.NO_ANSWER and "was free within" in transfer.end_reason
    assert call.status == CallStatus.CONNECTED and alice_leg.status == LegStatus.CONNECTED


def test_the_transfer_table_lets_a_waiting_transfer_ring_or_end_but_not_connect():
    from app.states.transfers import TRANSFER_MOVES

    waiting = TRANSFER_MOVES[TransferState.WAITING]
    assert TransferState.DIALING in waiting and TransferState.CANCELLED in waiting
    assert TransferState.CONSULTING not in waiting and TransferState.COMPLETED not in waiting
    assert TransferState.WAITING in TRANSFER_MOVES[TransferState.REQUESTED]
