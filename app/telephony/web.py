"""The web layer's way to the telephony tools of the current request."""

from __future__ import annotations

from flask import current_app, g

from app.db import after_commit, request_session
from app.gateways.registry import gateways
from app.telephony.context import Telephony
from app.telephony.steps import follow_up
from app.telephony.urls import WebhookUrls


def telephony() -> Telephony:
    """The Telephony of this request (built once per request)."""
    if "telephony" not in g:
        settings = current_app.config["SETTINGS"]
        outside = gateways()
        g.telephony = Telephony(
            session=request_session(),
            settings=settings,
            urls=WebhookUrls(settings.public_base_url),
            twilio_gateway=outside.twilio,
            livekit_gateway=outside.livekit,
            llm_gateway=outside.llm,
            summarise_later=current_app.extensions["summaries"].start,
        )
        after_commit(lambda: _after_commit(g.telephony))
    return g.telephony


def _after_commit(t: Telephony) -> None:
    # The step is committed: Twilio and LiveKit follow it. Then calls this
    # request put back in the queue, and agents it freed, are offered now,
    # not when a caller's hold music next ends.
    follow_up(t)
