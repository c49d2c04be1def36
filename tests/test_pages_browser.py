"""The supervisor pages hold up: live redraws keep the viewer's place, tables fit a laptop and reflow on a phone,
times are the viewer's own and labelled; in headless Chromium against the service on real HTTP."""

import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.models import Agent
from tests.browser_support import new_page, sign_in, wait_until
from tests.transfer_helpers import BOB, call_row, connected_call

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def following(page) -> None:
    """Wait until the live page follows its subject: by its stream, or by polling while streams are busy."""
    page.locator("[data-live-status]").filter(has_text=re.compile(r"^(Live|Polling):")).wait_for()


def signed_in_page(browser, centre, username="sam", **options):
    page = new_page(browser, centre, **options)
    sign_in(page, username)
    return page


def test_a_redraw_keeps_what_is_typed_the_focus_and_the_scroll(browser, live_centre):
    centre = live_centre
    # No card digits said: the transcript is not paused, so a line said later redraws the page.
    caller, _alice = connected_call(centre, conversation=(("caller", "Hello, it is about my bill"),))
    page = signed_in_page(browser, centre)
    page.set_viewport_size({"width": 1366, "height": 420})  # short: the page scrolls
    page.goto(f"/calls/{caller.sid}")
    following(page)
    page.click("#notes")
    page.keyboard.type("Half of what I mean")
    page.evaluate("window.scrollTo(0, 200)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0

    caller.transcribe("A line said while the supervisor types", track="inbound_track")
    page.wait_for_selector("[data-transcript] >> text=A line said while the supervisor types")
    assert page.evaluate("window.scrollY") == scrolled
    assert page.evaluate("document.activeElement.id") == "notes"
    page.keyboard.type(" and the rest")
    assert page.input_value("#notes") == "Half of what I mean and the rest"

    # On the board a redraw makes every row anew: the button in focus is found again.
    page.goto("/board")
    following(page)
    page.locator('tr[data-extension="201"]').get_by_role("button", name="Set away").focus()
    with centre.db() as session:
        session.scalar(select(Agent).where(Agent.extension == "102")).name = "Bob O."  # any change to the board
    page.wait_for_selector('tr[data-extension="102"] >> text=Bob O.', timeout=20000)
    focused = page.evaluate("[document.activeElement.textContent, document.activeElement.form.getAttribute('action')]")
    assert focused == ["Set away", "/agents/201/presence"]


def test_tables_fit_a_laptop_and_reflow_on_a_phone(browser, live_centre):
    centre = live_centre
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")  # a transfer under way: its raw CallSid is on the board
    wait_until(lambda: centre.network.calls_to(BOB))
    page = signed_in_page(browser, centre)
    page.set_viewport_size(LAPTOP)
    page.goto("/board")
    link = page.locator("[data-rows=transfers] a.sid")
    link.wait_for()
    assert link.get_attribute("title") == caller.sid  # the whole of it, on hover
    assert fits(page)
    wrap = page.locator("[data-rows=transfers]").locator("xpath=ancestor::div[contains(@class, 'table-wrap')]")
    assert wrap.evaluate("box => box.scrollWidth <= box.clientWidth"), "the transfers table's columns stay on screen"
    following(page)
    page.wait_for_timeout(600)  # a redraw from the stream draws the same
    assert page.locator("[data-rows=transfers] a.sid").get_attribute("title") == caller.sid and fits(page)

    page.set_viewport_size(PHONE)
    for path in ("/board", f"/calls/{caller.sid}", "/calls", "/voicemails", "/callbacks", "/no-such-page"):
        page.goto(path)
        page.wait_for_load_state()
        assert fits(page), f"{path} is wider than a phone"
    agent = signed_in_page(browser, centre, "alice")
    agent.set_viewport_size(PHONE)
    agent.goto("/console")
    agent.wait_for_selector("[data-live-status] >> text=Up to date")
    assert fits(agent)


def test_times_are_the_viewers_own_and_labelled(browser, live_centre):
    centre = live_centre
    caller, _alice = connected_call(centre)
    page = signed_in_page(browser, centre, timezone_id="Asia/Tokyo")
    page.goto(f"/calls/{caller.sid}")
    following(page)
    labelled = re.compile(r"^\d\d:\d\d:\d\d GMT\+9$")
    first = page.locator("[data-timeline] time").first
    assert labelled.match(first.inner_text()), first.inner_text()
    started = page.locator("[data-fact=started] time")
    assert labelled.match(started.inner_text())
    created = call_row(centre, caller.sid).created_at
    assert started.inner_text() == created.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M:%S GMT+9")
    page.goto("/calls")
    row_time = page.locator(f'tr[data-call-sid="{caller.sid}"] time')
    assert row_time.inner_text().endswith("GMT+9"), row_time.inner_text()
    local = created.astimezone(ZoneInfo("Asia/Tokyo"))
    assert local.strftime("%H:%M:%S") in row_time.inner_text() and str(local.year) in row_time.inner_text()
    assert row_time.get_attribute("title") == "your time zone: Asia/Tokyo"


def test_a_page_refused_its_stream_polls_then_is_live_soon_after_a_place_is_free(browser, live_centre):
    from app.supervisor.stream import StreamGate

    centre = live_centre
    centre.app.extensions["supervisor_stream_gate"] = StreamGate(1)  # one live page per process
    first = signed_in_page(browser, centre)
    first.locator("[data-live-status]", has_text="Live:").wait_for()

    second = first.context.new_page()
    second.goto("/board")
    second.locator("[data-live-status]", has_text="Polling:").wait_for()  # the place is the first page's
    assert second.locator("[data-live-status]").inner_text().startswith("Polling:")

    # The first page is closed: its stream ends at its next look, and the refused page tries the stream again
    # 3 seconds after its refusal (then every 30): live well within 10 seconds, not half a minute later.
    first.close()
    second.locator("[data-live-status]", has_text="Live:").wait_for(timeout=10_000)
    second.context.close()
