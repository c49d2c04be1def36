"""The board in a real browser, following the live process through the same origin (tests/live_support.LiveRoute
plays the reverse proxy)."""

from __future__ import annotations

import re

import pytest

from tests.browser_support import new_page, sign_in
from tests.live_support import LiveRoute, running_live, wait_for
from tests.transfer_helpers import connected_call

pytestmark = pytest.mark.browser


def test_the_board_updates_through_the_live_process(browser, live_centre):
    centre = live_centre
    with running_live(centre.app) as server:
        routed = centre.app.wsgi_app
        centre.app.wsgi_app = LiveRoute(routed, server)
        try:
            page = new_page(browser, centre)
            sign_in(page, "sam")
            page.wait_for_url(re.compile(r"/board$"))
            assert page.locator(".board").get_attribute("data-stream") == "/live/board/stream"
            page.wait_for_selector("text=Live: updates as calls change.")
            wait_for(lambda: server.pages == 1, 5.0, "the board's page at the live process")

            caller, _alice = connected_call(centre)
            page.wait_for_selector(f'a[href="/calls/{caller.sid}"]')
            page.context.close()
            wait_for(lambda: server.pages == 0, 5.0, "the closed board's place")
        finally:
            centre.app.wsgi_app = routed


def test_a_browser_agent_is_offered_a_call_through_the_live_stream_not_by_polling(browser, live_centre):
    from sqlalchemy import update

    from app.models import Agent

    centre = live_centre
    with centre.db() as session:
        session.execute(update(Agent).where(Agent.extension == "101").values(sip_uri=None))
    with running_live(centre.app) as server:
        routed = centre.app.wsgi_app
        centre.app.wsgi_app = LiveRoute(routed, server)
        try:
            alice = new_page(browser, centre)
            polls = []
            alice.on("request", lambda request: polls.append(request.url) if "/console/state" in request.url else None)
            sign_in(alice, "alice")
            alice.wait_for_url(re.compile(r"/console$"))
            alice.wait_for_selector("[data-live-status] >> text=Up to date")
            wait_for(lambda: server.pages == 1, 5.0, "the console's page at the live process")

            caller = centre.dial("+15551230007")
            caller.speak("I was charged twice for my internet bill")
            offer = alice.locator("[data-panel=offer]")
            offer.wait_for()
            assert offer.locator("[data-field=offer-caller]").inner_text() == "+15551230007"
            assert polls == []  # the state came over the stream: the console polls only when it is refused
            alice.click("[data-action=decline]")
            offer.wait_for(state="hidden")
            alice.context.close()
            wait_for(lambda: server.pages == 0, 5.0, "the closed console's place")
        finally:
            centre.app.wsgi_app = routed
