"""The load check's proxy in front of several instances: each call's webhooks go to the instances in turn."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from tests.benchmarks.load import AlternatingProxy


class _Instance:
    """A loopback HTTP server that answers with its name and keeps the forms it was sent."""

    def __init__(self, name: str):
        self.name, self.forms = name, []
        instance = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                instance.forms.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
                body = instance.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Served-By", instance.name)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_one_calls_webhooks_alternate_between_the_instances_and_calls_spread_over_them():
    first, second = _Instance("first"), _Instance("second")
    try:
        with AlternatingProxy([first.url, second.url]) as proxy, requests.Session() as twilio:
            served = {}
            for sid in ("CA1", "CA2", "CA1", "CA3", "CA1", "CA2", "CA3", "CA1"):
                answer = twilio.post(proxy.url + "/twilio/voice", data={"CallSid": sid, "Digits": "1"}, timeout=5)
                assert answer.status_code == 200 and answer.headers["X-Served-By"] == answer.text
                served.setdefault(sid, []).append(answer.text)
            livekit = [twilio.post(proxy.url + "/livekit/webhook", data=b"{}", timeout=5).text for _ in range(2)]
    finally:
        first.close()
        second.close()
    for turns in served.values():  # never the same instance twice in a row for one call
        assert all(a != b for a, b in zip(turns, turns[1:]))
    assert {turns[0] for turns in served.values()} == {"first", "second"}  # calls start on both
    assert sorted(livekit) == ["first", "second"]
    # Each form reaches its instance as sent, and the proxy counts what it sent where.
    assert sorted(first.forms + second.forms) == sorted([f"CallSid={sid}&Digits=1" for sid in
                                                         ("CA1", "CA2", "CA1", "CA3", "CA1", "CA2", "CA3", "CA1")]
                                                        + ["{}", "{}"])
    assert (proxy.sent[0], proxy.sent[1]) == (len(first.forms), len(second.forms))
