"""A queued caller hears their place in line, and the queue's recent wait once the service knows it.

Whole calls on the demo roster: billing is Alice (101) and Bob (102); two
callers about a bill take them, the next ones queue.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from app.clock import utcnow
from app.models import Call, Queue
from tests.transfer_helpers import HOLD_TURN_SECONDS, call_row, connected_call

BILL = "I was charged twice for my internet bill"


def _billing_busy(centre):
    return [connected_call(centre, number=number) for number in ("+15557770101", "+15557770102")]


def _queued(centre, number: str):
    caller = centre.network.incoming_call(number, centre.number)
    caller.speak(BILL)
    assert call_row(centre, caller.sid).status == "queued"
    return caller


def test_queued_callers_hear_their_place_and_no_wait_the_service_does_not_know(centre):
    _billing_busy(centre)
    first = _queued(centre, "+15557770201")
    second = _queued(centre, "+15557770202")
    first.music_ends()
    second.music_ends()
    assert "You are first in line. Please hold." in first.heard_text
    assert "You are second in line. Please hold." in second.heard_text
    assert "waited" not in first.heard_text + second.heard_text  # no answered call yet: nothing is said
    assert "queue_position_said" in centre.timeline(first.sid)


def test_the_place_is_said_again_only_after_the_announcement_interval(centre):
    # Every one and a half hold turns here, with the longest wait (past which the caller is offered voicemail
    # instead) well beyond the turns this test lets pass.
    every = int(HOLD_TURN_SECONDS * 1.5)
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], queue_announce_seconds=every,
                                            max_queue_wait_seconds=10 * every)
    _billing_busy(centre)
    caller = _queued(centre, "+15557770201")
    caller.music_ends()
    caller.music_ends()  # the next turn, one play of the clip later, inside the interval: music only
    assert caller.heard_text.count("in line") == 1
    centre.network.advance(every)  # the hold music's turns come round meanwhile, one of them past the interval
    assert caller.heard_text.count("first in line") == 2


def test_the_recent_wait_is_said_once_enough_callers_were_answered_lately(centre):
    now = utcnow()
    with centre.db() as session:
        billing = session.query(Queue).filter_by(name="billing").one()
        for number, waited in enumerate((100, 130, 140)):
            session.add(Call(call_sid=f"CA{number:032d}", from_number="+15550000000", queue_id=billing.id,
                             status="completed", queued_at=now - timedelta(minutes=10, seconds=waited),
                             answered_at=now - timedelta(minutes=10), ended_at=now - timedelta(minutes=5)))
        session.commit()
    _billing_busy(centre)
    caller = _queued(centre, "+15557770201")
    caller.music_ends()
    assert "You are first in line. Callers have recently waited about 2 minutes. Please hold." in caller.heard_text
