"""Business hours: a caller who reaches a closed queue hears when it opens, then voicemail or a callback; a
transfer to a closed queue is refused in words; callers already waiting when it closes wait on.

Whole calls on the demo roster (billing is Alice 101 and Bob 102, technical Bob and Carmen 201), through the
service's webhooks and Twilio's and LiveKit's stand-ins. The virtual clock is first moved to a known moment
of the week (the stand-ins run nothing meanwhile), so what the caller hears does not depend on the day the
tests run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.models import Event, Queue
from tests.test_callbacks import offer_callbacks_now
from tests.transfer_helpers import (
    ALICE,
    BOB,
    CARMEN,
    call_row,
    connected_call,
    in_room,
    transfer_row,
)


@pytest.fixture
def centre_settings(centre_settings):
    # A callback is offered only to a number outbound calls may dial.
    return replace(centre_settings, outbound_call_allow=("+1555",))


BILLING_HOURS = ["--timezone", "Europe/London", "--hours", "mon-fri=09:00-17:00", "--hours", "sat=10:00-12:00"]
SATURDAY, MONDAY = 5, 0


def _to(centre, weekday: int, hour: int, minute: int = 0) -> datetime:
    """Move the virtual clock on to the next WEEKDAY (0: Monday) at HOUR:MINUTE UTC; returns that moment."""
    now = centre.clock.now()
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0) + timedelta(
        days=(weekday - now.weekday()) % 7)
    if moment <= now:
        moment += timedelta(days=7)
    centre.network.advance((moment - now).total_seconds())
    return moment


def _queue_settings(centre, name: str, code: str, *options: str) -> None:
    hints = {"billing": "bill,billing,invoice,charge", "technical": "internet,router,technical"}[name]
    saved = centre.app.test_cli_runner().invoke(
        args=["queues", "add", "--name", name, "--dtmf-code", code, "--hints", hints, *options,
              *(["--default"] if name == "billing" else [])])
    assert saved.exit_code == 0, saved.output


def _event(centre, sid: str, name: str) -> Event:
    call_id = call_row(centre, sid).id
    with centre.db() as session:
        event = session.scalar(select(Event).where(Event.call_id == call_id, Event.name == name))
        session.expunge(event)
        return event


def test_a_caller_at_a_closed_queue_hears_when_it_opens_and_leaves_a_voicemail(centre):
    _queue_settings(centre, "billing", "1", *BILLING_HOURS)
    saturday = _to(centre, SATURDAY, 13)  # past Saturday's 10:00-12:00
    caller = centre.dial()
    caller.press("1")
    assert "Billing is closed. We open again Monday at 9 AM." in caller.heard_text
    assert "To leave a message, press 1. To have us call you back, press 2." in caller.heard_text
    assert "Connecting you" not in caller.heard_text and "still busy" not in caller.heard_text
    call = call_row(centre, caller.sid)
    assert call.status == "after_hours" and call.room_name is None and call.queued_at is None
    assert centre.ringing() == [] and centre.network.calls_to(ALICE) == [] and centre.network.calls_to(BOB) == []
    closed = _event(centre, caller.sid, "queue_closed")
    monday = (saturday + timedelta(days=2)).astimezone(ZoneInfo("Europe/London")).replace(hour=9, minute=0)
    assert closed.detail == {"queue": "billing", "opens_at": monday.isoformat()}
    caller.press("1")
    assert caller.waiting_on.tag == "Record"
    caller.recording_done("https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE777")
    assert "we have your message" in caller.heard_text and not caller.live
    call = call_row(centre, caller.sid)
    assert call.status == "voicemail" and call.voicemail_url.endswith("/Recordings/RE777")
    timeline = centre.timeline(caller.sid)
    assert timeline[timeline.index("ivr_completed"):] == [
        "ivr_completed", "queue_closed", "voicemail_started", "voicemail_recorded", "call_ended"]


def test_a_caller_at_a_closed_queue_may_ask_for_a_callback(centre):
    _queue_settings(centre, "billing", "1", *BILLING_HOURS)
    _to(centre, MONDAY, 20)  # after Monday's 17:00
    caller = centre.dial("+15551239876")
    caller.speak("I have a question about my bill")
    assert "Billing is closed. We open again tomorrow at 9 AM." in caller.heard_text
    caller.press("2")
    assert "We will call you back" in caller.heard_text and not caller.live
    call = call_row(centre, caller.sid)
    assert call.status == "callback_requested" and call.from_number == "+15551239876"
    assert centre.timeline(caller.sid)[-3:] == ["queue_closed", "callback_requested", "call_ended"]
    # The callback waits for the queue to open, though Alice and Bob are available now.
    offer_callbacks_now(centre)
    assert centre.network.calls_to(ALICE) == [] and centre.network.calls_to(BOB) == []
    centre.network.advance(13 * 3600 + 60)  # Tuesday 09:01 in London
    offer_callbacks_now(centre)
    assert [c.to for c in centre.ringing()] in ([ALICE], [BOB])
    assert "callback_offered" in centre.timeline(caller.sid)


def test_a_caller_at_a_closed_queue_who_presses_nothing_hears_the_options_once_more_then_goodbye(centre):
    _queue_settings(centre, "billing", "1", *BILLING_HOURS)
    _to(centre, SATURDAY, 13)
    caller = centre.dial()
    caller.press("1")
    caller.silence()
    assert caller.heard_text.count("Billing is closed. We open again Monday at 9 AM.") == 2
    caller.press("3")  # "more waiting" means nothing at a closed queue: goodbye
    assert caller.heard[-1] == "Thank you for calling. Goodbye." and not caller.live
    assert call_row(centre, caller.sid).status == "abandoned"
    assert centre.timeline(caller.sid)[-4:] == [
        "queue_closed", "queue_closed_options_again", "queue_closed_goodbye", "call_ended"]


def test_a_holiday_closes_the_queue_all_day_in_its_own_time_zone(centre):
    now = _to(centre, MONDAY, 14)  # 09:00 in New York (winter) or 10:00 (summer): open but for the holiday
    holiday = now.astimezone(ZoneInfo("America/New_York")).date().isoformat()
    _queue_settings(centre, "billing", "1", "--timezone", "America/New_York", "--hours", "mon-fri=08:00-18:00",
                    "--holiday", holiday)
    caller = centre.dial()
    caller.press("1")
    assert "Billing is closed. We open again tomorrow at 8 AM." in caller.heard_text
    assert centre.network.calls_to(ALICE) == []


def test_an_open_queue_is_unaffected_by_its_hours(centre):
    _queue_settings(centre, "billing", "1", *BILLING_HOURS)
    _to(centre, MONDAY, 10, 30)  # within Monday's 09:00-17:00 in London, summer or winter
    caller, alice = connected_call(centre)
    assert alice.to == ALICE
    assert "Thank you. Connecting you to billing. Please hold." in caller.heard_text
    assert "closed" not in caller.heard_text
    assert "queue_closed" not in centre.timeline(caller.sid)
    assert call_row(centre, caller.sid).status == "connected"


def test_callers_already_waiting_when_their_queue_closes_wait_on_for_the_agents_still_there(centre):
    _queue_settings(centre, "billing", "1", *BILLING_HOURS)
    _to(centre, MONDAY, 15)  # within Monday's hours in London (15:00 in winter, 16:00 in summer)
    first, _alice = connected_call(centre, number="+15557770401")
    connected_call(centre, number="+15557770402")  # Bob
    waiting = centre.dial("+15557770403")
    waiting.press("1")
    assert call_row(centre, waiting.sid).status == "queued"
    # The queue closes: nobody new gets in.
    with centre.db() as session:
        session.scalar(select(Queue).where(Queue.name == "billing")).hours = {"tue": ["09:00-17:00"]}
    late = centre.dial("+15557770404")
    late.press("1")
    assert "Billing is closed. We open again tomorrow at 9 AM." in late.heard_text
    # The caller already waiting hears their place, and is rung through when Alice is free again.
    waiting.music_ends()
    assert "You are first in line" in waiting.heard_text and "closed" not in waiting.heard_text
    first.hangup()
    assert call_row(centre, waiting.sid).status == "ringing_agent"
    assert len(centre.network.calls_to(ALICE)) == 2


def test_a_transfer_to_a_closed_queue_is_refused_in_words(centre, api_headers):
    _queue_settings(centre, "technical", "2", "--timezone", "Europe/London", "--hours", "mon-fri=09:00-17:00")
    _to(centre, SATURDAY, 13)
    caller, alice = connected_call(centre)  # billing has no hours: always open
    alice.press_star()
    alice.press("22#")  # a warm transfer to technical
    assert "Sorry, the technical queue is closed; it opens again Monday at 9 AM." in alice.heard_text
    assert centre.network.calls_to(CARMEN) == [] and centre.network.calls_to(BOB) == []
    assert transfer_row(centre).state == "requested"  # the menu asks again
    alice.press("#")  # back to the caller
    assert in_room(caller, str(call_row(centre, caller.sid).id))
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"queue": "technical"},
                                  headers=api_headers(centre.app))
    assert response.status_code == 409
    assert response.get_json()["error"] == "the technical queue is closed; it opens again Monday at 9 AM"


def test_the_centre_time_zone_is_used_by_a_queue_that_names_none(centre):
    _queue_settings(centre, "billing", "1", "--hours", "mon-fri=09:00-17:00")
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], centre_timezone="Asia/Tokyo")
    _to(centre, MONDAY, 3)  # 12:00 in Tokyo (no summer time there); 03:00 UTC would be closed
    caller, alice = connected_call(centre)
    assert alice.to == ALICE and "closed" not in caller.heard_text
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], centre_timezone="UTC")
    other = centre.dial("+15557770499")
    other.press("1")
    assert "Billing is closed. We open again today at 9 AM." in other.heard_text  # 03:00 UTC
