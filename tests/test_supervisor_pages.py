"""The supervisor pages through the Flask test client, with whole calls driven on the simulated Twilio."""

import json
import re
from dataclasses import replace

import pytest
from sqlalchemy import select

from app.auth.service import create_user
from app.models import Agent, Event, Transfer, Utterance
from app.sandbox import scenarios
from app.supervisor.stream import StreamTiming
from tests.transfer_helpers import (
    ALICE,
    BOB,
    accepts,
    call_row,
    calls_placed,
    connected_call,
    transfer_row,
)

PASSWORD = "a-long-test-password-1"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def users(centre):
    """A supervisor 'sam', agent users 'alice' (101) and 'carmen' (201)."""
    with centre.db() as session:
        create_user(session, "sam", PASSWORD, "supervisor")
        create_user(session, "alice", PASSWORD, "agent", agent_extension="101")
        create_user(session, "carmen", PASSWORD, "agent", agent_extension="201")
    centre.app.config["SUPERVISOR_STREAM_TIMING"] = StreamTiming(poll_seconds=0.05, max_seconds=2)


def csrf_token_from(response) -> str:
    match = CSRF_INPUT.search(response.get_data(as_text=True))
    assert match, "no csrf_token input on the page"
    return match.group(1)


def signed_in(centre, username):
    client = centre.app.test_client()
    token = csrf_token_from(client.get("/login"))
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def sse_snapshots(response, count=1):
    """Read the first COUNT snapshot events of a streamed response, then close it."""
    snapshots, buffer = [], ""
    try:
        for chunk in response.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in buffer:
                message, buffer = buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
                if fields.get("event") == "snapshot":
                    snapshots.append((fields["id"], json.loads(fields["data"])))
            if len(snapshots) >= count:
                break
    finally:
        response.close()
    return snapshots


def unread_body(centre, client, path):
    """Call the app as a WSGI server would, with CLIENT's session; return the body unread, and the status."""
    # The test client always reads a body's first chunk, but a server may close a body before that.
    from werkzeug.test import EnvironBuilder

    cookie = client.get_cookie(centre.app.config["SESSION_COOKIE_NAME"])
    environ = EnvironBuilder(path=path, headers={"Cookie": f"{cookie.key}={cookie.value}"}).get_environ()
    started = []
    body = centre.app(environ, lambda status, headers, exc_info=None: started.append(status))
    return body, started[0]


def warm_transfer_by_dtmf(centre):
    """Alice transfers her caller to Bob with *2102#, Bob accepts, Alice completes; returns the caller."""
    return scenarios.warm_transfer_by_dtmf(centre.network, centre.number)[0]


def test_board_needs_a_signed_in_supervisor(centre, users):
    anonymous = centre.app.test_client().get("/board")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login?next=%2Fboard")
    refused = signed_in(centre, "alice").get("/board")
    assert refused.status_code == 403 and "Not for your role" in refused.get_data(as_text=True)
    assert signed_in(centre, "alice").get("/board/stream").status_code == 403
    assert signed_in(centre, "sam").get("/board").status_code == 200


def test_a_placed_call_shows_on_the_board_snapshot_and_stream(centre, users):
    sam = signed_in(centre, "sam")
    caller, _alice = connected_call(centre)

    snapshot = sam.get("/board/snapshot").get_json()
    (row,) = snapshot["calls"]
    assert row["call_sid"] == caller.sid and row["state"] == "connected" and row["caller"] == "+15551230001"
    assert row["queue"] == "billing" and row["agent"] == "Alice Moreno (101)" and row["href"] == f"/calls/{caller.sid}"
    alice = next(a for a in snapshot["agents"] if a["extension"] == "101")
    assert alice["activity"] == "on_call" and alice["current_call"] == caller.sid

    ((first_id, streamed),) = sse_snapshots(sam.get("/board/stream", buffered=False))
    assert [c["call_sid"] for c in streamed["calls"]] == [caller.sid]
    assert sam.get("/board").get_data(as_text=True).count(f'href="/calls/{caller.sid}"') >= 1

    # A viewer coming back with the id it last saw gets nothing until the board changes.
    resumed = sam.get("/board/stream", buffered=False, headers={"Last-Event-ID": first_id})
    caller.hangup()
    ((later_id, after),) = sse_snapshots(resumed)
    assert later_id != first_id and after["calls"] == []


def test_the_call_page_shows_timeline_transcript_and_summary(centre, users):
    caller = warm_transfer_by_dtmf(centre)
    page = signed_in(centre, "sam").get(f"/calls/{caller.sid}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for step in ("transfer requested", "caller on hold", "transfer dialing", "summary ready", "transfer completed"):
        assert step in html
    # One assertion each, with the stored lines, so that a failure says which part of the transcript was off.
    with centre.db() as session:
        stored = [(u.speaker, u.text) for u in session.scalars(select(Utterance).order_by(Utterance.id))]
    assert "two charges of 49 dollars" in html, stored
    assert "[card number removed]" in html, stored
    assert "4111" not in html, stored
    transfer = transfer_row(centre)
    assert transfer.summary_spoken in html.replace("&#39;", "'")
    assert "Written by the LLM" in html and "gpt-4o-mini" in html and f"{transfer.summary_latency_ms} ms" in html
    assert "Reason" in html and "Expects next" in html
    # Dead air, step by step: the caller put on hold, the target waiting for the summary.
    assert "Dead air" in html
    assert "The caller, from being put on hold to the hold message" in html
    assert "The transfer&#39;s target, from answering (greeted at once) to the summary" in html

    data = signed_in(centre, "sam").get(f"/calls/{caller.sid}/snapshot").get_json()
    assert [row["who"].split(",")[0] for row in data["dead_air"]] == ["The caller", "The transfer's target"]
    assert all(row["ms"] >= 0 for row in data["dead_air"])
    (shown,) = data["transfers"]
    assert shown["state"] == "completed" and shown["summary"]["source"] == "llm"
    assert {"speaker": "agent"}.items() <= data["transcript"][-1].items()


def test_a_fallback_summary_is_shown_as_such(centre, users):
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    with centre.db() as session:
        transfer = session.scalar(select(Transfer))
        # As if the LLM had failed: the whisper stored the fallback.
        transfer.summary_source, transfer.summary_spoken = "fallback", "Caller about a double charge."
        transfer.summary_error = "deadline: no summary within 3 s"
    html = signed_in(centre, "sam").get(f"/calls/{caller.sid}").get_data(as_text=True)
    assert "Fallback summary: written without the LLM" in html and "deadline: no summary within 3 s" in html


def test_what_the_caller_said_is_escaped(centre, users):
    caller = centre.dial()
    caller.speak("<script>alert('pwned')</script> billing please")
    caller.transcribe("<img src=x onerror=alert(1)> hello", track="inbound_track")
    html = signed_in(centre, "sam").get(f"/calls/{caller.sid}").get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html


def test_an_agent_sees_only_calls_they_are_on_or_talked_on(centre, users):
    caller, _alice = connected_call(centre)
    assert signed_in(centre, "alice").get(f"/calls/{caller.sid}").status_code == 200
    refused = signed_in(centre, "carmen").get(f"/calls/{caller.sid}")
    assert refused.status_code == 403 and "Not your call" in refused.get_data(as_text=True)
    assert signed_in(centre, "carmen").get(f"/calls/{caller.sid}/stream").status_code == 403
    assert signed_in(centre, "sam").get("/calls/CAnothing").status_code == 404
    # An agent may look, but the transfer buttons are the supervisor's.
    assert 'action="/calls/' not in signed_in(centre, "alice").get(f"/calls/{caller.sid}").get_data(as_text=True)


def stream_events(response):
    """The event names of a streamed response, as it yields them."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            message, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
            if "event" in fields:
                yield fields["event"]


def test_an_agent_who_declined_the_whisper_can_no_longer_read_the_call(centre, users):
    with centre.db() as session:
        create_user(session, "bob", PASSWORD, "agent", agent_extension="102")
    alice, bob, carmen, sam = (signed_in(centre, name) for name in ("alice", "bob", "carmen", "sam"))
    caller = centre.dial()
    caller.speak("my bill doubled")
    alice_phone = centre.agent_phone(ALICE)
    centre.network.answer(alice_phone.sid)
    pages = [f"/calls/{caller.sid}", f"/calls/{caller.sid}/snapshot"]
    # While she hears the whisper she is on the call: its page is open to her, and followed.
    assert [alice.get(page).status_code for page in pages] == [200, 200]
    stream = alice.get(f"/calls/{caller.sid}/stream", buffered=False)
    events = stream_events(stream)
    assert next(events) == "snapshot"

    alice_phone.press("2")  # declines
    try:
        assert next(events) == "gone", "the page she had open stops following the call"
    finally:
        stream.close()
    for page in pages + [f"/calls/{caller.sid}/stream"]:
        assert alice.get(page).status_code == 403, page

    centre.network.answer(centre.agent_phone(BOB).sid)
    centre.agent_phone(BOB).press("1")
    assert call_row(centre, caller.sid).status == "connected"
    assert [bob.get(page).status_code for page in pages] == [200, 200]
    assert carmen.get(pages[0]).status_code == 403

    caller.hangup()
    assert call_row(centre, caller.sid).is_final
    # After the call: the agent who answered still reads it, the one who declined and one never rung do not.
    assert [bob.get(page).status_code for page in pages] == [200, 200]
    assert "my bill doubled" in bob.get(pages[0]).get_data(as_text=True)
    assert [alice.get(page).status_code for page in pages] == [403, 403]
    assert carmen.get(pages[0]).status_code == 403
    assert sam.get(pages[0]).status_code == 200


def test_a_post_without_csrf_token_is_refused(centre, users):
    caller, _alice = connected_call(centre)
    response = signed_in(centre, "sam").post(f"/calls/{caller.sid}/transfer", data={"target": "agent:102", "mode": "warm"})
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)
    assert call_row(centre, caller.sid).status == "connected"
    with centre.db() as session:
        assert session.scalar(select(Transfer)) is None


def test_a_transfer_from_the_form_rings_the_target_and_completes(centre, users):
    caller, alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    assert 'id="transfer-form"' in page.get_data(as_text=True)
    response = sam.post(
        f"/calls/{caller.sid}/transfer",
        data={"csrf_token": csrf_token_from(page), "target": "agent:102", "mode": "warm", "notes": "VIP, <b>be nice</b>"},
    )
    assert response.status_code == 302
    transfer = transfer_row(centre)
    assert transfer.state == "dialing" and transfer.trigger == "web" and transfer.notes == "VIP, <b>be nice</b>"
    bob = centre.agent_phone(BOB)
    assert bob.status == "queued"  # Twilio was asked to ring Bob
    centre.network.run_pending()
    assert caller.waiting_on.tag == "Play"  # the caller hears music

    page = sam.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Transfer started: calling Bob Okafor." in html and "VIP, &lt;b&gt;be nice&lt;/b&gt;" in html
    assert "/complete" not in html  # nothing to complete while Bob's phone rings

    centre.network.answer(bob.sid)
    accepts(centre, bob)
    assert transfer_row(centre).state == "consulting"
    page = sam.get(f"/calls/{caller.sid}")
    assert transfer_row(centre).summary_spoken in page.get_data(as_text=True).replace("&#39;", "'")
    done = sam.post(f"/calls/{caller.sid}/transfers/{transfer.id}/complete", data={"csrf_token": csrf_token_from(page)})
    assert done.status_code == 302
    centre.network.run_pending()
    assert transfer_row(centre).state == "completed"
    assert call_row(centre, caller.sid).agent_id is not None and not alice.live
    assert "Transfer completed" in sam.get(done.headers["Location"]).get_data(as_text=True)


def test_refusals_are_shown_in_words(centre, users):
    caller, _alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    response = sam.post(
        f"/calls/{caller.sid}/transfer",
        data={"csrf_token": csrf_token_from(page), "target": "agent:202", "mode": "warm"},
    )
    assert response.status_code == 409
    assert "The transfer was refused: Dev Patel is not available." in response.get_data(as_text=True)
    unknown = sam.post(f"/calls/{caller.sid}/transfer", data={"csrf_token": csrf_token_from(page), "target": "agent:999"})
    assert unknown.status_code == 400 and "Check the form" in unknown.get_data(as_text=True)
    centre.network.run_pending()
    assert call_row(centre, caller.sid).status == "connected"


def test_a_nul_character_in_a_form_or_the_api_is_refused_in_words_and_changes_nothing(centre, users, api_headers):
    # PostgreSQL's text columns cannot hold NUL: refused before any view, not a database error.
    caller, _alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    form = sam.post(f"/calls/{caller.sid}/transfer",
                    data={"csrf_token": csrf_token_from(page), "target": "agent:102", "notes": "VIP\x00"})
    assert form.status_code == 400 and "NUL characters" in form.get_data(as_text=True)
    api = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "\x00"},
                             headers=api_headers(centre.app))
    assert api.status_code == 400 and api.get_json() == {"error": "text may not contain NUL characters"}
    with centre.db() as session:
        assert session.scalar(select(Transfer)) is None
    assert call_row(centre, caller.sid).status == "connected"


def test_the_stream_beats_and_ends_after_its_time(centre):
    from app.supervisor.stream import follow

    ticks = iter(range(0, 1000, 10))
    timing = StreamTiming(poll_seconds=10, refresh_seconds=1000, heartbeat_seconds=15, max_seconds=60)
    make_session = centre.app.extensions["db_sessionmaker"]
    messages = list(follow(make_session, lambda s: "7", lambda s: {"calls": []}, None, timing,
                           sleep=lambda _s: None, clock=lambda: next(ticks)))
    assert messages[0] == "retry: 2000\n\n" and messages[1].startswith("event: snapshot\nid: 7-")
    assert messages[2:] == [": still here\n\n"] * 2  # nothing changed: only heartbeats, then the end
    resumed = list(follow(make_session, lambda s: "7", lambda s: {"calls": []}, messages[1].split("\n")[1][4:],
                          timing, sleep=lambda _s: None, clock=lambda: next(ticks)))
    assert not any(m.startswith("event: snapshot") for m in resumed)


def test_live_streams_are_capped_and_the_pages_can_poll_meanwhile(centre, users):
    # The cap is read when the first stream starts: WEB_THREADS 3 allows one stream per process.
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], web_threads=3)
    sam = signed_in(centre, "sam")
    caller, _alice = connected_call(centre)

    held, status = unread_body(centre, sam, "/board/stream")  # the view has run and holds the slot
    assert status.startswith("200")
    refused = sam.get("/board/stream", buffered=False)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    assert refused.is_json and "try the stream again later" in refused.get_json()["error"]
    assert sam.get(f"/calls/{caller.sid}/stream").status_code == 503
    assert signed_in(centre, "alice").get(f"/calls/{caller.sid}/stream").status_code == 503

    # Snapshots and webhooks are not capped: the caller hangs up and polling sees it.
    assert sam.get(f"/calls/{caller.sid}/snapshot").get_json()["call"]["live"] is True
    caller.hangup()
    assert sam.get("/board/snapshot").get_json()["calls"] == []
    assert sam.get(f"/calls/{caller.sid}/snapshot").get_json()["call"]["live"] is False

    held.close()  # a viewer gone before the first byte gives the slot back (the body never started)
    read_then_left = sam.get("/board/stream", buffered=False)
    assert read_then_left.status_code == 200
    assert sam.get("/board/stream").status_code == 503
    assert len(sse_snapshots(read_then_left)) == 1  # so does one that read and went away

    centre.app.config["SUPERVISOR_STREAM_TIMING"] = StreamTiming(poll_seconds=0.01, max_seconds=0.05)
    ran_out = sam.get(f"/calls/{caller.sid}/stream")  # read to its end
    assert ran_out.status_code == 200 and "event: snapshot" in ran_out.get_data(as_text=True)
    last = sam.get("/board/stream", buffered=False)  # and so does one that ran out of time
    assert last.status_code == 200
    last.close()


def test_a_stream_slot_is_given_back_once():
    from app.supervisor.stream import StreamGate

    gate = StreamGate(1)
    slot = gate.enter()
    assert slot is not None and gate.enter() is None
    events = slot.guard(iter(["a", "b"]))
    assert next(events) == "a"
    events.close()  # GeneratorExit, as when the server closes the body
    slot.release()  # a second release (the response's close) changes nothing
    again = gate.enter()
    assert again is not None and gate.enter() is None
    assert list(again.guard(iter(["a"]))) == ["a"]
    assert gate.enter() is not None


@pytest.mark.browser
def test_a_refused_page_polls_and_says_so(browser, live_centre):
    from app.supervisor.stream import StreamGate

    centre = live_centre
    gate = centre.app.extensions["supervisor_stream_gate"] = StreamGate(1)
    held = gate.enter()  # every stream is refused while this is held
    context = browser.new_context(base_url=centre.url)
    context.set_default_timeout(15000)
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", "sam")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Polling: updates every few seconds (live updates are busy).")

    caller, _alice = connected_call(centre)
    page.locator(f'tr[data-call-sid="{caller.sid}"]', has_text="connected").wait_for()
    page.goto(f"/calls/{caller.sid}")
    page.wait_for_selector("text=Polling: this page refreshes every few seconds (live updates are busy).")
    caller.hangup()
    page.wait_for_selector("text=The call has ended.")
    held.release()
    context.close()


def test_a_call_stream_says_gone_and_ends_when_the_call_disappears(centre):
    from app.supervisor.stream import follow

    timing = StreamTiming(poll_seconds=10, refresh_seconds=1000, heartbeat_seconds=15, max_seconds=60)
    make_session = centre.app.extensions["db_sessionmaker"]
    ticks = iter(range(0, 1000, 10))
    messages = list(follow(make_session, lambda s: "7", lambda s: None, None, timing,
                           sleep=lambda _s: None, clock=lambda: next(ticks)))
    assert messages == ["retry: 2000\n\n", "event: gone\ndata: {}\n\n"]


def test_card_numbers_in_notes_and_split_across_utterances_never_reach_rows_pages_api_or_the_llm(
        centre, users, api_headers):
    caller, alice = connected_call(centre)
    # Read out in two breaths: neither result holds a whole card number by itself.
    caller.transcribe("the other card is 5500 0000", track="inbound_track")
    caller.transcribe("0000 0004, can you check it", track="inbound_track")
    notes = "VIP. Card 4000.0566.5566.5556, IBAN GB82 WEST 1234 5698 7654 32"
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers", json={"extension": "102", "notes": notes},
                                  headers=api_headers(centre.app))
    assert response.status_code == 201, response.get_json()
    centre.network.answer(centre.agent_phone(BOB).sid)  # Bob hears the whisper: the summary is made
    secrets = ("5566", "5556", "0004", "5500 0000", "WEST 1234", "7654")
    with centre.db() as session:
        stored = [u.text for u in session.scalars(select(Utterance))] + [t.notes for t in session.scalars(select(Transfer))]
    api = json.dumps(centre.client.get(f"/api/transfers/{response.get_json()['id']}",
                                       headers=api_headers(centre.app, "crm2")).get_json())
    page = signed_in(centre, "sam").get(f"/calls/{caller.sid}").get_data(as_text=True)
    sent = json.dumps([r.body for r in centre.llm.requests])
    assert centre.llm.requests and "VIP." in sent  # the notes did reach the LLM, redacted
    for place, text in (("rows", json.dumps(stored)), ("api", api), ("page", page), ("llm", sent)):
        assert not any(secret in text for secret in secrets), place
    assert "[card number removed]" in json.dumps(stored) and "[IBAN removed]" in api
    assert "VIP." in api


def test_the_transfer_form_starts_at_choose_shows_each_targets_state_and_refuses_for_free(centre, users):
    caller, alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    html = page.get_data(as_text=True)
    options = re.findall(r"<option[^>]*>([^<]*)</option>", html)
    assert options[0] == "Choose…"
    assert "101 · Alice Moreno (on this call)" in options and "102 · Bob Okafor (free)" in options
    assert "billing queue (1 free)" in options  # Bob; Alice is on the call, Dev is away
    sent = len(centre.network.rest_log)
    for target in ("", "agent:101"):  # nothing chosen; the call's own agent
        refused = sam.post(f"/calls/{caller.sid}/transfer",
                           data={"csrf_token": csrf_token_from(page), "target": target, "mode": "warm"})
        assert refused.status_code in (400, 409)
    assert centre.network.rest_log[sent:] == []  # no leg was touched
    with centre.db() as session:
        assert session.scalar(select(Transfer)) is None  # and no transfer, so no summary, was made


def test_a_supervisor_swaps_then_makes_a_three_way_call_from_the_call_page(centre, users):
    caller, alice, bob = scenarios.consulting(centre.network, centre.number)
    transfer_id = transfer_row(centre).id
    sam = signed_in(centre, "sam")
    data = sam.get(f"/calls/{caller.sid}/snapshot").get_json()
    offered = next(t for t in data["transfers"] if t["id"] == transfer_id)
    assert offered["can_swap"] and offered["can_three_way"]
    page = sam.get(f"/calls/{caller.sid}")
    html = page.get_data(as_text=True)  # the page drawn by the server offers what its script draws
    for action in ("complete", "three-way", "swap", "cancel"):
        assert f'action="/calls/{caller.sid}/transfers/{transfer_id}/{action}"' in html
    for action in ("swap", "three-way"):
        done = sam.post(f"/calls/{caller.sid}/transfers/{transfer_id}/{action}",
                        data={"csrf_token": csrf_token_from(page)})
        centre.network.run_pending()
        assert done.status_code == 302
    call_id = str(call_row(centre, caller.sid).id)
    assert transfer_row(centre).state == "completed"
    assert all(leg.live and leg.dialed[-1].target.startswith(f"sip:{call_id}@")
               for leg in (centre.network.call(caller.sid), centre.network.call(alice.sid),
                           centre.network.call(bob.sid)))


@pytest.mark.parametrize("target, typed, dialled", [
    ("", "+44 20 7946-0123", "+442079460123"),  # nothing chosen: the typed number is the target
    ("outside", "sip:desk@PBX.partner.example", "sip:desk@pbx.partner.example"),
])
def test_an_outside_destination_typed_in_the_form_is_rung(centre, users, outside_allowed, target, typed, dialled):
    caller, alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    html = page.get_data(as_text=True)
    assert 'name="outside"' in html and "numbers starting +44; SIP hosts under partner.example" in html
    assert '<option value="outside">Outside number or SIP URI (type it below)</option>' in html
    placed = len(calls_placed(centre))
    response = sam.post(f"/calls/{caller.sid}/transfer", data={
        "csrf_token": csrf_token_from(page), "target": target, "outside": typed, "mode": "warm"})
    assert response.status_code == 302, response.get_data(as_text=True)
    (ring,) = calls_placed(centre)[placed:]
    assert ring.form["To"] == dialled and ring.form["From"] == centre.number
    transfer = transfer_row(centre)
    assert transfer.target_number == dialled and transfer.trigger == "web" and transfer.state == "dialing"
    centre.network.run_pending()
    assert caller.waiting_on.tag == "Play"  # the caller holds while the outside party rings
    shown = sam.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Transfer started: calling {typed}." in shown and f"Warm transfer to outside {dialled}" in shown


@pytest.mark.parametrize("target, typed, status, reason", [
    ("", "+33 1 23 45 67 89", 409,
     "The transfer was refused: +33123456789 is not in a country or prefix outside transfers may call."),
    ("outside", "sip:desk@pbx.elsewhere.example", 409,
     "The transfer was refused: pbx.elsewhere.example is not a SIP host outside transfers may call."),
    ("", "<script>alert(1)</script>", 400,
     "Outside number or SIP URI: &lt;script&gt;alert(1)&lt;/script&gt; is not an E.164 number"),
    ("outside", "sip:desk@pbx.partner.example?X-Evil=1", 400, "is not a SIP URI (sip:user@host, no headers)."),
    ("agent:102", "+442079460123", 400, "Choose an agent or a queue, or type an outside number: not both."),
    ("outside", "  ", 400, "Choose who to transfer the call to, or type an outside number or SIP URI."),
])
def test_a_refused_outside_destination_is_shown_in_words_and_sends_nothing(
        centre, users, outside_allowed, target, typed, status, reason):
    caller, alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    requests_before = len(centre.network.rest_log)
    response = sam.post(f"/calls/{caller.sid}/transfer", data={
        "csrf_token": csrf_token_from(page), "target": target, "outside": typed, "mode": "warm"})
    html = response.get_data(as_text=True)
    assert response.status_code == status and reason in html
    assert "<script>alert(1)" not in html  # what was typed comes back as text only
    centre.network.run_pending()
    assert centre.network.rest_log[requests_before:] == []
    with centre.db() as session:
        assert session.scalar(select(Transfer)) is None
    assert call_row(centre, caller.sid).status == "connected" and alice.bridged


def test_with_no_allow_list_the_outside_field_is_off_and_a_typed_number_is_refused(centre, users):
    caller, _alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    page = sam.get(f"/calls/{caller.sid}")
    html = page.get_data(as_text=True)
    assert re.search(r'<input[^>]*disabled[^>]*name="outside"|<input[^>]*name="outside"[^>]*disabled', html)
    assert "Outside transfers are off on this service" in html and "OUTSIDE_TRANSFER_ALLOW" in html
    assert 'value="outside"' not in html
    requests_before = len(centre.network.rest_log)
    # A form posted anyway, with the field filled in by hand.
    response = sam.post(f"/calls/{caller.sid}/transfer", data={
        "csrf_token": csrf_token_from(page), "target": "", "outside": "+442079460123", "mode": "blind"})
    assert response.status_code == 409
    assert "The transfer was refused: outside transfers are not enabled." in response.get_data(as_text=True)
    assert centre.network.rest_log[requests_before:] == []
    assert "transfer_refused" in centre.timeline(caller.sid) and "transfer_requested" not in centre.timeline(caller.sid)


def agent_row(centre, extension):
    with centre.db() as session:
        agent = session.scalar(select(Agent).where(Agent.extension == extension))
        session.expunge(agent)
        return agent


def set_presence(client, extension, presence, token):
    return client.post(f"/agents/{extension}/presence", data={"csrf_token": token, "presence": presence})


def test_a_supervisor_sets_an_agent_away_and_available_from_the_board(centre, users):
    sam = signed_in(centre, "sam")
    board = sam.get("/board")
    html = board.get_data(as_text=True)
    assert 'action="/agents/101/presence"' in html and 'value="away"' in html
    before = agent_row(centre, "101")
    centre.network.advance(90)

    response = set_presence(sam, "101", "away", csrf_token_from(board))
    assert response.status_code == 302 and response.headers["Location"] == "/board"
    assert "Agent 101 is away now." in sam.get("/board").get_data(as_text=True)
    alice = agent_row(centre, "101")
    assert alice.presence == "away" and (alice.presence_changed_at - before.presence_changed_at).seconds >= 90
    assert alice.activity_changed_at == before.activity_changed_at, "presence alone changed"
    with centre.db() as session:
        event = session.scalar(select(Event).where(Event.name == "presence_set"))
        assert event.detail == {"agent": "101", "by": "sam", "to": "away", "was": "available"}

    row = next(a for a in sam.get("/board/snapshot").get_json()["agents"] if a["extension"] == "101")
    assert row["presence"] == "away" and row["presence_choices"] == ["available"]
    assert row["presence_since"] == alice.presence_changed_at.isoformat()
    assert row["presence_since_utc"].endswith(" UTC") and row["activity_since"]

    # Away, she is offered nothing (nor is Bob, the other billing agent, set away too); set available, she is
    # rung for the caller waiting.
    assert set_presence(sam, "102", "away", csrf_token_from(sam.get("/board"))).status_code == 302
    caller = centre.dial()
    caller.press("1")
    assert not centre.network.calls_to(ALICE)
    assert set_presence(sam, "101", "available", csrf_token_from(sam.get("/board"))).status_code == 302
    centre.network.run_pending()
    assert centre.network.calls_to(ALICE) and agent_row(centre, "101").activity == "ringing"


def test_an_agent_set_away_on_a_call_stays_on_it(centre, users):
    caller, _alice = connected_call(centre)
    sam = signed_in(centre, "sam")
    set_presence(sam, "101", "away", csrf_token_from(sam.get("/board")))
    assert "Agent 101 is away now (still on call)." in sam.get("/board").get_data(as_text=True)
    assert call_row(centre, caller.sid).status == "connected"
    alice = agent_row(centre, "101")
    assert (alice.presence, alice.activity) == ("away", "on_call")
    caller.hangup()
    alice = agent_row(centre, "101")
    assert (alice.presence, alice.activity) == ("away", "idle")


@pytest.mark.parametrize("extension, presence, status, words", [
    ("101", "offline", 400, "choose available or away"),
    ("101", "", 400, "This field is required"),
    ("999", "away", 404, "no agent with extension 999"),
    ("<b>9", "away", 404, "no agent with extension &lt;b&gt;9"),
])
def test_a_presence_the_board_cannot_set_is_refused_in_words(centre, users, extension, presence, status, words):
    sam = signed_in(centre, "sam")
    response = set_presence(sam, extension, presence, csrf_token_from(sam.get("/board")))
    assert response.status_code == status and words in response.get_data(as_text=True)
    assert agent_row(centre, "101").presence == "available"


def test_only_a_supervisor_sets_presence_from_the_board_and_with_a_csrf_token(centre, users):
    sam = signed_in(centre, "sam")
    assert sam.post("/agents/101/presence", data={"presence": "away"}).status_code == 400
    alice = signed_in(centre, "alice")
    token = csrf_token_from(alice.get("/console"))
    assert set_presence(alice, "201", "away", token).status_code == 403
    assert agent_row(centre, "201").presence == "available"
