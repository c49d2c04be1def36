"""A live stream whose viewer has left gives its place back at its next look, not at a failed write seconds later."""

import http.client
import socket
import ssl
from dataclasses import replace

import pytest

from app.supervisor.stream import StreamTiming, follow, hang_up_check
from tests.browser_support import LiveServer, wait_until
from tests.test_supervisor_pages import signed_in, users  # noqa: F401 - the users fixture


@pytest.fixture
def pair():
    ours, viewers = socket.socketpair()
    yield ours, viewers
    ours.close()
    viewers.close()


def test_an_open_quiet_connection_is_not_gone(pair):
    ours, _viewers = pair
    assert hang_up_check(ours)() is False


def test_bytes_the_viewer_sent_are_peeked_at_and_left_for_the_server(pair):
    ours, viewers = pair
    viewers.sendall(b"GET")
    gone = hang_up_check(ours)
    assert gone() is False and gone() is False
    assert ours.recv(3) == b"GET"


def test_a_connection_the_viewer_closed_is_gone(pair):
    ours, viewers = pair
    viewers.close()
    assert hang_up_check(ours)() is True


def test_a_connection_the_server_closed_is_gone(pair):
    ours, _viewers = pair
    gone = hang_up_check(ours)
    ours.close()
    assert gone() is True


def test_no_check_where_there_is_no_plain_socket():
    assert hang_up_check(None) is None
    assert hang_up_check(object()) is None
    with socket.socket() as plain:
        wrapped = ssl.create_default_context().wrap_socket(plain, server_hostname="switchboard.example",
                                                           do_handshake_on_connect=False)
        try:
            assert hang_up_check(wrapped) is None  # TLS: its reads are records; the failed write tells
        finally:
            wrapped.close()


def test_a_stream_whose_viewer_has_gone_ends_without_reading_again(centre):
    reads = []

    def cursor_of(_session):
        reads.append("cursor")
        return "1"

    looks = iter([False, True])
    events = list(follow(centre.app.extensions["db_sessionmaker"], cursor_of, lambda _s: {"calls": []}, None,
                         StreamTiming(poll_seconds=1), sleep=lambda _s: None, viewer_gone=lambda: next(looks)))
    assert reads == ["cursor"]  # one look while the viewer was there, none after
    assert events[0].startswith("retry:") and events[1].startswith("event: snapshot")
    assert len(events) == 2


def _open_stream(url: str, cookie: str) -> http.client.HTTPResponse:
    """The board's stream, its headers read; the connection stays open until the response is closed."""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    connection.request("GET", "/board/stream", headers={"Cookie": cookie, "Accept": "text/event-stream"})
    return connection.getresponse()


def test_a_page_left_gives_its_stream_place_to_the_next_page_at_once(centre, users):  # noqa: F811
    # One stream per process (WEB_THREADS 3), a heartbeat of 15 s and nothing changing: the stream of a page its
    # viewer has left writes nothing for 15 s, so only the look at its connection can give the place back sooner.
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"], web_threads=3)
    centre.app.config["SUPERVISOR_STREAM_TIMING"] = StreamTiming(poll_seconds=0.05, heartbeat_seconds=15,
                                                                 max_seconds=60)
    client = signed_in(centre, "sam")
    session_cookie = client.get_cookie(centre.app.config["SESSION_COOKIE_NAME"])
    cookie = f"{session_cookie.key}={session_cookie.value}"
    server = LiveServer()
    server.start(centre.app)
    opened = []
    try:
        first = _open_stream(server.url, cookie)
        opened.append(first)
        assert first.status == 200 and first.readline() == b"retry: 2000\n"
        refused = _open_stream(server.url, cookie)
        opened.append(refused)
        assert refused.status == 503  # the one place is the first page's

        first.close()  # the viewer opens another page: the browser closes the first page's connection

        def admitted() -> bool:
            response = _open_stream(server.url, cookie)
            opened.append(response)
            return response.status == 200

        wait_until(admitted, timeout=5)
    finally:
        for response in opened:
            response.close()
        gate = centre.app.extensions["supervisor_stream_gate"]
        try:
            assert gate.close(5)  # every stream has ended: no thread is left behind
        finally:
            server.stop()
