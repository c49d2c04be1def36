"""Per-request log context: a request id (from X-Request-Id or new) bound into every log line."""

from __future__ import annotations

import re
import uuid

import structlog
from flask import Flask, g, request

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def init_request_context(app: Flask) -> None:
    """Bind request_id before each request and echo it in the response."""

    @app.before_request
    def bind_request_id():
        structlog.contextvars.clear_contextvars()
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def echo_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response

    @app.teardown_request
    def unbind(_error):
        structlog.contextvars.clear_contextvars()
