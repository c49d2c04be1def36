"""How the live process hears that something changed.

PostgreSQL: one connection LISTENs on the channel every committed step
notifies (signal.py), whichever process or host committed it; a lost
connection is opened again, and every topic is read once it is back (what
changed meanwhile was not heard). SQLite: one cheap look a second at the
newest event and transcript line, for the whole process, not per page.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from app.live.signal import CHANNEL, EVERYTHING
from app.logs import get_logger
from app.models import Event, Utterance

log = get_logger("switchboard.live")

Changed = Callable[[set[str]], None]
RECONNECT_SECONDS = 2.0
SQLITE_LOOK_SECONDS = 1.0


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as psycopg's own connect() takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_postgres(database_url: str, changed: Changed, ready: asyncio.Event | None = None) -> None:
    """Hand CHANGED the topics of every notification, until cancelled; READY is set once listening."""
    import psycopg

    first = True
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                if not first:
                    log.info("live_listening_again")
                    changed({EVERYTHING})
                first = False
                if ready is not None:
                    ready.set()
                async for notification in connection.notifies():
                    changed(set(notification.payload.split()))
        except psycopg.Error as error:
            log.warning("live_listen_lost", error=str(error)[:300], retry_seconds=RECONNECT_SECONDS)
            await asyncio.sleep(RECONNECT_SECONDS)


def newest(make_session: sessionmaker) -> tuple[int, int]:
    """The newest event's and transcript line's ids."""
    with make_session() as session:
        return (session.scalar(select(func.max(Event.id))) or 0, session.scalar(select(func.max(Utterance.id))) or 0)


async def watch_sqlite(make_session: sessionmaker, changed: Changed, ready: asyncio.Event | None = None) -> None:
    """Hand CHANGED `all` whenever the newest event or transcript line moves, looking once a second."""
    seen = await asyncio.to_thread(newest, make_session)
    if ready is not None:
        ready.set()
    while True:
        await asyncio.sleep(SQLITE_LOOK_SECONDS)
        try:
            now = await asyncio.to_thread(newest, make_session)
        except Exception as error:
            log.warning("live_watch_failed", error=str(error)[:300])
            continue
        if now != seen:
            seen = now
            changed({EVERYTHING})
