"""The call page's Listen, Whisper and Stop in headless Chromium, with LiveKit's side played on the stand-in.

The stand-in serves LiveKit's API, not its media: the page's Room.connect fails
(shown on screen), so LiveKit's view of the page joining with the token the
service gave it is played here, as the console's browser test does.
"""

import pytest

from tests.browser_support import SCREENSHOTS, new_page, sign_in, wait_until
from tests.transfer_helpers import connected_call

pytestmark = pytest.mark.browser


def test_supervisor_listens_whispers_and_stops_from_the_call_page(browser, live_centre):
    centre = live_centre
    caller, _alice = connected_call(centre)
    page = new_page(browser, centre)
    sign_in(page, "sam")
    page.goto(f"/calls/{caller.sid}")
    page.click("[data-supervise-mode=listen]")
    page.wait_for_selector("[data-supervise-status] >> text=Listening")
    page.wait_for_function("() => (window.switchboardSupervise.lastConnect || {}).token")
    connect = page.evaluate("window.switchboardSupervise.lastConnect")
    centre.livekit.join_with_token(connect["token"])
    page.wait_for_selector("[data-supervise-media].is-failed >> text=Audio connection failed")

    page.click("[data-supervise-mode=whisper]")
    page.wait_for_selector("[data-supervise-status] >> text=only the agent hears you")
    assert page.get_attribute("[data-supervise-mode=whisper]", "aria-pressed") == "true"
    page.screenshot(path=str(SCREENSHOTS / "call-page-listen.png"), full_page=True)
    page.click("[data-supervise-mode=barge]")
    page.wait_for_selector("[data-supervise-status] >> text=the caller and the agent hear you")
    assert page.get_attribute("[data-supervise-mode=barge]", "aria-pressed") == "true"
    page.click("[data-supervise-stop]")
    page.wait_for_selector("[data-supervise-status] >> text=Not listening.")
    wait_until(lambda: "supervisor-sam" not in centre.livekit.participants.get(connect["room"], {}))
    for label in ("Supervisor listening", "Supervisor whispering", "Supervisor barged in", "Supervisor stopped"):
        page.wait_for_selector(f"[data-timeline] >> text={label}")
    assert "sam" in page.locator("[data-timeline]").inner_text()
