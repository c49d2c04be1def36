"""psycopg's cursor, with its `description` built when it is read rather than whenever it is asked for.

psycopg's `Cursor.description` makes a `Column` object for every column of
the result each time it is asked for (a few Python calls each: the name
decoded, the type looked up). SQLAlchemy asks for it after every statement
that returns rows, and for a statement it has run before (its compiled form
cached, the usual case) only checks that it is not None: the result's
columns are known already. The transfer menu's webhook made some 150 such
objects and threw them away; they were about a tenth of a LiveKit
webhook's Python function calls.

`DescribedOnDemand.description` answers None exactly when psycopg's does,
and otherwise a sequence that makes psycopg's own list the first time its
length is not enough (an item, an iteration), from the result it was asked
of: read after the cursor has moved to another result, it raises instead of
describing the wrong one. Given to psycopg as the connections'
`cursor_factory` (app/database.make_engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.pq import ExecStatus

# The results psycopg describes even with no column (`SELECT ;`): psycopg's BaseCursor.description.
_WITH_ROWS = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class DescribedOnDemand(psycopg.Cursor):
    """psycopg's Cursor, its description made when read (see the module's docstring)."""

    @property
    def description(self) -> Sequence[psycopg.Column] | None:
        result = self.pgresult
        if result and (result.nfields or result.status in _WITH_ROWS):
            return _Columns(self, result)
        return None


class _Columns(Sequence):
    """The columns of CURSOR's RESULT, psycopg's Column objects made on the first read of one."""

    __slots__ = ("_cursor", "_result", "_count", "_made")

    def __init__(self, cursor: DescribedOnDemand, result: Any) -> None:
        self._cursor = cursor
        self._result = result
        self._count = result.nfields
        self._made: list[psycopg.Column] | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        return self._columns()[index]

    def __iter__(self):
        return iter(self._columns())

    def _columns(self) -> list[psycopg.Column]:
        if self._made is None:
            if self._cursor.pgresult is not self._result:
                raise RuntimeError("a cursor's description was read after the cursor moved to another result")
            self._made = psycopg.Cursor.description.fget(self._cursor)
        return self._made
