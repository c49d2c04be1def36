"""One log line per request, with what the request cost: `request_served`.

Written once the response is closed, so it covers the whole request: the
view, its commit, and what follows the commit, including the part that runs
after the answer has gone (a hold turn's follow-up; see web/unit_of_work.py).
It carries the client's address, method, path, status, `duration_ms`, the
request id, and two costs:

- `db_statements`: the statements the request sent through the service's
  database engine (SQLAlchemy's `before_cursor_execute`: every SELECT,
  INSERT, UPDATE, DELETE; not the driver's own BEGIN, COMMIT and ROLLBACK,
  nor the job queue's own connection);
- `cpu_ms`: the CPU time of the worker thread that served it
  (`time.thread_time`), user and system, in milliseconds.

A WSGI thread serves one request at a time, and the statements are counted
into a context variable of that thread, so the background threads (the job
worker, the timers) never add to a request's count.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Callable, Iterable

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.logs import get_logger

log = get_logger("switchboard.request")


class RequestCost:
    """What one request has cost so far: statements sent, worker CPU used, time taken."""

    __slots__ = ("statements", "_cpu_started", "_started")

    def __init__(self) -> None:
        self.statements = 0
        self._cpu_started = time.thread_time()
        self._started = time.perf_counter()

    def cpu_ms(self) -> float:
        return (time.thread_time() - self._cpu_started) * 1000

    def duration_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000


_current: ContextVar[RequestCost | None] = ContextVar("request_cost", default=None)


def current_cost() -> RequestCost | None:
    """The cost of the request this thread is serving, or None outside one."""
    return _current.get()


def count_statements(engine: Engine) -> None:
    """Count every statement ENGINE sends into the cost of the request being served, if any."""
    event.listen(engine, "before_cursor_execute", _count_statement)


def _count_statement(_conn, _cursor, _statement, _parameters, _context, _executemany) -> None:
    cost = _current.get()
    if cost is not None:
        cost.statements += 1


class MeasuredRequests:
    """WSGI middleware: measures each request and logs `request_served` once its response is closed."""

    def __init__(self, wsgi_app: Callable) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        cost = RequestCost()
        outer = _current.get()  # None but for a request served inside another's (a test's simulated Twilio)
        _current.set(cost)
        answer: dict[str, Any] = {}

        def start(status: str, headers: list, exc_info=None):
            answer["status"] = int(status.split(" ", 1)[0])
            answer["request_id"] = next((v for k, v in headers if k.lower() == "x-request-id"), None)
            return start_response(status, headers, exc_info)

        try:
            body = self.wsgi_app(environ, start)
        except BaseException:
            self._served(environ, cost, answer, outer)
            raise
        def then() -> None:
            self._served(environ, cost, answer, outer)

        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            # A file (the hold music): left as the server's own wrapper so that it can still send it with
            # sendfile; its close is followed by the line.
            body.close = _closed_then(getattr(body, "close", None), then)
            return body
        return _ClosedThen(body, then)

    @staticmethod
    def _served(environ: dict, cost: RequestCost, answer: dict, outer: RequestCost | None) -> None:
        _current.set(outer)
        log.info("request_served", client=environ.get("REMOTE_ADDR"), method=environ.get("REQUEST_METHOD"),
                 path=environ.get("PATH_INFO"), status=answer.get("status"),
                 duration_ms=round(cost.duration_ms(), 1), db_statements=cost.statements,
                 cpu_ms=round(cost.cpu_ms(), 2), request_id=answer.get("request_id"))


def _closed_then(close: Callable[[], None] | None, then: Callable[[], None]) -> Callable[[], None]:
    def closed() -> None:
        try:
            if close is not None:
                close()
        finally:
            then()

    return closed


class _ClosedThen:
    """A response body that calls THEN after its own close (PEP 3333: the server always closes it)."""

    def __init__(self, body: Iterable[bytes], then: Callable[[], None]) -> None:
        self.body = body
        self.then = then

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        _closed_then(getattr(self.body, "close", None), self.then)()


def init_request_cost(app: Flask) -> None:
    """Count the statements of the app's engine per request, and log each request's line with its costs."""
    count_statements(app.extensions["db_engine"])
    app.wsgi_app = MeasuredRequests(app.wsgi_app)  # type: ignore[method-assign]
