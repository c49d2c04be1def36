"""One database session per web request (the engine and the declarative base are in app/database.py).

The web layer owns the transaction: a request's session is committed once when
the view returns and rolled back on error. Domain functions take the session as
an argument and only flush, unless a step must be durable before a network call
(they say so and commit explicitly).

On PostgreSQL a transaction can lose a deadlock or a serialization conflict
(SQLSTATE 40P01, 40001) through no fault of its own; `lost_a_lock_conflict`
names such a failure, and the Twilio webhook guard (app/telephony/webhook.py)
runs the step once more. Each session counts its commits (`commits`), so a
retry can tell that a step already committed before a network call and must
not run again.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from flask import Flask, Response, g, request
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.database import make_engine
from app.logs import get_logger

log = get_logger("switchboard.db")


def init_db(app: Flask) -> None:
    """Create the engine and session factory and close each request's session."""
    settings = app.config["SETTINGS"]
    engine = make_engine(settings.database_url)
    app.extensions["db_engine"] = engine
    # Objects keep their values after a commit: a step commits, then calls
    # Twilio or LiveKit with what it just wrote; reloading them would open a
    # transaction (on SQLite: the write lock) for the length of that call.
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "after_commit", _count_commit)
    app.extensions["db_sessionmaker"] = factory
    app.after_request(_commit_request_session)
    app.teardown_appcontext(_close_request_session)


def request_session() -> Session:
    """The session of the current request (created on first use)."""
    if "db_session" not in g:
        from flask import current_app

        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


# PostgreSQL's SQLSTATEs for a transaction chosen as a deadlock's victim and
# for a serialization failure: the same work, run again, normally succeeds.
LOCK_CONFLICTS = {"40P01": "deadlock", "40001": "serialization_failure"}


def lost_a_lock_conflict(error: BaseException) -> str | None:
    """'deadlock' or 'serialization_failure' when ERROR is PostgreSQL aborting the transaction for one; else None."""
    return LOCK_CONFLICTS.get(getattr(getattr(error, "orig", None), "sqlstate", None))


def _count_commit(session: Session) -> None:
    session.info["commits"] = session.info.get("commits", 0) + 1


def commits(session: Session) -> int:
    """How many times SESSION has committed."""
    return session.info.get("commits", 0)


def after_commit(work: Callable[[], None]) -> None:
    """Run WORK once this request's transaction is committed (never if it is not)."""
    g.setdefault("after_commit", []).append(work)


def _commit_request_session(response):
    # Commit before the response leaves, so a failed commit becomes a 500
    # (and Twilio's fallback URL) rather than a success that was never stored.
    session: Session | None = g.get("db_session")
    if session is not None and response.status_code < 500:
        try:
            session.commit()
        except SQLAlchemyError:
            log.error("request_commit_failed", path=request.path)
            try:
                session.rollback()
            except SQLAlchemyError:
                pass
            g.pop("after_commit", None)
            # A Twilio step says what the caller hears instead (app/telephony/webhook.py).
            answer = g.get("answer_when_database_fails")
            return answer() if answer else Response("the database is unavailable\n", status=503,
                                                    mimetype="text/plain")
        for work in g.pop("after_commit", []):
            # What runs after the commit cannot undo the request's answer;
            # what it writes (the timeline of its effects) is committed too.
            try:
                work()
                session.commit()
            except Exception:  # noqa: BLE001 - logged; the answer stands
                session.rollback()
                log.exception("after_commit_failed")
    return response


def _close_request_session(_error: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()


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
