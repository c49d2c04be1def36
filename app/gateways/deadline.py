"""A cap on how long any one call to Twilio or LiveKit may wait, set by the step that makes it.

A webhook must answer within Twilio's 15 s, so every REST and LiveKit call
it makes draws from one time budget (primitives.context.Budget): inside
`at_most(seconds)`, a gateway waits no longer than that, whatever its own
timeout. Outside one (a background job, a page), the gateway's own timeout
holds. A context variable, so each thread (a gunicorn worker's request)
has its own.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

# Nothing below this: a call given less cannot even connect, and fails as a timeout at once.
SHORTEST_WAIT_SECONDS = 0.1

# The moment (time.monotonic) by which the current block's gateway calls must be over; None: no cap.
_deadline: ContextVar[float | None] = ContextVar("gateway_deadline", default=None)


@contextmanager
def at_most(seconds: float | None) -> Iterator[None]:
    """Within this block gateway calls, together, wait no longer than SECONDS (None: no cap): a retry gets
    what the first try left."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def capped(timeout: float) -> float:
    """TIMEOUT, or less when the current block's deadline is nearer."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    return max(SHORTEST_WAIT_SECONDS, min(timeout, deadline - time.monotonic()))
