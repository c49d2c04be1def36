"""A loopback HTTP server answering Twilio's REST API from a TwilioNetwork."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from app.sandbox.twilio_network import TwilioNetwork, basic_credentials
from app.sandbox.twilio_rest import Media


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive socket
    # outlives the server.
    protocol_version = "HTTP/1.0"
    server: "_Server"

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def do_DELETE(self):
        self._answer()

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        status, payload = self.server.network.handle_rest(
            self.command, parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            form=parse_qsl(body, keep_blank_values=True),
            auth=basic_credentials(self.headers.get("Authorization")),
        )
        if isinstance(payload, Media):
            data, content_type = payload.data, payload.content_type
        else:
            data, content_type = json.dumps(payload).encode("utf-8"), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    network: TwilioNetwork


class TwilioStandIn:
    """Twilio's REST API on 127.0.0.1, with queued webhooks delivered in the background."""

    def __init__(self, network: TwilioNetwork, host: str = "127.0.0.1", port: int = 0,
                 pump_interval: float = 0.02):
        self.network = network
        self._server = _Server((host, port), _Handler)
        self._server.network = network
        self._pump_interval = pump_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """Base URL to give twilio-python in place of https://api.twilio.com."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "TwilioStandIn":
        """Serve requests and deliver pending webhooks until closed."""
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="twilio-stand-in", daemon=True)
        pump = threading.Thread(target=self._pump, name="twilio-stand-in-pump", daemon=True)
        self._threads = [serve, pump]
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the socket."""
        self._stop.set()
        if self._threads:
            self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> "TwilioStandIn":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _pump(self) -> None:
        while not self._stop.wait(self._pump_interval):
            try:
                self.network.run_pending()
            except Exception as error:  # a bad webhook answer must not stop the demo
                self.network.errors.append(error)

