"""The live pages' process (app/live/): real steps committed through the service reach every open page, on
PostgreSQL through NOTIFY and on SQLite through the process's one look a second; who may follow what."""

from __future__ import annotations

from tests.live_support import SseClient, cookie_of, running_live
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
