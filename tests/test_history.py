"""The call history and the voicemail inbox: whole calls on the stand-ins, found by a part of their number, their
agent and their status, a page at a time, on the supervisor's pages and through the API; messages played through
the service, marked handled and called back."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import select, update

from app.calls.history import like_pattern
from app.gateways.twilio import TwilioError, TwilioGateway
from app.models import Agent, Call, Event
from tests.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
from tests.test_supervisor_pages import csrf_token_from, signed_in, users  # noqa: F401 - the users fixture
from tests.transfer_helpers import ALICE, call_row, calls_placed, connected_call

# Every test has a supervisor 'sam' and agent users 'alice' (101) and 'carmen' (201).
pytestmark = pytest.mark.usefixtures("users")

NUMBER = "+15555550123"
OTHER = "+15551230002"


@pytest.fixture
def api(centre, api_headers) -> dict:
    return api_headers(centre.app)


def ended_call(centre, number=NUMBER):
    """A caller talks to Alice (billing), then hangs up: a completed call; returns the caller's leg."""
    caller, _alice = connected_call(centre, number)
    caller.hangup()
    return caller


def abandoned_call(centre, number=OTHER):
    """A caller hangs up in the IVR: an abandoned call with no queue and no agent."""
    caller = centre.dial(number)
    caller.hangup()
    return caller


def voicemail_call(centre, number=NUMBER, seconds=7):
    """Everyone is away; the caller waits past the longest wait and leaves a message of SECONDS (Twilio keeps it
    and serves it at its RecordingUrl); the agents come back. Returns the caller's leg."""
    with centre.db() as session:
        session.execute(update(Agent).values(presence="away"))
    caller = centre.dial(number)
    caller.press("1")
    with centre.db() as session:  # time passes in the queue
        call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
        call.queued_at = call.queued_at - timedelta(hours=1)
    caller.music_ends()
    caller.press("1")
    caller.recording_done(duration=seconds)
    with centre.db() as session:
        session.execute(update(Agent).where(Agent.extension != "202").values(presence="available"))
    return caller


def recording_url(centre) -> str:
    (sid,) = centre.network.recordings
    return f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Recordings/{sid}"


def sids_on(page) -> list[str]:
    html = page.get_data(as_text=True)
    return [part.split('"', 1)[0] for part in html.split('data-call-sid="')[1:]]


def test_an_ended_call_is_found_by_part_of_its_number_by_agent_and_by_status(centre):
    answered = ended_call(centre)
    abandoned = abandoned_call(centre)
    sam = signed_in(centre, "sam")

    everything = sam.get("/calls")
    assert everything.status_code == 200
    assert sids_on(everything) == [abandoned.sid, answered.sid]  # newest first
    assert f'href="/calls/{answered.sid}"' in everything.get_data(as_text=True)  # each row opens the call's page

    assert sids_on(sam.get("/calls?number=5550123")) == [answered.sid]
    assert sids_on(sam.get("/calls?number=555-0123")) == [answered.sid]
    assert sids_on(sam.get("/calls?number=%2B1555123")) == [abandoned.sid]
    assert sids_on(sam.get("/calls?agent=101")) == [answered.sid]
    assert sids_on(sam.get("/calls?agent=102")) == []
    assert sids_on(sam.get("/calls?queue=billing&status=completed")) == [answered.sid]
    assert sids_on(sam.get("/calls?status=abandoned")) == [abandoned.sid]
    today = datetime.now(timezone.utc).date()
    assert sids_on(sam.get(f"/calls?since={today - timedelta(days=1)}&until={today + timedelta(days=1)}")) == [
        abandoned.sid, answered.sid]
    assert sids_on(sam.get(f"/calls?until={today - timedelta(days=1)}")) == []

    # The board's header leads to the history.
    assert 'href="/calls">Call history</a>' in sam.get("/board").get_data(as_text=True)


def test_the_history_needs_a_supervisor(centre):
    anonymous = centre.app.test_client().get("/calls?number=555")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login?next=")
    assert signed_in(centre, "alice").get("/calls").status_code == 403
    assert signed_in(centre, "alice").get("/voicemails").status_code == 403


@pytest.mark.parametrize("query, words", [
    ("since=yesterday", "since: a date (2026-12-07) or a time"),
    ("until=2026-13-01", "until: a date"),
    ("since=2026-12-08&until=2026-12-07", "since: must not be later than until"),
    ("status=lost", "status: one of ivr"),
    ("number=5%25", "number: digits only"),
    ("number=" + "5" * 70, "number: at most 64 characters"),
    ("cursor=not-a-cursor", "cursor: not one this list gave"),
])
def test_a_bad_filter_is_said_on_the_page_and_refused_by_the_api_in_words(centre, api, query, words):
    ended_call(centre)
    page = signed_in(centre, "sam").get(f"/calls?{query}")
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and words in html and "Correct the search above." in html
    answer = centre.client.get(f"/api/calls?{query}", headers=api)
    # The schema refuses what its document rules out (a status off its list, an overlong field), in its own words.
    field = words.split(":")[0]
    assert answer.status_code == 400 and (words in answer.get_json()["error"] or f"'{field}'" in answer.get_json()["error"])


def test_like_wildcards_in_a_filter_are_taken_literally(centre, api):
    ended_call(centre)
    assert like_pattern("50%_\\") == "%50\\%\\_\\\\%"
    for agent in ("%", "_", "Alice%", "A_ice"):
        found = centre.client.get("/api/calls", query_string={"agent": agent}, headers=api).get_json()
        assert found["calls"] == [], agent
    assert len(centre.client.get("/api/calls?agent=alice", headers=api).get_json()["calls"]) == 1
    assert len(centre.client.get("/api/calls?agent=LICE%20MOR", headers=api).get_json()["calls"]) == 1


def test_the_api_lists_calls_with_a_token_only(centre, api):
    answered = ended_call(centre)
    assert centre.client.get("/api/calls").status_code == 401
    assert centre.client.get("/api/calls?colour=red", headers=api).status_code == 400
    listed = centre.client.get("/api/calls?number=5550123&agent=101&status=completed&queue=billing", headers=api)
    assert listed.status_code == 200
    (row,) = listed.get_json()["calls"]
    assert row["call_sid"] == answered.sid and row["number"] == NUMBER and row["agent"] == "101"
    assert row["agent_name"] == "Alice Moreno" and row["queue"] == "billing" and row["status"] == "completed"
    assert row["duration_seconds"] is not None and row["voicemail"] is None
    assert listed.get_json()["next_cursor"] is None
    # The other calls of the API stay as they were.
    assert centre.client.get(f"/api/calls/{answered.sid}", headers=api).get_json()["status"] == "completed"


def test_calls_are_listed_fifty_a_page_newest_first_with_no_call_twice(centre, api):
    start = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    with centre.db() as session:
        for index in range(120):
            # Pairs start at the same moment: the id orders them, and the keyset must not skip or repeat one.
            session.add(Call(call_sid=f"CA{index:032x}", from_number=f"+1555000{index:04d}", status="completed",
                             created_at=start + timedelta(minutes=index // 2), ended_at=start + timedelta(hours=3)))
    seen, cursor, pages = [], None, 0
    while True:
        page = centre.client.get("/api/calls", query_string={"cursor": cursor} if cursor else {}, headers=api)
        assert page.status_code == 200
        body = page.get_json()
        seen += [row["call_sid"] for row in body["calls"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    assert seen == [f"CA{index:032x}" for index in reversed(range(120))]

    # The page: 50 rows, a link to the older ones that keeps the filters; the last page has none.
    sam = signed_in(centre, "sam")
    first = sam.get("/calls?since=2026-12-07T09:00:00Z")
    assert len(sids_on(first)) == 50
    html = first.get_data(as_text=True)
    older = html.split('rel="next"')[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert older.startswith("/calls?since=2026-12-07T09%3A00%3A00Z&cursor=")
    second = sam.get(older)
    assert sids_on(second) == seen[50:100] and "← Newest" in second.get_data(as_text=True)

    # A time with an offset is read in UTC: 10:30+01:00 is 09:30 UTC, the calls of the first half hour and up to it.
    early = centre.client.get("/api/calls", query_string={"until": "2026-12-07T10:30:00+01:00"}, headers=api)
    assert len(early.get_json()["calls"]) == 50 and early.get_json()["next_cursor"] is not None


def test_the_voicemail_inbox_plays_the_message_through_the_service_never_showing_twilios_address(centre, api):
    caller = voicemail_call(centre, seconds=7)
    raw = recording_url(centre)
    sid = raw.rsplit("/", 1)[1]
    assert call_row(centre, caller.sid).voicemail_url == raw and call_row(centre, caller.sid).voicemail_seconds == 7
    sam = signed_in(centre, "sam")

    inbox = sam.get("/voicemails")
    html = inbox.get_data(as_text=True)
    assert inbox.status_code == 200 and sids_on(inbox) == [caller.sid]
    assert f'<audio controls preload="none" src="/voicemails/{caller.sid}/audio">' in html
    assert "billing" in html and NUMBER in html and "0:07" in html and "Mark handled" in html
    assert sids_on(sam.get("/voicemails?queue=technical")) == []
    assert sids_on(sam.get("/voicemails?queue=billing&number=0123")) == [caller.sid]

    audio = sam.get(f"/voicemails/{caller.sid}/audio")
    assert audio.status_code == 200 and audio.mimetype == "audio/x-wav"
    assert audio.get_data() == centre.network.recordings[sid]["audio"] and audio.get_data()[:4] == b"RIFF"
    fetched = [r for r in centre.network.rest_log if "/Recordings/" in r.path]
    assert [(r.method, r.path.rsplit("/", 1)[1]) for r in fetched] == [("GET", f"{sid}.wav")]

    # Twilio's address of the message is in no page, snapshot, timeline or API answer.
    for shown in (html, sam.get(f"/calls/{caller.sid}").get_data(as_text=True),
                  sam.get(f"/calls/{caller.sid}/snapshot").get_data(as_text=True),
                  sam.get("/calls").get_data(as_text=True),
                  centre.client.get(f"/api/calls/{caller.sid}", headers=api).get_data(as_text=True),
                  centre.client.get("/api/calls", headers=api).get_data(as_text=True)):
        assert sid not in shown and "api.twilio.com" not in shown
    assert f'src="/voicemails/{caller.sid}/audio"' in sam.get(f"/calls/{caller.sid}").get_data(as_text=True)
    assert "voicemail_recorded" in centre.timeline(caller.sid)


def test_the_message_audio_needs_a_signed_in_supervisor(centre):
    caller = voicemail_call(centre)
    anonymous = centre.app.test_client().get(f"/voicemails/{caller.sid}/audio")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login?next=")
    assert signed_in(centre, "alice").get(f"/voicemails/{caller.sid}/audio").status_code == 403
    assert signed_in(centre, "sam").get("/voicemails/CA0000/audio").status_code == 404
    assert not [r for r in centre.network.rest_log if "/Recordings/" in r.path]


def test_a_message_twilio_will_not_give_is_a_502_in_words(centre):
    caller = voicemail_call(centre)
    centre.network.recordings.clear()
    missing = signed_in(centre, "sam").get(f"/voicemails/{caller.sid}/audio")
    assert missing.status_code == 502 and "Twilio did not give the message (HTTP 404)" in missing.get_data(as_text=True)


def test_twilio_stand_in_serves_recording_media_only_with_the_accounts_credentials(centre):
    voicemail_call(centre, seconds=3)
    url = recording_url(centre)
    assert requests.get(url + ".wav", timeout=5).status_code == 401
    assert requests.get(url + ".wav", auth=(TWILIO_ACCOUNT_SID, "wrong"), timeout=5).status_code == 401
    served = requests.get(url, auth=(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN), timeout=5)
    assert served.status_code == 200 and served.headers["Content-Type"] == "audio/x-wav"
    assert len(served.content) == 44 + 3 * 8000 * 2  # 3 s of 8 kHz 16-bit mono, after the WAV header
    resource = requests.get(url + ".json", auth=(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN), timeout=5).json()
    assert resource["duration"] == "3" and resource["sid"] == url.rsplit("/", 1)[1]


def test_the_gateway_fetches_only_this_accounts_recordings_at_twilio():
    gateway = TwilioGateway(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)
    try:
        for url in ("https://evil.example/2010-04-01/Accounts/{a}/Recordings/RE{r}",
                    "http://api.twilio.com/2010-04-01/Accounts/{a}/Recordings/RE{r}",
                    "https://api.twilio.com/2010-04-01/Accounts/AC" + "9" * 32 + "/Recordings/RE{r}",
                    "https://api.twilio.com/2010-04-01/Accounts/{a}/Calls/CA{r}", ""):
            with pytest.raises(TwilioError, match="not a recording of this account"):
                gateway.recording_audio(url.format(a=TWILIO_ACCOUNT_SID, r="0" * 32))
    finally:
        gateway.close()


def test_an_old_timeline_event_holding_the_recording_url_shows_it_nowhere(centre, api):
    caller = ended_call(centre)
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
        session.add(Event(call_id=call.id, name="voicemail_recorded",
                          detail={"recording_url": "https://api.twilio.com/2010-04-01/Recordings/RE1", "duration": 4}))
    page = signed_in(centre, "sam").get(f"/calls/{caller.sid}").get_data(as_text=True)
    answer = centre.client.get(f"/api/calls/{caller.sid}", headers=api).get_json()
    assert "RE1" not in page and "voicemail recorded" in page
    (event,) = [e for e in answer["events"] if e["name"] == "voicemail_recorded"]
    assert event["detail"] == {"duration": 4}


def test_a_message_is_marked_handled_by_whom_and_when_on_its_timeline(centre):
    caller = voicemail_call(centre)
    sam = signed_in(centre, "sam")
    token = csrf_token_from(sam.get("/voicemails"))
    assert sam.post(f"/voicemails/{caller.sid}/handled", data={}).status_code == 400  # no CSRF token
    done = sam.post(f"/voicemails/{caller.sid}/handled", data={"csrf_token": token}, follow_redirects=True)
    html = done.get_data(as_text=True)
    assert f"The message from {NUMBER} is marked handled." in html and "by sam, " in html
    row = call_row(centre, caller.sid)
    assert row.voicemail_handled_by == "sam" and row.voicemail_handled_at is not None
    again = sam.post(f"/voicemails/{caller.sid}/handled", data={"csrf_token": token}, follow_redirects=True)
    assert "was already handled by sam" in again.get_data(as_text=True)
    assert centre.timeline(caller.sid).count("voicemail_handled") == 1
    with centre.db() as session:
        (detail,) = session.scalars(select(Event.detail).where(Event.name == "voicemail_handled"))
    assert detail == {"by": "sam"}
    assert "handled by sam" in sam.get(f"/calls/{caller.sid}").get_data(as_text=True)


def test_call_back_is_off_until_outbound_calls_are_allowed_then_rings_the_chosen_agent_first(centre):
    caller = voicemail_call(centre)
    sam = signed_in(centre, "sam")
    inbox = sam.get("/voicemails").get_data(as_text=True)
    assert "Calling back is off: outbound calls are not enabled" in inbox and "OUTBOUND_CALL_ALLOW" in inbox
    token = csrf_token_from(sam.get("/voicemails"))
    refused = sam.post(f"/voicemails/{caller.sid}/call-back", data={"csrf_token": token, "agent": "101"},
                       follow_redirects=True)
    assert "Not called back: outbound calls are not enabled" in refused.get_data(as_text=True)
    placed_before = len(calls_placed(centre))

    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], outbound_call_allow=("+44",))
    assert "Not possible: +15555550123 is not in a country or prefix" in sam.get("/voicemails").get_data(as_text=True)

    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], outbound_call_allow=("+1555",))
    inbox = sam.get("/voicemails").get_data(as_text=True)
    assert '<option value="101">101 · Alice Moreno</option>' in inbox and "202 · Dev Patel" not in inbox
    unknown = sam.post(f"/voicemails/{caller.sid}/call-back", data={"csrf_token": token, "agent": "202"},
                       follow_redirects=True)
    assert "Not called back: choose an agent who is free now." in unknown.get_data(as_text=True)
    answer = sam.post(f"/voicemails/{caller.sid}/call-back", data={"csrf_token": token, "agent": "101"})
    centre.network.run_pending()
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/calls/OB")
    assert [r.form["To"] for r in calls_placed(centre)[placed_before:]] == [ALICE]
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    assert "Outbound call to" in alice.heard_text and "returning the message left on" in alice.heard_text
    assert "voicemail_called_back" in centre.timeline(caller.sid)
    with centre.db() as session:
        (detail,) = session.scalars(select(Event.detail).where(Event.name == "voicemail_called_back"))
        placed = session.scalar(select(Call).where(Call.direction == "outbound"))
    assert detail["by"] == "sam" and detail["agent"] == "101" and detail["call_sid"] == placed.call_sid
    assert placed.to_number == NUMBER
