"""Topics: what one kind of live page shows of one subject, computed once per change for all its viewers.

A topic is a page kind and its subject (the board for a queue filter, one
call's page as a supervisor or as one agent sees it, one agent's console).
Its task reads the snapshot when a change touches it (at most once per
settle_seconds, so a burst of steps costs one read) and every
refresh_seconds anyway (for changes that write no event: a presence set from
the CLI, durations), in a worker thread with a short session of its own, and
hands the message to every page following it. A topic lives while a page
follows it. Messages are the ones app/supervisor/stream.py sends (app/static/live.js reads
both): `retry`, `snapshot` with the id cursor-digest, heartbeats, `gone`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Callable, Hashable

from app.live.signal import ANYTHING_ELSE, EVERYTHING
from app.logs import get_logger
from app.supervisor.board import digest
from app.supervisor.stream import StreamTiming, sse_message

log = get_logger("switchboard.live")

GONE = sse_message("{}", event="gone")
# A read that failed (the database away) is tried again this soon.
READ_RETRY_SECONDS = 2.0
HEARTBEAT = ": still here\n\n"


@dataclass(frozen=True)
class LiveTiming(StreamTiming):
    """A web worker's stream timing (its refresh, heartbeat and retry; poll_seconds unused: changes are heard), a
    burst's settling time, and a longer life: a page's stream ends every max_seconds and EventSource reconnects,
    its viewer let in again (signed out, or no longer allowed, they are not)."""

    max_seconds: float = 300.0
    # Half a second: a busy board is read at most twice a second, its updates still within a second (p99 0.66 s
    # with 200 pages and 2,000 live calls, docs/performance.md); at 0.2 s the live process used twice the CPU.
    settle_seconds: float = 0.5


@dataclass(frozen=True)
class TopicKey:
    """A page kind (board, wallboard, call, console), its subject (a queue's name, a call's or an agent's id) and,
    for a call's page, who views it ('supervisor' or 'agent:<id>')."""

    kind: str
    subject: Hashable = None
    viewer: str = ""


@dataclass(frozen=True)
class Reading:
    """What a topic's read found: the cursor, the snapshot (None: the subject is gone), and for a console the
    ids of the calls its agent has a live leg on (their changes touch it)."""

    cursor: str
    snapshot: dict | None
    calls: frozenset[int] = frozenset()
    # Sooner than refresh_seconds when what is shown changes with time alone (a ring running out).
    refresh_seconds: float | None = None


Read = Callable[[], Reading]


class Page:
    """One open live page: the latest message it has not been sent yet (older ones are never worth sending)."""

    def __init__(self, hub: "Hub", topic: "Topic", last_event_id: str | None):
        self.hub, self.topic = hub, topic
        self.sent_id = last_event_id
        self._next: str | None = None
        self._ended = False
        self._ready = asyncio.Event()

    def offer(self, message_id: str, text: str) -> None:
        if message_id == self.sent_id:
            return
        self.sent_id, self._next = message_id, text
        self._ready.set()

    def end(self, last_words: str | None = None) -> None:
        if last_words is not None:
            self._next = last_words
        self._ended = True
        self._ready.set()

    async def messages(self) -> AsyncIterator[str]:
        """The page's stream, until its time is up, its subject is gone or the process stops. Leaving it (the
        viewer went away) gives the page's place back at once."""
        timing = self.hub.timing
        loop = asyncio.get_running_loop()
        try:
            yield f"retry: {timing.retry_ms}\n\n"
            started = last_output = loop.time()
            while True:
                now = loop.time()
                wait = min(timing.heartbeat_seconds - (now - last_output), timing.max_seconds - (now - started))
                try:
                    await asyncio.wait_for(self._ready.wait(), max(0.0, wait))
                except TimeoutError:
                    pass
                now = loop.time()
                if self._ready.is_set():
                    self._ready.clear()
                    text, self._next = self._next, None
                    if text:
                        yield text
                        last_output = now
                if self._ended or now - started >= timing.max_seconds:
                    return
                if now - last_output >= timing.heartbeat_seconds:
                    yield HEARTBEAT
                    last_output = now
        finally:
            self.hub.leave(self)


class Topic:
    """One topic's subscribers, its latest message, and the task that reads it."""

    def __init__(self, hub: "Hub", key: TopicKey, read: Read):
        self.hub, self.key, self.read = hub, key, read
        self.pages: set[Page] = set()
        self.message: tuple[str, str] | None = None
        self.calls: frozenset[int] = frozenset()
        self.wake = asyncio.Event()
        self.wake.set()  # the first read at once
        self.reads = 0
        self.read_seconds = 0.0
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"live-topic-{key.kind}")

    def touched_by(self, topics: set[str]) -> bool:
        kind, subject = self.key.kind, self.key.subject
        if EVERYTHING in topics or kind in ("board", "wallboard"):
            return True
        if kind == "call":
            return f"call:{subject}" in topics
        if kind == "console":
            return f"agent:{subject}" in topics or any(f"call:{call}" in topics for call in self.calls)
        return ANYTHING_ELSE in topics

    async def _run(self) -> None:
        timing = self.hub.timing
        refresh = timing.refresh_seconds
        loop = asyncio.get_running_loop()
        try:
            while self.pages:
                try:
                    await asyncio.wait_for(self.wake.wait(), refresh)
                except TimeoutError:
                    pass
                self.wake.clear()
                if not self.pages:
                    break
                started = loop.time()
                try:
                    reading, message = await asyncio.to_thread(self._read)
                except Exception as error:  # the database away: the pages keep what they have, and we look again
                    log.warning("live_read_failed", topic=self.key.kind, error=str(error)[:300],
                                retry_seconds=READ_RETRY_SECONDS)
                    await asyncio.sleep(READ_RETRY_SECONDS)
                    self.wake.set()
                    continue
                self.reads += 1
                self.read_seconds = loop.time() - started  # in the thread and waiting for one: what a change waits
                refresh = reading.refresh_seconds or timing.refresh_seconds
                if reading.snapshot is None:
                    for page in list(self.pages):
                        page.end(GONE)
                    break
                self._send(reading, message)
                await asyncio.sleep(timing.settle_seconds)  # a burst of changes: one read for all of it
        finally:
            self.hub.forget(self)

    def _read(self) -> tuple[Reading, tuple[str, str] | None]:
        """In a worker thread: the reading, and its message when it differs from the last one sent (serialising
        a board of thousands of calls takes tens of milliseconds, which the event loop's pages do not wait for)."""
        reading = self.read()
        if reading.snapshot is None:
            return reading, None
        message_id = f"{reading.cursor}-{digest(reading.snapshot)}"
        if self.message is not None and self.message[0] == message_id:
            return reading, None
        payload = {**reading.snapshot, "server_time": datetime.now(timezone.utc).isoformat()}
        return reading, (message_id, sse_message(json.dumps(payload, separators=(",", ":")), event="snapshot",
                                                 event_id=message_id))

    def _send(self, reading: Reading, message: tuple[str, str] | None) -> None:
        self.calls = reading.calls
        if message is None:
            return
        self.message = message
        for page in self.pages:
            page.offer(*message)


class Hub:
    """Every topic and open page of the process, on one event loop."""

    def __init__(self, timing: LiveTiming, max_pages: int):
        self.timing, self.max_pages = timing, max_pages
        self.topics: dict[TopicKey, Topic] = {}
        self.pages = 0
        self.closing = False

    def join(self, key: TopicKey, read: Read, last_event_id: str | None = None) -> Page | None:
        """A new page following KEY (read with READ, if the topic is new); None when the process is full."""
        if self.closing or self.pages >= self.max_pages:
            return None
        topic = self.topics.get(key)
        if topic is None:
            topic = self.topics[key] = Topic(self, key, read)
        page = Page(self, topic, last_event_id)
        topic.pages.add(page)
        self.pages += 1
        if topic.message is not None:
            page.offer(*topic.message)
        return page

    def leave(self, page: Page) -> None:
        topic = page.topic
        if page in topic.pages:
            topic.pages.discard(page)
            self.pages -= 1
            if not topic.pages:
                topic.wake.set()  # its task sees nobody follows it and ends

    def forget(self, topic: Topic) -> None:
        for page in list(topic.pages):
            page.end()
            self.leave(page)
        if self.topics.get(topic.key) is topic:
            del self.topics[topic.key]

    def figures(self) -> dict:
        """How many pages and topics are open, and each page kind's topics and their slowest last read."""
        kinds: dict[str, dict] = {}
        for topic in self.topics.values():
            kind = kinds.setdefault(topic.key.kind, {"topics": 0, "pages": 0, "slowest_read_ms": 0})
            kind["topics"] += 1
            kind["pages"] += len(topic.pages)
            kind["slowest_read_ms"] = max(kind["slowest_read_ms"], round(topic.read_seconds * 1000))
        return {"pages": self.pages, "topics": len(self.topics), "max_pages": self.max_pages, "kinds": kinds}

    def changed(self, topics: set[str]) -> None:
        """What a committed step (or the SQLite watcher) says changed: the topics it touches read again."""
        for topic in self.topics.values():
            if topic.touched_by(topics):
                topic.wake.set()

    def close(self) -> None:
        """The process is stopping: every page's stream ends (EventSource reconnects elsewhere)."""
        self.closing = True
        for topic in list(self.topics.values()):
            for page in list(topic.pages):
                page.end()
                self.leave(page)

    async def stopped(self) -> None:
        """Wait for every topic's task (a read under way finishes first): none reads the database after this."""
        await asyncio.gather(*(topic.task for topic in list(self.topics.values())), return_exceptions=True)
