"""The webhook URLs the service gives Twilio: their query strings are what urlencode would write."""

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from app.telephony.urls import IVR, WebhookUrls

URLS = WebhookUrls("https://switchboard.example.com/")

VALUES = [0, 7, -3, 2**63, True, False, "accepted", "a b&c=d", "gAAAAABl-x_y==", "é/?#", "", 1.5]


@pytest.mark.parametrize("value", VALUES)
def test_a_query_is_written_as_urlencode_writes_it(value):
    url = URLS.url(IVR, call=12, v=value, attempt=None)
    assert url == f"https://switchboard.example.com{IVR}?" + urlencode({"call": 12, "v": value})
    assert dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))["v"] == str(value)


def test_no_parameters_no_question_mark():
    assert URLS.url(IVR) == URLS.url(IVR, leg=None) == f"https://switchboard.example.com{IVR}"
    assert URLS.ivr(5, 2) == f"https://switchboard.example.com{IVR}?call=5&attempt=2"
