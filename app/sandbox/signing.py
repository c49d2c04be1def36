"""Sign webhook forms the way Twilio signs them."""

from __future__ import annotations

from typing import Mapping

from twilio.request_validator import RequestValidator

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def twilio_signature(auth_token: str, url: str, params: Mapping) -> str:
    """Return the X-Twilio-Signature Twilio would send for this URL and form."""
    return RequestValidator(auth_token).compute_signature(url, params)


def signed_headers(auth_token: str, url: str, params: Mapping) -> dict:
    """Return the signature and content-type headers of a Twilio webhook POST."""
    return {
        "X-Twilio-Signature": twilio_signature(auth_token, url, params),
        "Content-Type": FORM_CONTENT_TYPE,
    }
