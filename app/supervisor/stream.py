"""Server-sent events that follow the database, so any worker on any host can serve any viewer.

Nothing is kept in process memory between requests: each stream polls a
cheap cursor (the newest event id) every second in a short transaction of
its own, rebuilds the page data when the cursor moves (and every few seconds
anyway, for changes that write no event, such as a presence set from the
CLI), and sends it when it differs from what the viewer last got. The id of
each message is the cursor plus a digest of the data, so a browser that
reconnects with Last-Event-ID gets nothing until something really changes.
A stream ends after under a minute so a gthread thread is never held long;
EventSource reconnects by itself. Each stream holds one of a worker's threads
for all that time, so a StreamGate caps how many run at once in a process and
the rest of the threads stay free for Twilio's webhooks. A stream whose
viewer has left (another page opened, the tab closed) ends at its next look,
where the server hands over the connection's socket (`hang_up_check`), so its
place is free for the next page at once rather than after a failed write.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

from sqlalchemy.orm import Session, sessionmaker

from app.database import read_as_one
from app.supervisor.board import digest


@dataclass(frozen=True)
class StreamTiming:
    """How often a stream looks at the database, and how long it lives."""

    poll_seconds: float = 1.0
    refresh_seconds: float = 5.0
    heartbeat_seconds: float = 15.0
    # Short, so a thread comes back to the pool soon and a refused viewer
    # finds a free slot within a minute; reconnecting costs one request.
    max_seconds: float = 55.0
    retry_ms: int = 2000


def sse_message(data: str, *, event: str | None = None, event_id: str | None = None) -> str:
    """One server-sent event; DATA must be a single line (JSON is)."""
    lines = []
    if event:
        lines.append(f"event: {event}")
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"


def hang_up_check(connection: object) -> Callable[[], bool] | None:
    """A check, answering at once, whether the viewer has closed CONNECTION (the server's socket for the request:
    gunicorn's `gunicorn.socket`, werkzeug's `werkzeug.socket`); None where that cannot be told, and the stream
    then learns it from a failed write.

    A closed connection reads as end of file. The check peeks, so it never takes a byte the server would read,
    and looks only when the socket is readable, so it never waits. A TLS socket is not peeked at (its reads
    are records, not bytes): behind TLS at the server, the failed write tells.
    """
    if not isinstance(connection, socket.socket) or isinstance(connection, ssl.SSLSocket):
        return None

    def gone() -> bool:
        try:
            # poll, not select: select refuses descriptors past 1024, which a busy worker may hand out.
            watch = select.poll()
            watch.register(connection, select.POLLIN)
            if not watch.poll(0):
                return False
            return connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):  # reset by the viewer, or already closed by the server
            return True

    return gone


def follow(
    make_session: sessionmaker,
    cursor_of: Callable[[Session], str],
    snapshot_of: Callable[[Session], dict | None],
    last_event_id: str | None = None,
    timing: StreamTiming = StreamTiming(),
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    closing: threading.Event | None = None,
    viewer_gone: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """Yield server-sent events carrying SNAPSHOT_OF's data whenever it changes, until max_seconds pass.

    SNAPSHOT_OF answers None when what the page shows no longer exists: the
    stream then says `gone` and ends. It also ends as soon as CLOSING is set
    (the process is shutting down; EventSource reconnects to another), and at
    the first look after VIEWER_GONE answers True (see hang_up_check).
    """
    yield f"retry: {timing.retry_ms}\n\n"
    sent_id = last_event_id
    seen_cursor = None
    started = last_output = clock()
    last_build = float("-inf")
    while True:
        if viewer_gone is not None and viewer_gone():
            return
        now = clock()
        snapshot = None
        # A fresh, short transaction per look: a long one would pin an old
        # snapshot of the database (and, on SQLite, its lock).
        # One consistent view per look: the cursor and the snapshot agree (database.read_as_one).
        with read_as_one(make_session()) as session:
            cursor = cursor_of(session)
            if cursor != seen_cursor or now - last_build >= timing.refresh_seconds:
                snapshot = snapshot_of(session)
                if snapshot is None:
                    yield sse_message("{}", event="gone")
                    return
            session.rollback()
        if snapshot is not None:
            seen_cursor, last_build = cursor, now
            message_id = f"{cursor}-{digest(snapshot)}"
            if message_id != sent_id:
                sent_id = message_id
                payload = {**snapshot, "server_time": datetime.now(timezone.utc).isoformat()}
                yield sse_message(json.dumps(payload, separators=(",", ":")), event="snapshot", event_id=message_id)
                last_output = now
        if now - last_output >= timing.heartbeat_seconds:
            yield ": still here\n\n"
            last_output = now
        if now - started >= timing.max_seconds or (closing is not None and closing.is_set()):
            return
        sleep(timing.poll_seconds)


class StreamSlot:
    """One place in a StreamGate, given back once however often release is called."""

    def __init__(self, gate: "StreamGate"):
        self._gate = gate
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        """Give the place back; later calls do nothing."""
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._gate._give_back()

    def guard(self, events: Iterable[str]) -> Iterator[str]:
        """Yield EVENTS, giving the place back when they end, fail or the viewer goes away."""
        try:
            yield from events
        finally:
            # Also reached on GeneratorExit, when the server closes the body
            # because the viewer went away; yield from closes EVENTS first.
            self.release()


class StreamGate:
    """At most LIMIT streams at once in this process; a refused viewer polls instead.

    Closing the gate (the process is stopping) ends the streams under way at
    their next look and waits for them, so none reads the database after the
    process has let its connections go.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.closing = threading.Event()
        self._open = 0
        self._changed = threading.Condition()

    def enter(self) -> StreamSlot | None:
        """A slot if one is free now, else None: never waits, so a refusal holds no thread."""
        with self._changed:
            if self._open >= self.limit or self.closing.is_set():
                return None
            self._open += 1
        return StreamSlot(self)

    def _give_back(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def close(self, wait_seconds: float) -> bool:
        """End the streams under way and wait at most WAIT_SECONDS for them; True when none is left."""
        self.closing.set()
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, wait_seconds)
