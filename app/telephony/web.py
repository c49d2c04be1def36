"""The web layer's way to the telephony tools of the current request."""

from __future__ import annotations

from flask import current_app, g

from app.db import after_commit, request_session
from app.gateways.registry import gateways
from app.routing.service import offer_waiting_calls
from app.telephony.context import Telephony
from app.telephony.effects import carry_out
from app.telephony.urls import WebhookUrls
from app.transfers.summary import background_summariser


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
            summarise_later=background_summariser(current_app.extensions["db_sessionmaker"], outside.llm),
        )
        after_commit(lambda: _after_commit(g.telephony))
    return g.telephony


def _after_commit(t: Telephony) -> None:
    # The step is committed: Twilio and LiveKit follow it (redirects, hang-ups,
    # rooms closed), in the order the step recorded them. Then calls this
    # request put back in the queue, and agents it freed, are offered now,
    # not when a caller's hold music next ends (offering records effects too).
    carry_out(t)
    if t.freed_agent_ids or t.requeued_call_ids:
        offer_waiting_calls(t)
        t.session.flush()
        carry_out(t)
