"""The console's alerts for a call offered (the tab's title, the ring's countdown, a desktop notification, the
ring sound) and the summary and transcript kept on screen for the whole call, in headless Chromium."""

import re

import pytest
from sqlalchemy import update

from app.models import Agent
from tests.browser_support import wait_until
from tests.test_console_browser import console_page as console
from tests.transfer_helpers import call_row, transfer_row

pytestmark = pytest.mark.browser


def countdown(page) -> int:
    text = page.locator("[data-field=offer-countdown]").inner_text()
    match = re.fullmatch(r"Rings for (\d+) s more", text)
    assert match, text
    return int(match.group(1))


def test_an_offer_changes_the_title_counts_down_rings_and_notifies(browser, live_centre):
    centre = live_centre
    with centre.db() as session:
        session.execute(update(Agent).where(Agent.extension == "101").values(sip_uri=None))
    alice = console(browser, centre, "alice", permissions=["notifications"])
    assert alice.title() == "Agent console · Switchboard"
    alice.click("[data-action=alerts]")  # the agent's click: notifications asked for, sound allowed
    alice.wait_for_selector("[data-field=alerts-status] >> text=Alerts on")

    caller = centre.dial("+15551230011")
    caller.speak("I was charged twice for my internet bill")
    alice.locator("[data-panel=offer]").wait_for()
    alice.wait_for_function("t => document.title === t", arg="(1) Incoming call — Switchboard")
    first = countdown(alice)
    timeout = centre.app.config["SETTINGS"].agent_ring_timeout_seconds
    assert 0 < first <= timeout
    alice.wait_for_function("n => Number((/Rings for (\\d+) s more/.exec(document.querySelector("
                            "'[data-field=offer-countdown]').textContent) || [])[1]) < n", arg=first)
    assert alice.evaluate("window.switchboardConsole.alerts.notified") == 1
    assert alice.evaluate("window.switchboardConsole.alerts.rings") >= 1
    assert alice.locator("[data-field=offer-transcript]").inner_text() == "Nothing transcribed yet."

    alice.click("[data-action=accept]")
    alice.locator("[data-panel=call]").wait_for()
    alice.wait_for_function("t => document.title === t", arg="Agent console · Switchboard")  # put back
    rings = alice.evaluate("window.switchboardConsole.alerts.rings")
    alice.wait_for_timeout(3500)
    assert alice.evaluate("window.switchboardConsole.alerts.rings") == rings, "the ring stops with the offer"
    assert call_row(centre, caller.sid).status == "connected"


def test_blocked_notifications_are_said_in_words(browser, live_centre):
    alice = console(browser, live_centre, "alice")
    alice.evaluate("""() => Object.defineProperty(Notification, 'permission', {get: () => 'denied'})""")
    alice.click("[data-action=alerts]")
    alice.wait_for_selector("[data-field=alerts-status].is-blocked >> text=Desktop notifications are blocked")


def test_the_summary_and_transcript_stay_on_screen_for_the_whole_call(browser, live_centre):
    centre = live_centre
    with centre.db() as session:
        session.execute(update(Agent).where(Agent.extension.in_(["101", "201"])).values(sip_uri=None))
    alice = console(browser, centre, "alice")
    carmen = console(browser, centre, "carmen")
    caller = centre.dial("+15551230012")
    caller.speak("I was charged twice for my internet bill")
    alice.locator("[data-panel=offer]").wait_for()
    alice.click("[data-action=accept]")
    room = f"call_{call_row(centre, caller.sid).id}"
    alice.wait_for_selector(f"[data-field=call-room] >> text={room}")
    centre.browser_joins(room, "agent-101")
    caller.transcribe("The second charge is on the third of May", track="inbound_track")
    alice.wait_for_selector("[data-field=call-transcript] >> text=The second charge is on the third of May")

    alice.fill("#transfer-target", "201")
    alice.fill("#transfer-notes", "Refund agreed")
    alice.click("text=Start transfer")
    offer = carmen.locator("[data-panel=offer]")
    offer.wait_for()
    carmen.wait_for_selector("[data-panel=offer] [data-field=summary-source] >> text=Written by the LLM")
    carmen.wait_for_function("t => document.title === t", arg="(1) Incoming transfer — Switchboard")
    spoken = offer.locator("[data-field=summary-spoken]").inner_text().strip()
    assert spoken

    carmen.click("[data-action=accept]")
    kept = carmen.locator("[data-call-summary]")
    kept.wait_for()  # the summary stays once the offer is over
    assert kept.locator("[data-field=summary-spoken]").inner_text().strip() == spoken
    assert "Notes from Alice Moreno: Refund agreed" in kept.inner_text()
    assert "The second charge is on the third of May" in carmen.locator("[data-field=call-transcript]").inner_text()

    alice.wait_for_selector("[data-action=complete]:visible")
    alice.click("[data-action=complete]")
    wait_until(lambda: transfer_row(centre).state == "completed")
    carmen.wait_for_selector(f"[data-field=call-room] >> text={room}")  # with the caller now
    assert kept.is_visible() and kept.locator("[data-field=summary-spoken]").inner_text().strip() == spoken
    assert carmen.title() == "Agent console · Switchboard"
