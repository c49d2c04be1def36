"""The service's one clock.

Everything that stores or compares a moment asks `utcnow()`. In production it
is the system's time; a sandbox that runs the service in its own process can
hand it a virtual clock (`use_clock`), so ring timeouts and queue waits are
tested in milliseconds instead of being slept through.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

_source: Callable[[], datetime] | None = None
_sleeper: Callable[[float], None] = time.sleep
_monotonic: Callable[[], float] = time.monotonic


def utcnow() -> datetime:
    """Timezone-aware now: the system's time unless a virtual clock was handed in."""
    return _source() if _source is not None else datetime.now(timezone.utc)


def use_clock(source: Callable[[], datetime] | None) -> None:
    """Read the time from SOURCE from now on (None: the system's time again)."""
    global _source
    _source = source


def sleep(seconds: float) -> None:
    """Wait SECONDS (a retry's back-off): the system's sleep unless a sandbox handed in its own (use_sleeper)."""
    _sleeper(seconds)


def use_sleeper(sleeper: Callable[[float], None] | None) -> None:
    """Wait with SLEEPER from now on (None: the system's sleep again); a sandbox on a virtual clock records it."""
    global _sleeper
    _sleeper = sleeper or time.sleep


def monotonic() -> float:
    """Seconds on a clock that only goes forward (a request's time budget): the system's unless a sandbox handed
    in its own (use_monotonic)."""
    return _monotonic()


def use_monotonic(source: Callable[[], float] | None) -> None:
    """Read elapsed time from SOURCE from now on (None: the system's monotonic clock again)."""
    global _monotonic
    _monotonic = source or time.monotonic
