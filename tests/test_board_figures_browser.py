"""The board's queue strip and the wallboard in headless Chromium, against the service on real HTTP with phone legs
simulated: the figures change as a caller queues and is answered, and the board fits a laptop and a phone."""

import re
from dataclasses import replace

import pytest

from tests.browser_support import SCREENSHOTS, new_page, sign_in, wait_until
from tests.transfer_helpers import ALICE, connected_call

pytestmark = pytest.mark.browser

BILL = "I was charged twice for my internet bill"


def _figure(page, queue: str, name: str):
    return page.locator(f'[data-strip] [data-queue="{queue}"] [data-figure="{name}"]')


def _on_the_board(browser, centre, **context_options):
    page = new_page(browser, centre, **context_options)
    sign_in(page, "sam")
    page.wait_for_url(re.compile(r"/board$"))
    page.wait_for_selector("text=Live: updates as calls change.")
    return page


def test_the_queue_strip_counts_a_caller_waiting_then_answered(browser, live_centre):
    centre = live_centre
    page = _on_the_board(browser, centre)
    page.evaluate("window.notReloaded = true")
    assert _figure(page, "billing", "waiting").inner_text() == "0"
    assert _figure(page, "billing", "answered").inner_text() == "0"
    assert _figure(page, "billing", "service_level").inner_text() == "–"

    caller = centre.network.incoming_call("+15557771001", centre.number)
    caller.speak(BILL)  # queued; Alice's phone rings for them
    _figure(page, "billing", "waiting").filter(has_text=re.compile(r"^1$")).wait_for()
    _figure(page, "billing", "longest_wait").filter(has_text=re.compile(r"^\d+:\d\d$")).wait_for()
    row = page.locator(f'tr[data-call-sid="{caller.sid}"]')
    row.locator('[data-phase="queue"]').filter(has_text=re.compile(r"^\d+:\d\d$")).wait_for()

    wait_until(lambda: centre.network.calls_to(ALICE))
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    _figure(page, "billing", "answered").filter(has_text=re.compile(r"^1$")).wait_for()
    _figure(page, "billing", "waiting").filter(has_text=re.compile(r"^0$")).wait_for()
    assert _figure(page, "billing", "longest_wait").inner_text() == "–"
    assert _figure(page, "billing", "service_level").inner_text() == "100%"
    assert _figure(page, "technical", "answered").inner_text() == "0"
    row.filter(has_text="connected").wait_for()
    assert page.evaluate("window.notReloaded") is True

    # Filtered to technical, the board keeps to it in its live updates: billing's call is not drawn.
    page.select_option("#queue-filter", "technical")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"/board\?queue=technical$"))
    page.wait_for_selector("text=Live: updates as calls change.")
    assert page.locator("[data-strip] [data-queue]").count() == 1
    other = centre.network.incoming_call("+15557771002", centre.number)
    other.speak("My internet router is broken")
    page.locator(f'tr[data-call-sid="{other.sid}"]').wait_for()
    assert page.locator(f'tr[data-call-sid="{caller.sid}"]').count() == 0
    assert page.locator('[data-strip] [data-queue="billing"]').count() == 0
    _figure(page, "technical", "waiting").filter(has_text=re.compile(r"^1$")).wait_for()


def test_the_wallboard_shows_the_figures_large_and_live(browser, live_centre):
    centre = live_centre
    page = _on_the_board(browser, centre)
    page.goto("/wallboard")
    page.wait_for_selector("text=Live: updates as calls change.")
    assert page.locator("[data-strip] [data-queue]").count() == 2
    size = page.evaluate("parseFloat(getComputedStyle(document.querySelector("
                         "'[data-queue=billing] [data-figure=waiting]')).fontSize)")
    assert size >= 32  # large, for a wall screen (up to 52 px on a wide one)
    caller, _alice = connected_call(centre, number="+15557771003")
    _figure(page, "billing", "answered").filter(has_text=re.compile(r"^1$")).wait_for()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(SCREENSHOTS / "wallboard.png"))


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 390, "height": 844}],
                         ids=["laptop", "phone"])
def test_the_board_fits_without_scrolling_sideways(browser, live_centre, viewport):
    centre = live_centre
    caller, _alice = connected_call(centre, number="+15557771004")
    page = new_page(browser, centre)
    page.set_viewport_size(viewport)
    sign_in(page, "sam")
    page.wait_for_url(re.compile(r"/board$"))
    page.wait_for_selector("text=Live: updates as calls change.")
    page.locator(f'tr[data-call-sid="{caller.sid}"]').wait_for()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    cards = page.locator("[data-strip] [data-queue]")
    boxes = [cards.nth(i).bounding_box() for i in range(cards.count())]
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] for box in boxes)
    if viewport["width"] >= 1366:
        # On a laptop the live calls' table needs no scrolling of its own either, and the strip is one row.
        assert page.evaluate("[...document.querySelectorAll('.table-wrap')].every(w => w.scrollWidth <= w.clientWidth)")
        assert len({box["y"] for box in boxes}) == 1
        page.screenshot(path=str(SCREENSHOTS / "board-laptop.png"))
    else:
        # On a phone the strip reflows: one queue under the other.
        assert boxes[1]["y"] > boxes[0]["y"] + boxes[0]["height"] - 1
        page.screenshot(path=str(SCREENSHOTS / "board-phone.png"), full_page=True)


def test_past_its_page_of_calls_the_board_says_how_many_it_leaves_out(browser, live_centre):
    centre = live_centre
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], board_calls_shown=1)
    page = _on_the_board(browser, centre)
    more = page.locator("[data-calls-more]")
    assert more.is_hidden()
    first = centre.network.incoming_call("+15557771003", centre.number)
    page.locator(f'tr[data-call-sid="{first.sid}"]').wait_for()
    assert more.is_hidden()
    second = centre.network.incoming_call("+15557771004", centre.number)
    more.filter(has_text="Showing the 1 longest-running of 2 live calls").wait_for()
    assert page.locator('[data-count="calls"]').inner_text() == "2"
    assert page.locator(f'tr[data-call-sid="{second.sid}"]').count() == 0  # the newer call is left out
    for caller in (first, second):
        caller.hangup()
    page.locator("tr.empty", has_text="No live calls.").wait_for()
    assert more.is_hidden()
