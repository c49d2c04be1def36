"""What is stored before the service's network calls: each test fails if that stops being so.

A step commits once, at its edge, and its effects run after that commit
(app/primitives/effects.py):

- a dial is an effect (`effects.Dial`): Twilio may ask for the new leg
  before calls.create has answered, so the leg must already be stored, and
  it is, since the step committed before any effect runs;
- `app/primitives/presence.identities_in_room` commits before LiveKit answers,
  the one place that does: no transaction (on SQLite, the database's write
  lock) is held while LiveKit answers.

No step waits for the transfer summary any more: the target's phone asks
again on short turns (app/voice/target.py), so nothing is held meanwhile.

Each test looks from a second connection at the moment of the network call.
"""

from __future__ import annotations

from sqlalchemy import create_engine, select, text

from app.models import Leg, LegStatus
from tests.transfer_helpers import ALICE, connected_call


def _other_connection(centre):
    """An engine of its own on the centre's database (on SQLite, one that waits for a lock only a moment)."""
    url = centre.app.config["SETTINGS"].database_url
    return create_engine(url, connect_args={"timeout": 0.3} if url.startswith("sqlite") else {})


def _can_write_call(engine, call_id: int) -> bool:
    """Whether another connection can update the call's row now (no transaction of the service holds it)."""
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL lock_timeout = '300ms'"))
            connection.execute(text("UPDATE calls SET status = status WHERE id = :id"), {"id": call_id})
        return True
    except Exception:  # noqa: BLE001 - a lock timeout, in whichever words the driver uses
        return False


def test_an_agent_leg_is_stored_before_twilio_dials_it(centre, monkeypatch):
    engine = _other_connection(centre)
    seen = []
    twilio = centre.app.extensions["gateways"].twilio
    original = twilio.create_call

    def observed(**kwargs):
        if kwargs["to"] == ALICE:
            with engine.connect() as connection:
                seen.append(connection.execute(
                    select(Leg.id).where(Leg.status == LegStatus.DIALING, Leg.twilio_call_sid.is_(None))
                ).all())
        return original(**kwargs)

    monkeypatch.setattr(twilio, "create_call", observed)
    caller = centre.dial()
    caller.press("1")
    assert seen and len(seen[0]) == 1  # Alice's leg, visible to anyone Twilio's requests reach
    engine.dispose()


def test_no_transaction_is_held_while_livekit_says_who_is_in_the_room(centre, monkeypatch):
    caller, alice = connected_call(centre)
    engine = _other_connection(centre)
    livekit = centre.app.extensions["gateways"].livekit
    original = livekit.list_participants
    writable = []

    def observed(room):
        with centre.db() as session:
            call_id = session.scalar(select(Leg.call_id).where(Leg.twilio_call_sid == caller.sid))
        writable.append(_can_write_call(engine, call_id))
        return original(room)

    monkeypatch.setattr(livekit, "list_participants", observed)
    alice.press_star()  # `*` or a far-end drop? the service asks LiveKit
    assert writable == [True]
    assert "Transfer menu" in alice.heard_text
    engine.dispose()
