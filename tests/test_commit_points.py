"""What is stored before the service's network calls: each test fails if that stops being so.

A step commits once, at its edge, and its effects run after that commit
(app/primitives/effects.py):

- a dial is an effect (`effects.Dial`): Twilio may ask for the new leg
  before calls.create has answered, so the leg must already be stored, and
  it is, since the step committed before any effect runs;
- `app/primitives/presence.identities_in_room` and
  `app/supervisor/listening.switch` commit before LiveKit answers, the two
  places that do: no transaction (on SQLite, the database's write lock) is
  held while LiveKit answers.

No step waits for the transfer summary any more: the target's phone asks
again on short turns (app/voice/target.py), so nothing is held meanwhile.

Each test looks from a second connection at the moment of the network call.
"""

from __future__ import annotations

import threading

from sqlalchemy import create_engine, select, text, update

from app.models import Call, Leg, LegRole, LegStatus
from tests.transfer_helpers import ALICE, call_row, connected_call


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


def test_a_leg_given_up_while_twilio_places_its_call_is_hung_up_and_keeps_no_callsid(centre, monkeypatch):
    """The dial commits before Twilio answers; a step ending the leg meanwhile (here, another connection) wins:
    the phone Twilio placed is hung up at once, and the ended leg is not given the CallSid."""
    engine = _other_connection(centre)
    twilio = centre.app.extensions["gateways"].twilio
    original = twilio.create_call
    placed = []

    def given_up_meanwhile(**kwargs):
        sid = original(**kwargs)
        if kwargs["to"] == ALICE:
            placed.append(sid)
            with engine.begin() as connection:
                connection.execute(update(Leg).where(Leg.role == LegRole.AGENT, Leg.status == LegStatus.DIALING)
                                   .values(status=LegStatus.CANCELED))
        return sid

    monkeypatch.setattr(twilio, "create_call", given_up_meanwhile)
    caller = centre.dial()
    caller.press("1")
    assert placed, "Alice was dialled"
    assert not centre.network.call(placed[0]).live, "her phone was hung up"
    with centre.db() as session:
        (leg,) = session.scalars(select(Leg).where(Leg.role == LegRole.AGENT))
        assert leg.status == LegStatus.CANCELED and leg.twilio_call_sid is None
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


def test_a_caller_hanging_up_while_livekit_is_asked_is_what_the_step_goes_on_with(centre, monkeypatch, signed_post,
                                                                                 caplog):
    """The step takes the call's lock again after LiveKit answers: it sees the caller gone and opens no transfer.

    Without that, it went on with the call as it was before the commit, and
    the state machine refused to put an ended call on hold (IllegalMove):
    the step failed and was answered with the retry TwiML.
    """
    from app.models import Transfer
    from app.telephony import urls

    caller, alice = connected_call(centre)
    livekit = centre.app.extensions["gateways"].livekit
    original = livekit.list_participants

    def caller_hangs_up_meanwhile(room):
        present = original(room)  # the caller is still in the room as LiveKit answers...
        # ...and hangs up before the step goes on: their status callback, a request of its own (another thread,
        # as another worker would serve it), ends the call meanwhile.
        answers = []
        hang_up = threading.Thread(target=lambda: answers.append(signed_post(
            centre.client, urls.STATUS, {"CallSid": caller.sid, "CallStatus": "completed", "From": caller.from_,
                                         "To": centre.number}).status_code))
        hang_up.start()
        hang_up.join(10)
        assert answers == [200]
        return present

    monkeypatch.setattr(livekit, "list_participants", caller_hangs_up_meanwhile)
    alice.press_star()
    with centre.db() as session:
        assert session.scalar(select(Transfer.id)) is None
        assert session.scalar(select(Call.status).where(Call.call_sid == caller.sid)) == "completed"
    assert "Transfer menu" not in alice.heard_text
    failed = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "webhook_failed"]
    assert failed == []


def test_a_leg_moved_while_livekit_is_asked_about_a_star_goes_where_it_now_belongs(centre, monkeypatch):
    """The step asks LiveKit whether a `*` was pressed (it commits first); a step that meanwhile moved the agent's
    leg (a supervisor's transfer putting them on hold, say) wins: the `*`, now from where the leg was, does not
    open the transfer menu."""
    caller, alice = connected_call(centre)
    livekit = centre.app.extensions["gateways"].livekit
    original = livekit.list_participants

    def moved_meanwhile(room):
        with centre.db() as session:  # another step moved the leg (its redirect is its own to send)
            session.execute(update(Leg).where(Leg.twilio_call_sid == alice.sid)
                            .values(placement=Leg.placement + 1))
        return original(room)

    monkeypatch.setattr(livekit, "list_participants", moved_meanwhile)
    alice.press_star()
    assert "Transfer menu" not in alice.heard_text
    with centre.db() as session:
        assert session.scalar(select(Call.status).where(Call.call_sid == caller.sid)) == "connected"


def test_no_transaction_is_held_while_livekit_changes_a_supervisors_permissions(centre, monkeypatch):
    """Switching a listening supervisor to whisper asks LiveKit; the request's reads (its sign-in, the call)
    are over first: on SQLite they hold the database's write lock, and every webhook would wait meanwhile."""
    import re

    from app.auth.service import create_user

    caller, _alice = connected_call(centre)
    with centre.db() as session:
        create_user(session, "sam", "supervisor-password-1", "supervisor")
    sam = centre.app.test_client()
    login = sam.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    sam.post("/login", data={"username": "sam", "password": "supervisor-password-1", "csrf_token": token})
    csrf = re.search(r'data-csrf="([^"]+)"', sam.get(f"/calls/{caller.sid}").get_data(as_text=True)).group(1)
    assert sam.post(f"/calls/{caller.sid}/listen", data={"csrf_token": csrf}).status_code == 200
    engine = _other_connection(centre)
    livekit = centre.app.extensions["gateways"].livekit
    original = livekit.set_supervisor_mode
    call_id = call_row(centre, caller.sid).id
    writable = []

    def observed(room, identity, mode):
        writable.append(_can_write_call(engine, call_id))
        return original(room, identity, mode)

    monkeypatch.setattr(livekit, "set_supervisor_mode", observed)
    sam.post(f"/calls/{caller.sid}/listen/mode", data={"csrf_token": csrf, "mode": "whisper"})
    engine.dispose()
    assert writable == [True]
