"""What a step changed, announced to the live process with the step's own commit.

On PostgreSQL every transaction that writes a timeline event, a transcript
line, or changes a call, leg, transfer or agent ends with one
`SELECT pg_notify('switchboard_live', '<topics>')`: PostgreSQL delivers it
only when the transaction commits (and drops it on rollback), so a live page
never shows what was rolled back and every instance of the live process
hears every change, whichever web worker made it. The payload names what
changed, space-separated: `call:<id>` and `agent:<id>`, `board` for anything
else, or `all` when the list would not fit in a notification.

Installed on the app's session factory by the app factory (init_live_signal),
so the steps themselves know nothing of it. SQLite has no NOTIFY: there the
live process looks at the newest event id once a second (changes.py).
"""

from __future__ import annotations

from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from app.models import Agent, Call, Event, Leg, Transfer, Utterance

CHANNEL = "switchboard_live"
EVERYTHING = "all"
ANYTHING_ELSE = "board"
# PostgreSQL refuses payloads of 8000 bytes and more.
MOST_PAYLOAD_BYTES = 7000
_PENDING = "live_topics"


def install_change_signal(factory: sessionmaker) -> None:
    """Make every commit of FACTORY's sessions (on PostgreSQL) that changed something send one NOTIFY naming it."""
    event.listen(factory, "after_flush", _note_changes)
    event.listen(factory, "before_commit", _announce)
    event.listen(factory, "after_commit", _forget)
    event.listen(factory, "after_soft_rollback", _forget_rolled_back)


def topics_of(row: object) -> set[str]:
    """The topics a changed ROW touches."""
    if isinstance(row, (Event, Utterance)):
        return {f"call:{row.call_id}"} if row.call_id is not None else {ANYTHING_ELSE}
    if isinstance(row, Call):
        return {f"call:{row.id}"}
    if isinstance(row, (Transfer,)):
        return {f"call:{row.call_id}"}
    if isinstance(row, Leg):
        return {f"call:{row.call_id}"} | ({f"agent:{row.agent_id}"} if row.agent_id is not None else set())
    if isinstance(row, Agent):
        return {f"agent:{row.id}"}
    return {ANYTHING_ELSE}


def payload_of(topics: set[str]) -> str:
    """The notification's text: the topics, or `all` when they would not fit."""
    payload = " ".join(sorted(topics))
    return payload if len(payload.encode()) <= MOST_PAYLOAD_BYTES else EVERYTHING


def _note_changes(session: Session, _flush_context) -> None:
    # Still the flush's lists here: what it inserted, updated and deleted.
    pending = session.info.setdefault(_PENDING, set())
    for row in (*session.new, *session.dirty, *session.deleted):
        pending |= topics_of(row)


def _announce(session: Session) -> None:
    session.flush()  # what commit would flush next, so its topics are named too
    pending = session.info.get(_PENDING)
    if pending:
        session.execute(text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": payload_of(pending)})


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _forget_rolled_back(session: Session, previous_transaction) -> None:
    # A savepoint rolled back leaves the rest of the step's topics: naming one too many only costs a look.
    if not previous_transaction.nested:
        _forget(session)
