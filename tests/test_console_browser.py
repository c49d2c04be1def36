"""The agent console in headless Chromium, against the service on real HTTP with phone legs simulated.

The LiveKit stand-in speaks only the server API, so no audio flows here: the
test checks that the page loads livekit-client from this service, fetches a
token and tries Room.connect with it, and says so on screen when that fails.
"""

import re
from pathlib import Path

import jwt
import pytest
from sqlalchemy import update

from app.models import Agent
from tests.browser_support import PASSWORD, SCREENSHOTS, wait_until
from tests.conftest import LIVEKIT_API_SECRET
from tests.transfer_helpers import call_row, in_room, transfer_row

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 800}
VENDOR = Path(__file__).resolve().parent.parent / "app" / "static" / "vendor" / "livekit-client.umd.js"


def console_page(browser, centre, username, **context_options):
    context = browser.new_context(viewport=VIEWPORT, base_url=centre.url, **context_options)
    context.set_default_timeout(15000)
    page = context.new_page()
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console$"))
    page.wait_for_selector("[data-live-status] >> text=Up to date")
    return page


def last_connect(page, room):
    """What console.js handed to Room.connect for ROOM, once it has."""
    page.wait_for_function("r => (window.switchboardConsole.lastConnect || {}).room === r", arg=room)
    return page.evaluate("window.switchboardConsole.lastConnect")


def test_browser_agent_takes_a_call_and_transfers_it_to_a_browser_colleague(browser, live_centre):
    assert VENDOR.exists(), "livekit-client is not built: run `npm ci && npm run build` (make test does)"
    centre = live_centre
    with centre.db() as session:
        session.execute(update(Agent).where(Agent.extension.in_(["101", "201"])).values(sip_uri=None))
    alice = console_page(browser, centre, "alice")

    # livekit-client comes from this service, never a CDN.
    assert alice.evaluate("typeof window.LivekitClient.Room") == "function"
    assert f"{centre.url}/static/vendor/livekit-client.umd.js" in alice.requested
    assert all(url.startswith(centre.url) for url in alice.requested)

    alice.click("[data-presence=away]")
    alice.wait_for_selector("[data-presence=away][aria-pressed=true]")
    alice.wait_for_selector("text=You are away.")
    alice.click("[data-presence=available]")
    alice.wait_for_selector("[data-presence=available][aria-pressed=true]")

    caller = centre.dial("+15551230007")
    caller.speak("I was charged twice for my <b>internet</b> bill")
    offer = alice.locator("[data-panel=offer]")
    offer.wait_for()
    assert offer.locator("h2").inner_text() == "Incoming call"
    assert offer.locator("[data-field=offer-caller]").inner_text() == "+15551230007"
    assert offer.locator("[data-field=offer-queue]").inner_text() == "billing"
    assert "<b>internet</b>" in offer.locator("[data-field=offer-reason]").inner_text()  # shown as text

    alice.click("[data-action=accept]")
    call_panel = alice.locator("[data-panel=call]")
    call_panel.wait_for()
    call_id = call_row(centre, caller.sid).id
    room = f"call_{call_id}"
    alice.wait_for_selector(f"[data-field=call-room] >> text={room}")
    # The stand-in serves LiveKit's API, not its media: the console's connect
    # fails (shown below), so LiveKit's view of it joining is played here.
    centre.browser_joins(room, "agent-101")
    wait_until(lambda: in_room(centre.network.call(caller.sid), str(call_id)))

    connect = last_connect(alice, room)
    assert connect["url"] == centre.livekit.url
    claims = jwt.decode(connect["token"], LIVEKIT_API_SECRET, algorithms=["HS256"])
    assert claims["video"]["room"] == room and claims["sub"] == "agent-101"
    assert f"{centre.url}/console/token" in alice.requested
    # The stand-in has no media server: the failure is on screen, not hidden.
    alice.wait_for_selector("[data-media-status].is-failed >> text=Audio connection failed")

    # Readable on an upright tablet: one column, nothing off the side.
    alice.set_viewport_size({"width": 768, "height": 1024})
    assert alice.evaluate("document.scrollingElement.scrollWidth") <= 768
    alice.screenshot(path=str(SCREENSHOTS / "console-tablet.png"))
    alice.set_viewport_size(VIEWPORT)

    carmen = console_page(browser, centre, "carmen")
    alice.fill("#transfer-target", "201")
    alice.check("input[name=mode][value=warm]")
    alice.fill("#transfer-notes", "Refund agreed; check the second charge")
    alice.click("text=Start transfer")
    alice.wait_for_selector("text=Transfer started (warm).")

    transfer = transfer_row(centre)
    prompt = carmen.locator("[data-panel=offer]")
    prompt.wait_for()
    assert prompt.locator("h2").inner_text() == "Incoming transfer from Alice Moreno"
    carmen.wait_for_selector("[data-field=summary-source] >> text=Written by the LLM")
    assert prompt.locator("[data-field=summary-spoken]").inner_text().strip()
    assert "Reason" in prompt.locator("[data-field=summary-fields]").inner_text()
    assert "Refund agreed" in prompt.locator("[data-field=offer-notes]").inner_text()
    carmen.screenshot(path=str(SCREENSHOTS / "console.png"))

    # Alice moved to the consult room: her console reconnected with a token for it.
    last_connect(alice, transfer.consult_room)

    carmen.click("[data-action=accept]")
    carmen.wait_for_selector(f"[data-field=call-room] >> text={transfer.consult_room}")
    alice.wait_for_selector("[data-action=complete]:visible")
    alice.click("[data-action=complete]")
    alice.wait_for_selector("[data-panel=idle]:visible")
    carmen.wait_for_selector(f"[data-field=call-room] >> text={room}")
    assert last_connect(carmen, room)["room"] == room
    wait_until(lambda: transfer_row(centre).state == "completed")
    assert carmen.evaluate("window.switchboardConsole.tokenFetches") >= 2
