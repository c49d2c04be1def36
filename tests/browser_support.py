"""The service on real HTTP for a real browser, its phone legs played by the simulated Twilio."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from app.auth.service import create_user
from app.sandbox.call_centre import CallCentre
from app.sandbox.twilio_network import http_transport
from app.supervisor.stream import StreamTiming
from tests.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
PASSWORD = "a-long-test-password-1"
# Screenshots refresh docs/screenshots only when asked (UPDATE_SCREENSHOTS=1),
# so a test run leaves the working tree as it was.
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "switchboard-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)


# environ key: the response of the request, closed once whatever way the request ends.
RESPONSE = "browser_support.response"


class _ClosesOnce:
    """A response body whose close runs once, however often it is asked for."""

    def __init__(self, body) -> None:
        self.body = body
        self.closed = False

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close = getattr(self.body, "close", None)
            if close is not None:
                close()


class _ClosingRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, but the response of a request whose browser hung up is closed all the same.

    After a response, werkzeug's server reads what is left of the request
    before it closes the response (PEP 3333 says the server must close it).
    When the browser has gone (a page left while a script still loaded),
    that read fails first and the response is never closed: a static file's
    handle stays open until it is collected, a ResourceWarning at some later
    test. gunicorn, which serves the service, closes the response in a
    `finally` of its own.
    """

    def connection_dropped(self, error: BaseException, environ=None) -> None:
        response = (environ or {}).get(RESPONSE)
        if response is not None:
            response.close()


class LiveServer:
    """A WSGI server on 127.0.0.1 in a background thread; the app is attached once its URL is known."""

    def __init__(self):
        self.app = None
        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True,
                                  request_handler=_ClosingRequestHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def _dispatch(self, environ, start_response):
        response = environ[RESPONSE] = _ClosesOnce(self.app(environ, start_response))
        return response

    def start(self, app) -> None:
        self.app = app
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Pump:
    """Delivers the webhooks the simulated Twilio queued while serving the app's REST calls.

    In the test client those are run by the test itself; here the app is
    called by a browser, so a thread plays Twilio's part.
    """

    def __init__(self, network):
        self.network = network
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="twilio-pump", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.network.run_pending()
            except BaseException as error:  # noqa: BLE001 - reported by the fixture at the end
                self.errors.append(error)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(5)


@pytest.fixture
def live_centre(make_app, centre_settings, livekit, llm):
    """The whole contact centre served over HTTP, with a supervisor 'sam' and agents 'alice' (101), 'carmen' (201)."""
    import responses

    server = LiveServer()
    app = make_app(replace(centre_settings, public_base_url=server.url))
    # Short streams, so the browser's reconnecting is exercised and no thread outlives the test for long.
    app.config["SUPERVISOR_STREAM_TIMING"] = StreamTiming(poll_seconds=0.25, max_seconds=20)
    server.start(app)
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            # The served app, and the other parties' servers on loopback (a CAPTCHA provider's, subscribers').
            rsps.add_passthru("http://127.0.0.1")
            centre = CallCentre(app, server.url, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, livekit=livekit, llm=llm,
                                transport=http_transport())
            centre.network.install(rsps)
            centre.load_roster()
            with centre.db() as session:
                create_user(session, "sam", PASSWORD, "supervisor")
                create_user(session, "alice", PASSWORD, "agent", agent_extension="101")
                create_user(session, "carmen", PASSWORD, "agent", agent_extension="201")
            with Pump(centre.network) as pump:
                centre.url = server.url
                yield centre
            assert not pump.errors, pump.errors
    finally:
        server.stop()


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed at /usr/bin/chromium (make test installs it)"
        # In CI the browser tests must run: a missing browser fails the run.
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until(check, timeout=10.0, step=0.05):
    """Wait for CHECK() to be true (the phone side runs in other threads)."""
    give_up = time.monotonic() + timeout
    while not check():
        if time.monotonic() > give_up:
            raise AssertionError("timed out waiting")
        time.sleep(step)


VIEWPORT = {"width": 1280, "height": 800}


def new_page(browser, centre, **context_options):
    """A page in a fresh browser context (CONTEXT_OPTIONS: Playwright's, such as timezone_id)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=centre.url, **context_options)
    context.set_default_timeout(15000)
    return context.new_page()


def sign_in(page, username, password=PASSWORD):
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
