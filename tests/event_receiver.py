"""A subscriber of the service's event webhooks, on loopback: a real HTTP server that keeps what it received."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return self.payload["type"]

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """Answers each POST with the next of `answers` (a status, or "slow": no answer for `slow_seconds`), then 204."""

    def __init__(self, slow_seconds: float = 1.0) -> None:
        self.received: list[Received] = []
        self.answers: list[int | str] = []
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                    answer = receiver.answers.pop(0) if receiver.answers else 204
                if answer == "slow":
                    time.sleep(receiver.slow_seconds)  # the subscriber's own slowness, past the service's timeout
                    answer = 204
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def types(self) -> list[str]:
        return [r.type for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
