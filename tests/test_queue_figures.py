"""The queues' figures as whole calls make them: callers queue, are answered, abandon, leave a message and ask for
callbacks, and the board's queue strip, the wallboard and GET /api/queues/figures count each; the board shows each
live call's IVR, queue, talk and hold times.

On the demo roster billing is Alice (101) and Bob (102); Carmen (201) is technical only and Dev (202) away, so
with Alice and Bob on calls a billing caller waits. Time is the stand-ins' virtual clock: every wait is exact.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app import clock
from app.models import Call, Event
from tests.test_supervisor_pages import signed_in, users  # noqa: F401 - the users fixture
from tests.transfer_helpers import ALICE, BOB, accepts, call_row, longest_wait_turn

# Every test has a supervisor 'sam' and agent users 'alice' and 'carmen'.
pytestmark = pytest.mark.usefixtures("users")

BILL = "I was charged twice for my internet bill"
THRESHOLD = 10


def _noon_zone() -> str:
    """An IANA zone in which it is around noon now, so no test's calls straddle the centre's midnight."""
    offset = 12 - datetime.now(timezone.utc).hour  # -11 .. +12
    return f"Etc/GMT{-offset:+d}"  # IANA's Etc zones count the other way: Etc/GMT-5 is UTC+5


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, outbound_call_allow=("+1555",), service_level_seconds=THRESHOLD,
                   centre_timezone=_noon_zone())


@pytest.fixture
def token(centre, api_headers):
    """An API token's Authorization header."""
    return api_headers(centre.app)


def _api(centre, token, query=""):
    response = centre.app.test_client().get(f"/api/queues/figures{query}", headers=token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _billing(centre, token) -> dict:
    (billing,) = _api(centre, token, "?queue=billing")["queues"]
    return billing


def _day(figures: dict) -> dict:
    """The day's figures of a queue's answer (not the line now)."""
    keys = ("answered", "abandoned", "voicemail", "callbacks", "average_answer_seconds", "service_level",
            "answered_within", "service_level_calls")
    return {key: figures[key] for key in keys}


def _answered_after(centre, number: str, ivr_seconds: float, queue_seconds: float, agent: str):
    """A billing caller who spends IVR_SECONDS in the IVR, waits QUEUE_SECONDS while AGENT's phone rings, and is
    answered; returns (caller, agent's leg)."""
    caller = centre.network.incoming_call(number, centre.number)
    centre.network.advance(ivr_seconds)
    caller.speak(BILL)
    assert call_row(centre, caller.sid).status == "ringing_agent"
    centre.network.advance(queue_seconds)
    phone = centre.agent_phone(agent)
    centre.network.answer(phone.sid)
    phone.press("1")
    assert call_row(centre, caller.sid).status == "connected"
    return caller, phone


def _waiting(centre, number: str):
    caller = centre.network.incoming_call(number, centre.number)
    caller.speak(BILL)
    assert call_row(centre, caller.sid).status == "queued"
    return caller


def test_each_figure_follows_callers_who_queue_are_answered_abandon_leave_messages_and_ask_for_callbacks(
        centre, token):
    empty = _billing(centre, token)
    assert empty["waiting"] == 0 and empty["longest_wait_seconds"] is None
    assert _day(empty) == {"answered": 0, "abandoned": 0, "voicemail": 0, "callbacks": 0,
                           "average_answer_seconds": None, "service_level": None, "answered_within": 0,
                           "service_level_calls": 0}
    assert empty["service_level_seconds"] == THRESHOLD

    # Answered 4 s after queueing (within the 10 s threshold), then one answered after 16 s (beyond it).
    first, _alice = _answered_after(centre, "+15557770601", 2, 4, ALICE)
    billing = _billing(centre, token)
    assert billing["waiting"] == 0 and billing["answered"] == 1 and billing["average_answer_seconds"] == 4
    assert billing["service_level"] == 100
    caller = centre.network.incoming_call("+15557770602", centre.number)
    caller.speak(BILL)
    centre.network.advance(6)
    line = _billing(centre, token)  # Bob's phone rings for them: they are in line
    assert line["waiting"] == 1 and line["longest_wait_seconds"] == 6
    centre.network.advance(10)
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("1")
    billing = _billing(centre, token)
    assert billing["answered"] == 2 and billing["average_answer_seconds"] == 10  # (4 + 16) / 2
    assert (billing["answered_within"], billing["service_level_calls"], billing["service_level"]) == (1, 2, 50)

    # Both agents busy: a caller waits 25 s and hangs up (abandoned, against the service level) ...
    tired = _waiting(centre, "+15557770603")
    centre.network.advance(22)
    short = _waiting(centre, "+15557770604")
    centre.network.advance(3)
    line = _billing(centre, token)
    assert line["waiting"] == 2 and line["longest_wait_seconds"] == 25
    tired.hangup()
    # ... another hangs up within the threshold (abandoned, on neither side of the service level).
    short.hangup()
    billing = _billing(centre, token)
    assert billing["waiting"] == 0 and billing["longest_wait_seconds"] is None
    assert (billing["abandoned"], billing["service_level_calls"], billing["service_level"]) == (2, 3, 33)
    assert call_row(centre, tired.sid).status == "abandoned"

    # Past the longest wait (60 s) a caller leaves a message, and the next asks for a callback.
    message = _waiting(centre, "+15557770605")
    centre.network.advance(longest_wait_turn(centre) + 1)  # seen at the first hold turn past it
    assert "To leave a message, press 1" in message.heard_text
    message.press("1")
    message.recording_done("https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE605")
    later = _waiting(centre, "+15557770606")
    centre.network.advance(longest_wait_turn(centre) + 1)
    later.press("2")
    assert "We will call you back" in later.heard_text and not later.live
    assert _day(_billing(centre, token)) == {
        "answered": 2, "abandoned": 2, "voicemail": 1, "callbacks": 1, "average_answer_seconds": 10,
        "service_level": 20, "answered_within": 1, "service_level_calls": 5}

    # Technical had none of it; the API without a filter lists every queue, by name.
    everything = _api(centre, token)
    assert [q["queue"] for q in everything["queues"]] == ["billing", "technical"]
    technical = everything["queues"][1]
    assert (technical["answered"], technical["abandoned"], technical["voicemail"], technical["callbacks"]) == (
        0, 0, 0, 0)

    # The board's strip and the wallboard say the same.
    sam = signed_in(centre, "sam")
    for path in ("/board/snapshot", "/wallboard/snapshot"):
        strip = {q["queue"]: q for q in sam.get(path).get_json()["queues"]}
        assert strip["billing"]["answered"] == 2 and strip["billing"]["service_level"] == 20
        assert strip["billing"]["voicemail"] == 1 and strip["billing"]["callbacks"] == 1
        assert strip["billing"]["abandoned"] == 2 and strip["billing"]["average_answer_seconds"] == 10

    # At the centre's next midnight the day starts again.
    first.hangup()
    caller.hangup()
    day_started = datetime.fromisoformat(everything["day_started_at"])
    midnight = day_started + timedelta(days=1)
    centre.network.advance((midnight - clock.utcnow()).total_seconds() + 1)
    tomorrow = _billing(centre, token)
    assert _day(tomorrow)["answered"] == 0 and tomorrow["service_level"] is None
    assert datetime.fromisoformat(_api(centre, token)["day_started_at"]) == midnight


def test_a_live_calls_ivr_queue_talk_and_hold_times_on_the_board(centre):
    sam = signed_in(centre, "sam")
    caller, alice = _answered_after(centre, "+15557770701", 3, 4, ALICE)
    centre.network.advance(10)

    def row():
        (call,) = [c for c in sam.get("/board/snapshot").get_json()["calls"] if c["call_sid"] == caller.sid]
        return call

    talking = row()
    assert talking["times"] == {"ivr": 3, "queue": 4, "talk": 0, "hold": 0}  # the stretch under way counts on
    assert talking["phase"] == "talk"
    assert datetime.fromisoformat(talking["phase_since"]) == clock.utcnow() - timedelta(seconds=10)

    alice.press_star()
    alice.press("2102#")  # a warm transfer to Bob: the caller is on hold
    held_at = clock.utcnow()
    centre.network.advance(6)
    held = row()
    assert held["phase"] == "hold" and held["times"] == {"ivr": 3, "queue": 4, "talk": 10, "hold": 0}
    assert datetime.fromisoformat(held["phase_since"]) == held_at

    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    alice.press_star()
    alice.press("2")  # complete: the caller talks to Bob
    centre.network.run_pending()
    back = row()
    assert back["phase"] == "talk" and back["agent"] == "Bob Okafor (102)"
    assert back["times"]["hold"] == int((datetime.fromisoformat(back["phase_since"]) - held_at).total_seconds())
    assert back["times"]["hold"] >= 6 and back["times"]["talk"] == 10
    # The page draws the same times, counting on from phase_since in the browser.
    page = sam.get("/board").get_data(as_text=True)
    assert 'data-phase="hold" data-seconds="%d"' % back["times"]["hold"] in page
    assert f'data-phase="talk" data-seconds="10" data-counting-from="{back["phase_since"]}"' in page


def test_a_caller_waiting_shows_their_queue_time_counting(centre):
    sam = signed_in(centre, "sam")
    for number in ("+15557770801", "+15557770802"):
        _answered_after(centre, number, 0, 0, ALICE if number.endswith("1") else BOB)
    caller = centre.network.incoming_call("+15557770803", centre.number)
    centre.network.advance(2)
    caller.speak(BILL)
    centre.network.advance(7)
    (waiting,) = [c for c in sam.get("/board/snapshot").get_json()["calls"] if c["call_sid"] == caller.sid]
    assert waiting["phase"] == "queue" and waiting["times"] == {"ivr": 2, "queue": 0, "talk": 0, "hold": 0}
    with centre.db() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == caller.sid))
        queued = session.scalar(select(Event.created_at).where(Event.call_id == call_id, Event.name == "call_queued"))
    assert datetime.fromisoformat(waiting["phase_since"]) == queued


def test_the_filter_shows_one_queue_and_refuses_one_that_does_not_exist(centre, token):
    sam = signed_in(centre, "sam")
    billing_caller, _alice = _answered_after(centre, "+15557770901", 0, 0, ALICE)
    technical = centre.network.incoming_call("+15557770902", centre.number)
    technical.speak("My internet router is broken")
    snapshot = sam.get("/board/snapshot?queue=technical").get_json()
    assert [q["queue"] for q in snapshot["queues"]] == ["technical"] and snapshot["queue_filter"] == "technical"
    assert [c["call_sid"] for c in snapshot["calls"]] == [technical.sid]
    assert sorted(a["extension"] for a in snapshot["agents"]) == ["102", "201", "202"]  # technical's skill
    page = sam.get("/board?queue=technical").get_data(as_text=True)
    assert 'data-stream="/board/stream?queue=technical"' in page and 'data-snapshot="/board/snapshot?queue=technical"' in page
    assert billing_caller.sid not in page and technical.sid in page
    wall = sam.get("/wallboard?queue=technical").get_data(as_text=True)
    assert 'data-stream="/wallboard/stream?queue=technical"' in wall and 'data-queue="technical"' in wall
    assert 'data-queue="billing"' not in wall

    for path in ("/board?queue=nothing", "/wallboard?queue=nothing"):
        refused = sam.get(path)
        assert refused.status_code == 400 and "there is no queue &#39;nothing&#39;" in refused.get_data(as_text=True)
    for path in ("/board/snapshot?queue=nothing", "/board/stream?queue=nothing", "/wallboard/stream?queue=nothing"):
        refused = sam.get(path)
        assert refused.status_code == 400 and "there is no queue 'nothing'" in refused.get_json()["error"]
    missing = centre.app.test_client().get("/api/queues/figures?queue=nothing", headers=token)
    assert missing.status_code == 404 and missing.get_json() == {"error": "no queue nothing"}
    unknown = centre.app.test_client().get("/api/queues/figures?queues=billing", headers=token)
    assert unknown.status_code == 400 and "queues" in unknown.get_json()["error"]


def test_the_wallboard_and_the_figures_need_their_sign_in(centre):
    anonymous = centre.app.test_client()
    assert anonymous.get("/wallboard").status_code == 302
    assert anonymous.get("/api/queues/figures").status_code == 401
    alice = signed_in(centre, "alice")
    assert alice.get("/wallboard").status_code == 403 and alice.get("/wallboard/stream").status_code == 403
    page = signed_in(centre, "sam").get("/wallboard")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'data-queue="billing"' in body and 'data-queue="technical"' in body and "Service level" in body


def test_a_call_answered_on_the_thresholds_second_is_within_it(centre, token):
    _answered_after(centre, "+15557771101", 1, THRESHOLD, ALICE)
    billing = _billing(centre, token)
    assert (billing["answered_within"], billing["service_level_calls"], billing["service_level"]) == (1, 1, 100)
    assert billing["average_answer_seconds"] == THRESHOLD


def test_the_days_figures_read_no_timeline(centre):
    """When each call first joined a queue is kept on the call (migration 0028), so the day's figures read the
    calls alone: before, each call's first `call_queued` event was looked up in its timeline, up to eight times a
    call on PostgreSQL (a board read 1.3 s for 2,000 calls of a day, docs/performance.md)."""
    from sqlalchemy import event

    from app.calls.figures import queue_figures
    from tests.test_lookup_indexes import explain

    caller = centre.dial()
    caller.press("1")  # a call of today, queued
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
        first_queued = session.scalar(select(Event.created_at).where(
            Event.call_id == call.id, Event.name == "call_queued"))
        assert call.first_queued_at == first_queued
    sent = []

    def seen(_conn, _cursor, statement, parameters, *_args) -> None:
        if "sum(CASE" in statement:
            sent.append((statement, parameters))

    engine = centre.app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with centre.db() as session:
            figures = queue_figures(session, zone="UTC", threshold_seconds=THRESHOLD, now=clock.utcnow())
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [f.waiting for f in figures if f.queue == "billing"] == [1]
    (statement, parameters), = sent
    plan = explain(engine, statement, parameters)
    assert not re.search(r"\bevents\b", plan), plan
