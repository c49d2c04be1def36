"""The call history and the voicemail inbox in headless Chromium, against the service on real HTTP."""

import re

import pytest

from tests.browser_support import SCREENSHOTS, new_page, sign_in
from tests.test_history import NUMBER, ended_call, voicemail_call

pytestmark = pytest.mark.browser


def test_a_supervisor_finds_a_finished_call_by_part_of_its_number(browser, live_centre):
    centre = live_centre
    caller = ended_call(centre)
    ended_call(centre, "+15551230077")
    page = new_page(browser, centre)
    sign_in(page, "sam")
    page.wait_for_url(re.compile(r"/board$"))

    page.get_by_role("link", name="Call history").click()
    page.wait_for_url(re.compile(r"/calls$"))
    assert page.locator("tr[data-call-sid]").count() == 2
    page.fill("#f-number", "5550123")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/calls\?number=5550123"))
    rows = page.locator("tr[data-call-sid]")
    assert rows.count() == 1 and rows.first.get_attribute("data-call-sid") == caller.sid
    page.screenshot(path=str(SCREENSHOTS / "history.png"))
    assert "Alice Moreno" in rows.first.inner_text() and "completed" in rows.first.inner_text()

    rows.first.get_by_role("link", name=NUMBER).click()
    page.wait_for_url(re.compile(f"/calls/{caller.sid}$"))
    assert f"Call from {NUMBER}" in page.content()


def test_the_voicemail_player_loads_the_message_through_the_service(browser, live_centre):
    centre = live_centre
    caller = voicemail_call(centre, seconds=4)
    page = new_page(browser, centre)
    fetched = []
    page.on("response", lambda response: fetched.append((response.url, response.status))
            if "/audio" in response.url else None)
    sign_in(page, "sam")
    page.wait_for_url(re.compile(r"/board$"))
    page.get_by_role("link", name="Voicemails").click()
    page.wait_for_url(re.compile(r"/voicemails$"))
    row = page.locator(f'tr[data-call-sid="{caller.sid}"]')
    assert "0:04" in row.inner_text() and "billing" in row.inner_text()
    assert "api.twilio.com" not in page.content()

    # Played (muted: no user gesture in a test) until the audio element has the message's length and moves on.
    played = row.locator("audio").evaluate("""async (audio) => {
        audio.muted = true;
        await audio.play();
        await new Promise((done) => { const check = () => audio.currentTime > 0.2 ? done() : setTimeout(check, 50);
                                      check(); });
        return {duration: audio.duration, src: audio.currentSrc, error: audio.error && audio.error.code};
    }""")
    assert played["error"] is None and abs(played["duration"] - 4) < 0.1
    assert played["src"] == f"{centre.url}/voicemails/{caller.sid}/audio"
    assert (played["src"], 200) in fetched

    row.get_by_role("button", name="Mark handled").click()
    page.wait_for_selector(f"text=The message from {NUMBER} is marked handled.")
    assert "by sam" in page.locator(f'tr[data-call-sid="{caller.sid}"] [data-handled]').inner_text()
