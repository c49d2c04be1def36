"""The service's psycopg cursor: its description made when read, the same as psycopg's (app/pg_cursor.py)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import select, text

from app.database import make_engine
from app.models import Queue
from app.pg_cursor import DescribedOnDemand
from tests.conftest import TEST_DATABASE

pytestmark = pytest.mark.skipif(TEST_DATABASE != "postgres", reason="the cursor is psycopg's, for PostgreSQL")


def _plain_url(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def _described(cursor) -> list[tuple]:
    return [(column.name, column.type_code) for column in cursor.description]


def test_the_description_is_psycopgs_when_read(database_url):
    with psycopg.connect(_plain_url(database_url)) as connection:
        plain = connection.cursor()
        ours = DescribedOnDemand(connection)
        for cursor in (plain, ours):
            cursor.execute("SELECT 1 AS one, 'x'::text AS two, now() AS three")
        assert _described(ours) == _described(plain) == [("one", 23), ("two", 25), ("three", 1184)]
        assert len(ours.description) == 3 and ours.description[1].name == "two"
        # No row-returning result: None, as psycopg says; a result of rows without columns: empty, not None.
        for cursor in (plain, ours):
            cursor.execute("SET application_name = 'described'")
        assert ours.description is None and plain.description is None
        for cursor in (plain, ours):
            cursor.execute("SELECT")
        assert ours.description is not None and len(ours.description) == 0 == len(plain.description)


def test_a_description_read_after_the_cursor_moved_on_is_refused(database_url):
    with psycopg.connect(_plain_url(database_url), cursor_factory=DescribedOnDemand) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT 1 AS first")
        described = cursor.description
        cursor.execute("SELECT 2 AS second")
        with pytest.raises(RuntimeError, match="moved to another result"):
            list(described)
        assert cursor.description[0].name == "second"


def test_the_engine_uses_it_and_a_statement_run_before_makes_no_column(database_url, monkeypatch):
    engine = make_engine(database_url)
    made = []
    original = psycopg.Column.__init__

    def counted(self, cursor, index):
        made.append(index)
        original(self, cursor, index)

    try:
        with engine.connect() as connection:
            assert isinstance(connection.connection.dbapi_connection.cursor(), DescribedOnDemand)
            statement = select(Queue.id, Queue.name).order_by(Queue.id)
            first = connection.execute(statement).all()
            monkeypatch.setattr(psycopg.Column, "__init__", counted)
            again = connection.execute(statement).all()
            assert again == first
            assert made == []  # compiled once: SQLAlchemy knew the columns, and only asked whether there were any
            connection.execute(text("SELECT 1 AS new_statement")).all()
            assert made == [0]  # a statement it had not seen: the column described, once
    finally:
        engine.dispose()
