"""The call page's outside field in headless Chromium: a number typed there is refused or rung, as the allow-list says."""

import re
from dataclasses import replace

import pytest

from tests.browser_support import SCREENSHOTS, new_page, sign_in, wait_until
from tests.transfer_helpers import accepts, connected_call, transfer_row

pytestmark = pytest.mark.browser

OUTSIDE = "+442079460123"


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, outside_transfer_allow=("+44", "partner.example"))


def test_a_supervisor_types_an_outside_number_and_the_transfer_starts(browser, live_centre):
    centre = live_centre
    page = new_page(browser, centre)
    sign_in(page, "sam")
    page.wait_for_url(re.compile(r"/board$"))

    caller, alice = connected_call(centre)
    page.goto(f"/calls/{caller.sid}#transfer-form")
    page.wait_for_selector("text=Live: this page follows the call.")
    assert "Allowed here: numbers starting +44; SIP hosts under partner.example." in page.inner_text("#transfer-form")

    # A number off the allow-list: the reason is shown and nothing is rung.
    page.fill("#outside", "+33 1 23 45 67 89")
    assert page.input_value("#target") == "outside"  # typing chose the outside target
    page.click("text=Start transfer")
    page.wait_for_selector("text=The transfer was refused: +33123456789 is not in a country or prefix outside "
                           "transfers may call.")
    assert centre.network.calls_to("+33123456789") == []

    page.goto(f"/calls/{caller.sid}#transfer-form")
    page.wait_for_selector("text=Live: this page follows the call.")
    page.fill("#outside", "+44 20 7946 0123")
    page.check("input[value=warm]")
    page.fill("#notes", "Refund agreed; the partner desk confirms the second charge")
    page.locator("#transfer-form").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "transfer-form.png"))
    page.click("text=Start transfer")

    page.wait_for_selector("text=Transfer started: calling +44 20 7946 0123.")
    card = page.locator(f"#transfer-{transfer_row(centre).id}")
    assert card.locator("h3").inner_text() == f"Warm transfer to outside {OUTSIDE}"
    assert card.locator("[data-transfer-state]").inner_text() == "dialing"

    # The outside phone rings from our number; it answers, hears the whisper, presses 1: the page follows.
    wait_until(lambda: centre.network.calls_to(OUTSIDE))
    outside = centre.network.last_call(to=OUTSIDE)
    assert outside.from_ == centre.number
    centre.network.answer(outside.sid)
    accepts(centre, outside)
    card.locator("[data-transfer-state]", has_text="consulting").wait_for()
    assert transfer_row(centre).target_number == OUTSIDE and alice.live
    page.context.close()
