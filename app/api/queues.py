"""The JSON API for queues (token or supervisor session): each queue's figures, as the board's queue strip shows
them (app/calls/figures.py)."""

from __future__ import annotations

from flask import jsonify, request
from spectree import Response
from sqlalchemy import select

from app.api import schemas
from app.api.common import ERRORS, api_route, blueprint, error
from app.auth.service import Scope
from app.calls.figures import centre_day, queue_figures
from app.clock import utcnow
from app.models import Queue
from app.web.unit_of_work import telephony


@blueprint.get("/queues/figures")
@api_route(Scope.READ, query=schemas.FiguresQuery, resp=Response(HTTP_200=schemas.QueueFiguresList, **ERRORS),
           tags=["agents and queues"])
def figures():
    """Each queue's line now and its day so far: waiting, longest wait, average answer time, service level,
    answered, abandoned, voicemail and callbacks (the README's "Queue figures" defines each)."""
    t = telephony()
    query: schemas.FiguresQuery = request.context.query
    name = (query.queue or "").strip() or None
    if name is not None and t.session.scalar(select(Queue.id).where(Queue.name == name)) is None:
        return error(404, f"no queue {name}")
    now = utcnow()
    rows = queue_figures(t.session, zone=t.settings.centre_timezone,
                         threshold_seconds=t.settings.service_level_seconds, now=now, queue=name)
    return jsonify(schemas.QueueFiguresList(
        day_started_at=centre_day(now, t.settings.centre_timezone)[0],
        at=now,
        queues=[schemas.QueueFigures(
            queue=f.queue, waiting=f.waiting, longest_wait_seconds=f.longest_wait_seconds(now),
            longest_waiting_since=f.longest_waiting_since, answered=f.answered, abandoned=f.abandoned,
            voicemail=f.voicemail, callbacks=f.callbacks, average_answer_seconds=f.average_answer_seconds,
            service_level=f.service_level, service_level_seconds=f.service_level_seconds,
            answered_within=f.answered_within, service_level_calls=f.service_level_calls) for f in rows],
    ).model_dump(mode="json"))
