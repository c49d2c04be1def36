"""A stand-in's HTTP server on a loopback port, served by a daemon thread until it is stopped."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Callable


class LoopbackServing:
    """Serves one stand-in's server in a daemon thread named NAME; STOPPING is set from the moment it stops, so
    that requests still waiting (a slow answer, a held one) give up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """http://host:port of the running server."""
        if self.server is None:
            raise RuntimeError("the stand-in is not running")
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, server: ThreadingHTTPServer) -> None:
        """Serve SERVER (already listening) until stop()."""
        self.stopping.clear()
        self.server = server
        # Not a job: a stand-in is another party's server (LiveKit's, the LLM's) on loopback, for tests and the
        # demo only, and it serves HTTP for as long as it runs; stop() ends and joins the thread.
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name,
                                        daemon=True)
        self._thread.start()

    def stop(self, wake: Callable[[], None] = lambda: None) -> None:
        """Stop serving and release the port; WAKE then ends what the server's own shutdown does not (open
        keep-alive connections), before the serving thread is waited for."""
        if self.server is None:
            return
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        wake()
        if self._thread is not None:
            self._thread.join(5)
        self.server = None
        self._thread = None
