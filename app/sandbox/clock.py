"""A virtual clock for the sandbox: time moves only when a test (or the demo) moves it.

The Twilio simulator and the LiveKit stand-in set their timers on it (a
<Dial> timeout, the length of a <Play>, a room's empty timeout), and the
service reads it through app.clock when it runs in the same process. So a
30 s ring timeout is crossed with `advance(31)` in a few milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional


@dataclass(order=True)
class Timer:
    """Work due at a moment; `cancel()` before it is due and it never runs."""

    due: datetime
    order: int
    work: Callable[[], None] = field(compare=False)
    label: str = field(default="", compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Never run this timer."""
        self.cancelled = True


class VirtualClock:
    """Now, and the timers set on it; `advance` runs the ones that fall due, in order."""

    def __init__(self, start: Optional[datetime] = None):
        self._now = start or datetime.now(timezone.utc).replace(microsecond=0)
        self._timers: list[Timer] = []
        self._order = itertools.count()
        self._lock = threading.RLock()

    def now(self) -> datetime:
        """The virtual moment, timezone-aware."""
        with self._lock:
            return self._now

    def call_later(self, seconds: float, work: Callable[[], None], label: str = "") -> Timer:
        """Run WORK once SECONDS have passed on this clock."""
        with self._lock:
            timer = Timer(self._now + timedelta(seconds=seconds), next(self._order), work, label)
            heapq.heappush(self._timers, timer)
            return timer

    def pending(self) -> list[Timer]:
        """The timers still to run, soonest first."""
        with self._lock:
            return sorted(t for t in self._timers if not t.cancelled)

    def advance(self, seconds: float, between: Optional[Callable[[], None]] = None) -> int:
        """Move time forward by SECONDS, running each timer at its own moment; returns how many ran.

        BETWEEN runs after each timer (the simulator delivers the webhooks a
        timer queued before the next one falls due).
        """
        if seconds < 0:
            raise ValueError("time does not go backwards")
        with self._lock:
            end = self._now + timedelta(seconds=seconds)
        ran = 0
        while True:
            with self._lock:
                while self._timers and self._timers[0].cancelled:
                    heapq.heappop(self._timers)
                if not self._timers or self._timers[0].due > end:
                    self._now = end
                    return ran
                timer = heapq.heappop(self._timers)
                self._now = max(self._now, timer.due)
            timer.work()
            ran += 1
            if between is not None:
                between()
