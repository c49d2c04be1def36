"""The database of the running app: its engine and session factory (the declarative base is in app/database.py).

A web request's session belongs to its unit of work (app/web/unit_of_work.py),
committed once after the view; a command or a background job opens its own
(`session_scope`, telephony.steps.job_step). Domain functions take the
session as an argument and only flush.

On PostgreSQL a transaction can lose a deadlock or a serialization conflict
(SQLSTATE 40P01, 40001) through no fault of its own, and a pooled connection
can turn out dead when it is first used (the server restarted, or a proxy
dropped it: connections are not pinged at each checkout, which would cost
every request a round trip; SQLAlchemy then discards the pool's connections).
`worth_running_again` names such a failure, and the Twilio webhook guard
(app/voice/guard.py) and the unit of work run the step once more. Each session counts its commits (`commits`), so a
retry can tell that a step already committed before a network call and must
not run again.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from app.database import make_engine


def init_db(app: Flask) -> None:
    """Create the engine and the session factory of the app."""
    settings = app.config["SETTINGS"]
    engine = make_engine(settings.database_url)
    app.extensions["db_engine"] = engine
    # Objects keep their values after a commit: a step commits, then calls
    # Twilio or LiveKit with what it just wrote; reloading them would open a
    # transaction (on SQLite: the write lock) for the length of that call.
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "after_commit", _count_commit)
    app.extensions["db_sessionmaker"] = factory


# PostgreSQL's SQLSTATEs for a transaction chosen as a deadlock's victim and
# for a serialization failure: the same work, run again, normally succeeds.
LOCK_CONFLICTS = {"40P01": "deadlock", "40001": "serialization_failure"}


def worth_running_again(error: BaseException) -> str | None:
    """'deadlock' or 'serialization_failure' when ERROR is PostgreSQL aborting the transaction for one,
    'connection_lost' when the connection it ran on was found dead; else None."""
    if getattr(error, "connection_invalidated", False):
        return "connection_lost"
    return LOCK_CONFLICTS.get(getattr(getattr(error, "orig", None), "sqlstate", None))


def savepoint_only(session: Session) -> bool:
    """Whether the `after_commit` or `after_rollback` SESSION is dispatching ends a savepoint (`begin_nested`:
    RELEASE or ROLLBACK TO SAVEPOINT) and not the step's transaction: SQLAlchemy fires both events for a savepoint
    too, while the nested transaction is still the session's current one. A listener that means the step's commit
    or rollback (its commit count, its effects made durable or dropped, its event deliveries queued) returns early
    on True."""
    return session.in_nested_transaction()


def _count_commit(session: Session) -> None:
    if savepoint_only(session):
        return
    session.info["commits"] = session.info.get("commits", 0) + 1


def commits(session: Session) -> int:
    """How many times SESSION has committed."""
    return session.info.get("commits", 0)


@contextmanager
def session_scope(app: Flask) -> Iterator[Session]:
    """A session outside a request (CLI, background work): commit on success, roll back on error."""
    session = app.extensions["db_sessionmaker"]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
