"""Every way a warm transfer ends goes through one exit: its consult room is closed exactly once, and no agent is
left reserved.

Each test plays one ending on the real database (both, with TEST_DATABASE)
and reads what the steps recorded for LiveKit from their effects.
"""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.actors import Actor, ActorKind
from app.calls import reactions
from app.calls.service import end_call
from app.models import Activity, Agent, CallStatus, LegStatus, TransferState, utcnow
from app.primitives.effects import CloseRoom
from app.telephony.outcomes import Answerer, CallProgress, Missed
from app.transfers import service as transfers
from tests.fast.conftest import connected, moved_to


def warm_to(t, **target):
    """Alice's caller, on hold, while a warm transfer rings TARGET (Bob, by default) in the browser."""
    call, alice_leg = connected(t)
    found = transfers.find_target(t.session, **(target or {"extension": "102"}))
    transfer = transfers.start_transfer(t, call, found, mode="warm", trigger="api", by=Actor(ActorKind.TOKEN, "test"))
    assert transfer.state == TransferState.DIALING and transfer.consult_room
    return call, alice_leg, transfer


def consulting(t):
    call, alice_leg, transfer = warm_to(t)
    target_leg = transfer.target_leg
    transfers.target_answered(t, target_leg)
    assert transfers.target_accepted(t, target_leg) == transfers.Accepted.CONSULT
    return call, alice_leg, transfer


def later(seconds):
    start = utcnow()
    clock.use_clock(lambda: start + timedelta(seconds=seconds))


@pytest.fixture(autouse=True)
def _system_clock_after():
    yield
    clock.use_clock(None)


def _declined(reason):
    def play(t):
        call, _, transfer = warm_to(t)
        transfers.target_declined(t, transfer.target_leg, reason)
        return call, transfer
    return play


def _voicemail(t):
    _call, _alice_leg, transfer = warm_to(t)
    transfers.target_reached_machine(t, transfer.target_leg, Answerer.MACHINE)
    return transfer.call, transfer


def _completed(t):
    call, _, transfer = consulting(t)
    transfers.complete(t, transfer, requester=None)
    return call, transfer


def _three_way(t):
    call, _, transfer = consulting(t)
    transfers.three_way(t, transfer, requester=None)
    return call, transfer


def _cancelled_while_ringing(t):
    call, _, transfer = warm_to(t)
    transfers.cancel(t, transfer, "changed my mind", requester=None)
    return call, transfer


def _cancelled_in_the_consult(t):
    call, _, transfer = consulting(t)
    transfers.cancel(t, transfer, "back to the caller", requester=None)
    return call, transfer


def _stale_target(t):
    call, _, transfer = warm_to(t)
    later(t.settings.transfer_ring_timeout_seconds + transfers.STALE_TARGET_MARGIN.total_seconds() + 1)
    assert transfers.expire_stale_transfer(t, call)
    return call, transfer


def _caller_hung_up(t):
    call, _, transfer = consulting(t)
    end_call(t, call, CallProgress.COMPLETED)
    return call, transfer


def _agent_hung_up_in_the_consult(t):
    call, alice_leg, transfer = consulting(t)
    reactions.agent_left(t, alice_leg)
    return call, transfer


def _target_hung_up_in_the_consult(t):
    call, _, transfer = consulting(t)
    reactions.agent_left(t, transfer.target_leg)
    return call, transfer


def _queue_with_nobody_left(t):
    call, _, transfer = warm_to(t, queue="technical")  # Bob is technical's only agent
    transfers.target_declined(t, transfer.target_leg, Missed.DECLINED)
    return call, transfer


ENDINGS = {
    "completed": (_completed, TransferState.COMPLETED, CallStatus.CONNECTED),
    "three-way": (_three_way, TransferState.COMPLETED, CallStatus.CONNECTED),
    "cancelled while ringing": (_cancelled_while_ringing, TransferState.CANCELLED, CallStatus.CONNECTED),
    "cancelled in the consult": (_cancelled_in_the_consult, TransferState.CANCELLED, CallStatus.CONNECTED),
    "declined": (_declined(Missed.DECLINED), TransferState.DECLINED, CallStatus.CONNECTED),
    "no answer": (_declined(Missed.NO_ANSWER), TransferState.NO_ANSWER, CallStatus.CONNECTED),
    "busy": (_declined(Missed.BUSY), TransferState.NO_ANSWER, CallStatus.CONNECTED),
    "failed": (_declined(Missed.FAILED), TransferState.FAILED, CallStatus.CONNECTED),
    "voicemail": (_voicemail, TransferState.VOICEMAIL, CallStatus.CONNECTED),
    "stale target": (_stale_target, TransferState.NO_ANSWER, CallStatus.CONNECTED),
    "queue with nobody left": (_queue_with_nobody_left, TransferState.DECLINED, CallStatus.CONNECTED),
    "caller hung up": (_caller_hung_up, TransferState.CALLER_HUNG_UP, CallStatus.COMPLETED),
    "agent hung up in the consult": (_agent_hung_up_in_the_consult, TransferState.COMPLETED, CallStatus.CONNECTED),
    "target hung up in the consult": (_target_hung_up_in_the_consult, TransferState.CANCELLED, CallStatus.CONNECTED),
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_each_ending_closes_the_consult_room_once_and_leaves_no_agent_reserved(t, ending):
    play, state, call_status = ENDINGS[ending]
    call, transfer = play(t)
    assert transfer.state == state and transfer.ended_at is not None and transfer.end_reason
    closed = [e for e in t.effects if isinstance(e, CloseRoom) and e.room == transfer.consult_room]
    assert len(closed) == 1
    assert t.session.scalars(select(Agent.extension).where(Agent.activity == Activity.RINGING)).all() == []
    assert call.status == call_status
    if state == TransferState.COMPLETED:
        assert transfer.target_leg.status == LegStatus.CONNECTED and call.agent_id == transfer.target_leg.agent_id
    else:
        assert transfer.target_leg.is_final


def test_the_target_hanging_up_in_the_consult_sends_the_agent_back_to_the_caller(t):
    call, alice_leg, transfer = consulting(t)
    reactions.agent_left(t, transfer.target_leg)
    assert transfer.end_reason == "the target hung up during the consult"
    assert alice_leg.status == LegStatus.CONNECTED and alice_leg.room_name == call.room_name
    assert moved_to(t.urls.agent_rejoin(alice_leg.id, "target_gone"), alice_leg) in [getattr(e, "url", None)
                                                                                   for e in t.effects]


@pytest.mark.parametrize("how", ["menu left unanswered", "agent hung up before choosing"])
def test_a_transfer_ended_before_a_target_was_chosen_has_no_room_to_close(t, how):
    call, alice_leg = connected(t)
    transfer = transfers.open_transfer(t, call, alice_leg, trigger="dtmf", by=Actor(ActorKind.PHONE, "101"))
    if how == "menu left unanswered":
        later(transfers.STALE_MENU_AFTER.total_seconds() + 1)
        assert transfers.expire_stale_transfer(t, call)
        assert call.status == CallStatus.CONNECTED  # Alice is back with the caller
    else:
        reactions.agent_left(t, alice_leg)
        assert call.status == CallStatus.QUEUED  # the caller waits for the next agent
    assert transfer.state == TransferState.CANCELLED and transfer.consult_room is None
    assert not [e for e in t.effects if isinstance(e, CloseRoom)]
