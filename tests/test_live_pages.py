"""The live pages' process (app/live/): real steps committed through the service reach every open page, on
PostgreSQL through NOTIFY and on SQLite through the process's one look a second; who may follow what."""

from __future__ import annotations

import json

import pytest

from tests.live_support import SseClient, cookie_of, running_live, wait_for
from tests.test_supervisor_pages import signed_in, users  # noqa: F401 - the fixture
from tests.transfer_helpers import connected_call


def test_every_page_following_the_board_gets_the_committed_step(centre, users):  # noqa: F811
    sam = cookie_of(centre.app, signed_in(centre, "sam"))
    with running_live(centre.app) as server:
        pages = [SseClient(server, "/board/stream", sam) for _ in range(5)]
        try:
            assert all(page.status == 200 for page in pages)
            assert all(page.next_snapshot()["calls"] == [] for page in pages)
            assert server.pages == 5 and len(server.live_app.state.live.hub.topics) == 1
            caller, _alice = connected_call(centre)
            for page in pages:
                snapshot = page.next_snapshot(lambda s: any(c["state"] == "connected" for c in s["calls"]))
                assert [call["call_sid"] for call in snapshot["calls"]] == [caller.sid]
        finally:
            for page in pages:
                page.close()


def test_a_page_that_goes_away_gives_its_place_back_at_once(centre, users):  # noqa: F811
    sam = cookie_of(centre.app, signed_in(centre, "sam"))
    with running_live(centre.app) as server:
        pages = [SseClient(server, "/wallboard/stream", sam) for _ in range(3)]
        for page in pages:
            page.next_snapshot()
        assert server.pages == 3
        pages[0].close()
        wait_for(lambda: server.pages == 2, 2.0, "the closed page's place")
        for page in pages[1:]:
            page.close()
        wait_for(lambda: server.pages == 0 and not server.live_app.state.live.hub.topics, 2.0, "every place")


def test_the_process_takes_at_most_live_max_pages_and_says_so(centre, users, capsys):  # noqa: F811
    sam = cookie_of(centre.app, signed_in(centre, "sam"))
    with running_live(centre.app, live_max_pages=2) as server:
        held = [SseClient(server, "/board/stream", sam) for _ in range(2)]
        refused = SseClient(server, "/board/stream", sam)
        assert refused.status == 503 and refused.response.getheader("Retry-After") == "30"
        assert "try the stream again later" in json.loads(refused.body())["error"]
        assert '"event": "live_stream_refused"' in capsys.readouterr().err
        held[0].close()
        wait_for(lambda: server.pages == 1, 2.0, "the closed page's place")
        again = SseClient(server, "/board/stream", sam)
        assert again.status == 200 and again.next_snapshot()["calls"] == []
        for page in [*held, refused, again]:
            page.close()


def test_who_may_follow_what_is_what_the_pages_allow(centre, users):  # noqa: F811
    caller, _alice = connected_call(centre)
    sam, alice, carmen = (cookie_of(centre.app, signed_in(centre, name)) for name in ("sam", "alice", "carmen"))
    with running_live(centre.app) as server:
        def status(path, cookie=None):
            page = SseClient(server, path, cookie)
            try:
                return page.status, page.response.getheader("Location")
            finally:
                page.close()

        # Signed out: the sign-in page, as the Flask pages answer.
        code, location = status("/board/stream")
        assert code == 302 and location.startswith("/login?next=")
        assert status("/console/stream")[0] == 302
        # The wrong role, somebody else's call, no such call, no such queue.
        assert status("/board/stream", alice)[0] == 403
        assert status("/wallboard/stream", carmen)[0] == 403
        assert status("/console/stream", sam)[0] == 403
        assert status(f"/calls/{caller.sid}/stream", carmen)[0] == 403
        assert status("/calls/CAnothing/stream", sam)[0] == 404
        assert status("/board/stream?queue=nosuch", sam)[0] == 400
        # Alice may follow the call she is on; her page is not the supervisors' (no buttons).
        page = SseClient(server, f"/calls/{caller.sid}/stream", alice)
        assert page.status == 200
        snapshot = page.next_snapshot()
        assert snapshot["call"]["call_sid"] == caller.sid and snapshot["may_act"] is False
        page.close()


def test_an_agent_follows_only_their_own_console(centre, users):  # noqa: F811
    alice, carmen = (cookie_of(centre.app, signed_in(centre, name)) for name in ("alice", "carmen"))
    with running_live(centre.app) as server:
        alices, carmens = SseClient(server, "/console/stream", alice), SseClient(server, "/console/stream", carmen)
        try:
            assert alices.next_snapshot()["agent"]["extension"] == "101"
            assert carmens.next_snapshot()["agent"]["extension"] == "201"
            caller, _alice = connected_call(centre)
            # The first snapshot with the call may come while Alice's phone still rings: wait for her on it.
            live = alices.next_snapshot(lambda s: s["call"] is not None and s["agent"]["activity"] == "on_call")
            assert live["call"]["call_sid"] == caller.sid
            # Carmen's console, opened again now, still shows only Carmen: nothing of Alice's call.
            carmens.close()
            carmens = SseClient(server, "/console/stream", carmen)
            later = carmens.next_snapshot()
            assert later["agent"]["extension"] == "201" and later["call"] is None and later["offer"] is None
            assert {key.kind for key in server.live_app.state.live.hub.topics} == {"console"}
            assert len(server.live_app.state.live.hub.topics) == 2
        finally:
            alices.close()
            carmens.close()


def test_a_page_coming_back_with_the_id_it_last_saw_gets_nothing_until_a_change(centre, users):  # noqa: F811
    sam = cookie_of(centre.app, signed_in(centre, "sam"))
    with running_live(centre.app) as server:
        first = SseClient(server, "/board/stream", sam)
        first.next_snapshot()
        seen = first.last_id
        first.close()
        back = SseClient(server, "/board/stream", sam, last_event_id=seen)
        try:
            caller, _alice = connected_call(centre)
            event = back.next_event()
            assert event["event"] == "snapshot" and event["id"] != seen
            assert caller.sid in {call["call_sid"] for call in event["data"]["calls"]}
        finally:
            back.close()


def test_the_pages_open_their_streams_under_live_stream_base(centre, users):  # noqa: F811
    from dataclasses import replace

    caller, _alice = connected_call(centre)
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], live_stream_base="/live")
    sam, alice = signed_in(centre, "sam"), signed_in(centre, "alice")
    assert 'data-stream="/live/board/stream?queue=billing"' in sam.get("/board?queue=billing").get_data(as_text=True)
    assert 'data-stream="/live/wallboard/stream"' in sam.get("/wallboard").get_data(as_text=True)
    assert f'data-stream="/live/calls/{caller.sid}/stream"' in sam.get(f"/calls/{caller.sid}").get_data(as_text=True)
    assert 'data-stream="/live/console/stream"' in alice.get("/console").get_data(as_text=True)
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], live_stream_base="")
    assert 'data-stream="/board/stream"' in sam.get("/board").get_data(as_text=True)
    assert "data-stream" not in alice.get("/console").get_data(as_text=True)


def test_a_call_page_says_gone_when_the_calls_records_are_removed(centre, users):  # noqa: F811
    from sqlalchemy import delete

    from app.models import Call

    caller, _alice = connected_call(centre)
    sam = cookie_of(centre.app, signed_in(centre, "sam"))
    with running_live(centre.app) as server:
        page = SseClient(server, f"/calls/{caller.sid}/stream", sam)
        try:
            assert page.next_snapshot()["call"]["call_sid"] == caller.sid
            # Removed by a statement, as an operator would: no row of the session names it, so the topic's
            # refresh finds it gone.
            with centre.db() as session:
                session.execute(delete(Call).where(Call.call_sid == caller.sid))
            assert page.next_event()["event"] == "gone"
            with pytest.raises(EOFError):
                page.next_event()
            wait_for(lambda: server.pages == 0, 2.0, "the page's place")
        finally:
            page.close()
