"""The live pages' process on loopback for a test, and a server-sent events client that reads it as a browser's
EventSource would (over a real socket, with the signed-in viewer's session cookie)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

from app.live.server import LiveServer, live_server
from app.live.topics import LiveTiming

BASE = "/live"
# Quick enough for a test: a topic is read again every second anyway, and a page hears a heartbeat every second.
TEST_TIMING = LiveTiming(refresh_seconds=1.0, settle_seconds=0.05, heartbeat_seconds=1.0, max_seconds=30.0)


@contextmanager
def running_live(app, timing: LiveTiming = TEST_TIMING, **settings):
    """Serve APP's live pages under /live on a free loopback port until the block ends; yields the server."""
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], live_stream_base=BASE, **settings)
    server = live_server(app, "127.0.0.1", 0, timing)
    thread = threading.Thread(target=server.run, name="live-server")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not (server.started and server.live_app.state.live.listening.is_set()):
            assert thread.is_alive() and time.monotonic() < deadline, "the live process did not start"
            time.sleep(0.02)
        yield server
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "the live process did not stop"


def port_of(server: LiveServer) -> int:
    return server.servers[0].sockets[0].getsockname()[1]


def cookie_of(app, client) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return f"{cookie.key}={cookie.value}"


def wait_for(condition, seconds: float = 5.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not come within {seconds} s"
        time.sleep(0.02)


class SseClient:
    """One open live page: GET PATH with COOKIE; status, headers, and the events as they come."""

    def __init__(self, server: LiveServer, path: str, cookie: str | None = None, last_event_id: str | None = None,
                 timeout: float = 10.0):
        self.connection = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if cookie:
            headers["Cookie"] = cookie
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", BASE + path, headers=headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status

    def body(self) -> bytes:
        return self.response.read()

    def next_event(self) -> dict:
        """The next event's fields (event, id, data; data parsed as JSON), skipping retry and heartbeats."""
        fields: dict = {}
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the stream ended")
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in fields:
                    return fields
                fields = {}
            elif not line.startswith(":") and ": " in line:
                name, value = line.split(": ", 1)
                fields[name] = json.loads(value) if name == "data" else value

    def next_snapshot(self, until=lambda snapshot: True) -> dict:
        """The next snapshot for which UNTIL holds (a `gone` event raises)."""
        while True:
            event = self.next_event()
            assert event["event"] == "snapshot", f"the stream said {event['event']}"
            if until(event["data"]):
                self.last_id = event["id"]
                return event["data"]

    def close(self) -> None:
        self.connection.close()


class LiveRoute:
    """WSGI middleware that sends /live/... to the live process, streaming its answer back: what the reverse proxy
    in front of the service does in production, so a browser's pages and streams share one origin."""

    def __init__(self, wsgi_app, server: LiveServer):
        self.wsgi_app, self.server = wsgi_app, server

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(BASE + "/"):
            return self.wsgi_app(environ, start_response)
        query = environ.get("QUERY_STRING", "")
        connection = http.client.HTTPConnection("127.0.0.1", port_of(self.server), timeout=60)
        headers = {name: environ[key] for name, key in (("Cookie", "HTTP_COOKIE"), ("Last-Event-ID",
                   "HTTP_LAST_EVENT_ID"), ("Accept", "HTTP_ACCEPT")) if key in environ}
        connection.request("GET", path + (f"?{query}" if query else ""), headers=headers)
        response = connection.getresponse()
        start_response(f"{response.status} {response.reason}",
                       [(name, value) for name, value in response.getheaders()
                        if name.lower() not in ("transfer-encoding", "connection", "content-length")])

        def body():
            try:
                while chunk := response.read1(65536):
                    yield chunk
            finally:
                connection.close()  # the browser went away: so does the page, at the live process

        return body()
