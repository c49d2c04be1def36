"""The supervisor pages in headless Chromium, against the service on real HTTP with phone legs simulated."""

import re

import pytest

from tests.browser_support import SCREENSHOTS, new_page, sign_in, wait_until
from tests.transfer_helpers import BOB, accepts, connected_call, transfer_row

pytestmark = pytest.mark.browser

def test_supervisor_follows_a_call_and_transfers_it_from_the_form(browser, live_centre):
    centre = live_centre
    page = new_page(browser, centre)

    sign_in(page, "sam", "not-the-password")
    assert page.locator(".alert").inner_text() == "Wrong username or password."
    sign_in(page, "sam")
    page.wait_for_url(re.compile(r"/board$"))
    page.wait_for_selector("text=Live: updates as calls change.")
    assert page.locator("[data-rows=calls] tr.empty").inner_text() == "No live calls."

    # The call arrives while the board is open: it appears without a reload.
    page.evaluate("window.notReloaded = true")
    caller, alice = connected_call(centre)
    row = page.locator(f'tr[data-call-sid="{caller.sid}"]')
    row.wait_for()
    assert page.evaluate("window.notReloaded") is True
    page.locator(f'tr[data-call-sid="{caller.sid}"]', has_text="Alice Moreno (101)").filter(has_text="connected").wait_for()
    page.wait_for_selector('[data-extension="101"] >> text=on call')
    page.screenshot(path=str(SCREENSHOTS / "board.png"))

    row.get_by_role("link", name="Transfer").click()
    page.wait_for_url(re.compile(f"/calls/{caller.sid}#transfer-form$"))
    page.select_option("#target", "agent:102")
    page.check("input[value=warm]")
    page.fill("#notes", "Refund agreed in principle; <b>check</b> the second charge")
    page.click("text=Start transfer")

    page.wait_for_selector("text=Transfer started: calling Bob Okafor.")
    card = page.locator(f"#transfer-{transfer_row(centre).id}")
    assert card.locator("[data-transfer-state]").inner_text() == "dialing"
    assert "<b>check</b>" in card.inner_text()  # shown as typed, not as markup

    # Bob's phone rings; he answers, hears the whisper and presses 1: the page follows.
    wait_until(lambda: centre.network.calls_to(BOB))
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    accepts(centre, bob)
    card.locator("[data-transfer-state]", has_text="consulting").wait_for()
    summary = transfer_row(centre).summary_spoken
    card.locator("blockquote.spoken", has_text=summary[:40]).wait_for()
    assert "Written by the LLM" in card.inner_text() and "gpt-4o-mini" in card.inner_text()

    card.get_by_role("button", name="Complete").click()
    page.wait_for_selector("text=Transfer completed: the caller is connected to the new agent.")
    card = page.locator(f"#transfer-{transfer_row(centre).id}")
    assert card.locator("[data-transfer-state]").inner_text() == "completed"
    wait_until(lambda: not alice.live)
    assert transfer_row(centre).state == "completed"
    timeline = page.locator("[data-timeline]").inner_text()
    for step in ("transfer requested", "caller on hold", "transfer dialing", "summary ready", "transfer consulting",
                 "transfer completed", "caller off hold"):
        assert step in timeline
    # Each action taken from the page is credited to who took it, in the timeline's By column.
    for step in ("transfer requested", "transfer completed"):
        assert "sam" in page.locator("[data-timeline] tr", has_text=step).first.inner_text(), step
    assert "two charges of 49 dollars" in page.locator("[data-transcript]").inner_text()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "call-page.png"))

    # A form whose CSRF token was removed is refused in words.
    page.evaluate("document.querySelector('#transfer-form input[name=csrf_token]').remove()")
    page.evaluate("document.querySelector('#transfer-form form').submit()")
    page.wait_for_selector("text=Form expired or incomplete")
    assert "security token was missing" in page.content()
    assert transfer_row(centre).state == "completed"


def test_an_agent_cannot_open_the_board_or_another_agents_call(browser, live_centre):
    centre = live_centre
    caller, _alice = connected_call(centre)
    carmen = new_page(browser, centre)
    sign_in(carmen, "carmen")
    carmen.wait_for_url(re.compile(r"/console"))

    response = carmen.goto("/board")
    assert response.status == 403 and "Not for your role" in carmen.content()
    response = carmen.goto(f"/calls/{caller.sid}")
    assert response.status == 403 and "Agents can open the pages of calls they are on or talked on only." in carmen.content()

    alice = new_page(browser, centre)
    sign_in(alice, "alice")
    alice.wait_for_url(re.compile(r"/console"))
    response = alice.goto(f"/calls/{caller.sid}")
    assert response.status == 200 and "Call from +15551230001" in alice.content()
    assert alice.locator("#transfer-form").count() == 0


def test_supervisor_sets_an_agent_away_and_the_board_says_since_when(browser, live_centre):
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from app.models import Agent

    centre = live_centre
    # The viewer is in India: the board shows their own clock time, labelled with its zone.
    page = new_page(browser, centre, timezone_id="Asia/Kolkata")
    sign_in(page, "sam")
    page.wait_for_url(re.compile(r"/board$"))
    page.wait_for_selector("text=Live: updates as calls change.")
    row = page.locator('tr[data-extension="101"]')

    # How long Alice has been idle, ticking in the browser.
    duration = row.locator("[data-activity] .duration")
    duration.filter(has_text=re.compile(r"^\d+:\d\d$")).wait_for()
    assert row.locator("[data-activity]").inner_text().startswith("idle ")
    first = duration.inner_text()
    page.wait_for_function(
        "first => document.querySelector('tr[data-extension=\"101\"] [data-activity] .duration').textContent"
        " !== first", arg=first)

    row.get_by_role("button", name="Set away").click()
    page.wait_for_selector("text=Agent 101 is away now.")
    presence = row.locator("[data-presence]")
    presence.filter(has_text=re.compile(r"away since \d\d:\d\d GMT\+5:30")).wait_for()
    with centre.db() as session:
        changed = session.scalar(select(Agent.presence_changed_at).where(Agent.extension == "101"))
    local = changed.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%H:%M")
    assert f"away since {local} GMT+5:30" in presence.inner_text()
    # (Chromium's ICU still calls it by its older name.)
    assert presence.locator("time").get_attribute("title") in ("your time zone: Asia/Kolkata",
                                                               "your time zone: Asia/Calcutta")
    row.locator("[data-activity] .duration").filter(has_text=re.compile(r"^\d+:\d\d$")).wait_for()

    # Redrawn from the live stream, the row says the same, and offers the way back.
    page.evaluate("window.notReloaded = true")
    with centre.db() as session:
        session.scalar(select(Agent).where(Agent.extension == "102")).name = "Bob O."  # any change to the board
    page.wait_for_selector('tr[data-extension="102"] >> text=Bob O.', timeout=20000)
    assert page.evaluate("window.notReloaded") is True
    assert f"away since {local} GMT+5:30" in presence.inner_text()
    row.get_by_role("button", name="Set available").click()
    page.wait_for_selector("text=Agent 101 is available now.")
    row.locator("[data-presence]", has_text=re.compile(r"available since \d\d:\d\d GMT\+5:30")).wait_for()
