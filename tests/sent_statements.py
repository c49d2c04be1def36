"""What an engine sends while a block runs: each statement's text, whitespace collapsed, and COMMIT for a commit."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def sent_statements(engine: Engine) -> Iterator[list[str]]:
    """The list of what ENGINE sends inside the block, in order: statements, and "COMMIT" for each commit."""
    sent: list[str] = []

    def statement(_conn, _cursor, text, *_args) -> None:
        sent.append(" ".join(text.split()))

    def committed(_conn) -> None:
        sent.append("COMMIT")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", committed)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", committed)
