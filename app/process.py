"""What a long-running process of the service does once it has started (a web worker, the live process).

`settle_startup_objects` takes the objects made while starting (the modules,
the app, SQLAlchemy's mappers, templates: a few hundred thousand) out of the
garbage collector's way with `gc.freeze()`. Python's full collection walks
every tracked object; in the live process each board read makes thousands of
ORM objects that live through younger collections, so full collections come
every few reads, and walking the startup objects too made one read in forty
take 100 ms instead of 14 (a read's CPU 15.9 ms on average, 13.7 with them
frozen; docs/performance.md). Frozen objects are never collected, which suits
objects that live as long as the process anyway. Python's documentation
recommends `gc.freeze()` for servers (library reference, gc.freeze).
"""

from __future__ import annotations

import gc

from app.logs import get_logger

log = get_logger("switchboard")


def settle_startup_objects() -> None:
    """Collect what starting left behind, then freeze the rest: full collections no longer walk it."""
    gc.collect()
    gc.freeze()
    log.info("startup_objects_frozen", objects=gc.get_freeze_count())
