"""The live process: an ASGI app (Starlette) under uvicorn, serving every live page's stream from one event loop.

An open page costs a coroutine and a socket, not a thread. Routes, under
LIVE_STREAM_BASE (e.g. /live, which the reverse proxy sends here):
  /board/stream, /wallboard/stream (?queue=), /calls/<sid>/stream, /console/stream
and, outside that prefix so the proxy does not publish it, /status (how many
pages and topics are open, for operators' checks and the benchmark). Each stream is let in by the Flask app's own view (admission.py),
then follows its topic (topics.py); the process hears of changes through
PostgreSQL's LISTEN or, on SQLite, one look a second (changes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import uvicorn
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.live import changes
from app.live.admission import Refusal, admit
from app.live.topics import Hub, LiveTiming
from app.logs import get_logger

log = get_logger("switchboard.live")

RETRY_AFTER_SECONDS = 30
STATUS_PATH = "/status"
# With LISTEN every row a page shows names its topic when it changes, and the pages tick their durations
# themselves: the refresh is a safety net only (a console with a call offered is read every second regardless).
LISTENING_REFRESH_SECONDS = 60.0
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class LiveProcess:
    """The Flask app it asks, the hub of its topics, and whether it hears changes yet."""

    flask_app: Flask
    hub: Hub
    listening: asyncio.Event | None = None


def _page_route(kind: str):
    async def stream(request: Request) -> Response:
        live: LiveProcess = request.app.state.live
        hub = live.hub
        if hub.closing or hub.pages >= hub.max_pages:
            return _full(hub, request)
        client = request.client.host if request.client else ""
        verdict = await asyncio.to_thread(admit, live.flask_app, kind, request.path_params.get("call_sid"),
                                          request.url.query, dict(request.headers), client)
        if isinstance(verdict, Refusal):
            return Response(verdict.body, verdict.status, headers=verdict.headers)
        page = hub.join(verdict.key, verdict.read, request.headers.get("last-event-id"))
        if page is None:
            return _full(hub, request)
        return StreamingResponse(page.messages(), media_type="text/event-stream", headers=STREAM_HEADERS)

    return stream


def _full(hub: Hub, request: Request) -> Response:
    log.warning("live_stream_refused", open_pages=hub.pages, max_pages=hub.max_pages, path=request.url.path,
                stopping=hub.closing)
    return JSONResponse(
        {"error": "Too many live pages are open; poll the snapshot and try the stream again later."}, 503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"})


async def _status(request: Request) -> Response:
    return JSONResponse(request.app.state.live.hub.figures(), headers={"Cache-Control": "no-store"})


def create_live_app(flask_app: Flask, timing: LiveTiming | None = None) -> Starlette:
    """The ASGI app of the live process, asking FLASK_APP who may see what and reading with its database."""
    settings = flask_app.config["SETTINGS"]
    base = settings.live_stream_base
    routes = [
        Route(f"{base}/board/stream", _page_route("board")),
        Route(f"{base}/wallboard/stream", _page_route("wallboard")),
        Route(f"{base}/calls/{{call_sid}}/stream", _page_route("call")),
        Route(f"{base}/console/stream", _page_route("console")),
        Route(STATUS_PATH, _status),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        listens = settings.database_url.startswith("postgresql")
        chosen = timing or (LiveTiming(refresh_seconds=LISTENING_REFRESH_SECONDS) if listens else LiveTiming())
        live = app.state.live = LiveProcess(flask_app, Hub(chosen, settings.live_max_pages), asyncio.Event())
        if listens:
            source = changes.listen_postgres(settings.database_url, live.hub.changed, live.listening)
        else:
            source = changes.watch_sqlite(flask_app.extensions["db_sessionmaker"], live.hub.changed, live.listening)
        hearing = asyncio.create_task(source, name="live-changes")
        log.info("live_started", base=base or "/", max_pages=live.hub.max_pages)
        try:
            yield
        finally:
            live.hub.close()
            hearing.cancel()
            await asyncio.gather(hearing, return_exceptions=True)
            await live.hub.stopped()
            log.info("live_stopped")

    return Starlette(routes=routes, lifespan=lifespan)


class LiveServer(uvicorn.Server):
    """uvicorn's server that ends every page's stream first when asked to stop, so it never waits on open pages."""

    def __init__(self, config: uvicorn.Config, live_app: Starlette):
        super().__init__(config)
        self.live_app = live_app

    @property
    def pages(self) -> int:
        """How many pages it follows now."""
        live = getattr(self.live_app.state, "live", None)
        return live.hub.pages if live is not None else 0

    async def shutdown(self, sockets=None) -> None:
        live = getattr(self.live_app.state, "live", None)
        if live is not None:
            live.hub.close()
        await super().shutdown(sockets)


def live_server(flask_app: Flask, host: str, port: int, timing: LiveTiming | None = None) -> LiveServer:
    """The live process's server on HOST:PORT (not started)."""
    live_app = create_live_app(flask_app, timing)
    config = uvicorn.Config(live_app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=5, lifespan="on")
    return LiveServer(config, live_app)
