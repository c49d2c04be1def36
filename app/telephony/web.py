"""The web layer's way to the telephony tools of the current request."""

from __future__ import annotations

from typing import Callable, TypeVar

from flask import current_app, g
from sqlalchemy.exc import SQLAlchemyError

from app.db import after_commit, commits, lost_a_lock_conflict, request_session
from app.gateways.registry import gateways
from app.logs import get_logger
from app.telephony.context import Telephony
from app.telephony.steps import follow_up
from app.telephony.urls import WebhookUrls

log = get_logger("switchboard.web")
T = TypeVar("T")


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


def run_step(work: Callable[[Telephony], T]) -> T:
    """WORK, a page's or an API request's step on calls, run once more afresh if PostgreSQL aborted it.

    A transaction chosen as a deadlock's victim, or failed for a
    serialization conflict, before any of it was committed, is rolled back
    (its recorded effects with it) and run again (`transaction_retried`, a
    warning), as the Twilio webhook guard does for webhooks. What WORK wrote
    is flushed inside it, so such a conflict shows here and not at the
    request's commit. The request commits once, after the view (app/db.py).
    """
    session = request_session()
    before = commits(session)
    try:
        result = work(telephony())
        session.flush()
        return result
    except SQLAlchemyError as error:
        conflict = lost_a_lock_conflict(error)
        if conflict is None or commits(session) != before:
            raise
        session.rollback()
        log.warning("transaction_retried", conflict=conflict, error=str(error).splitlines()[0][:200])
    # Its freed agents, requeued calls and promised follow-up went with the rollback.
    g.pop("telephony", None)
    g.pop("after_commit", None)
    result = work(telephony())
    session.flush()
    return result
