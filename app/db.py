"""Database engine, the declarative base, and one session per request.

The web layer owns the transaction: a request's session is committed once when
the view returns and rolled back on error. Domain functions take the session as
an argument and only flush, unless a step must be durable before a network call
(they say so and commit explicitly).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from flask import Flask, g
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints the same everywhere."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(database_url: str, *, pooled: bool = True) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for several workers."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=None if pooled else NullPool,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite has no row locks: take the write lock at BEGIN so that two
        # workers reserving the same agent serialise instead of both winning.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if not pooled:
        return create_engine(database_url, poolclass=NullPool)
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy emit BEGIN itself (see make_engine) instead of pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def init_db(app: Flask) -> None:
    """Create the engine and session factory and close each request's session."""
    settings = app.config["SETTINGS"]
    engine = make_engine(settings.database_url)
    app.extensions["db_engine"] = engine
    # Objects keep their values after a commit: a step commits, then calls
    # Twilio or LiveKit with what it just wrote; reloading them would open a
    # transaction (on SQLite: the write lock) for the length of that call.
    app.extensions["db_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.after_request(_commit_request_session)
    app.teardown_appcontext(_close_request_session)


def request_session() -> Session:
    """The session of the current request (created on first use)."""
    if "db_session" not in g:
        from flask import current_app

        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def _commit_request_session(response):
    # Commit before the response leaves, so a failed commit becomes a 500
    # (and Twilio's fallback URL) rather than a success that was never stored.
    session: Session | None = g.get("db_session")
    if session is not None and response.status_code < 500:
        session.commit()
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
