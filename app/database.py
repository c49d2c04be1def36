"""The declarative base and the engine: everything about the database that does not need Flask.

Domain code, Alembic and the tools reach the schema through here; the
session per web request lives in app/db.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    ColumnElement,
    MetaData,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session
from sqlalchemy.pool import NullPool

from config import PROJECT_ROOT

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


def models_own(name: str | None, type_: str, parent_names: dict) -> bool:
    """Whether Alembic compares this table with the models: every one but the job queue's (procrastinate's own
    schema, migration 0007)."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


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
    # No ping at each checkout (a round trip on every request): a connection found dead when used is discarded
    # with the rest of the pool, and the step that met it runs once more (app/db.worth_running_again);
    # connections are renewed every half hour so none outlives a proxy's or a firewall's idle limit.
    return create_engine(database_url, pool_size=5, max_overflow=5, pool_recycle=1800)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy emit BEGIN itself (see make_engine) instead of pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@dataclass(frozen=True)
class SchemaState:
    """Whether the database answers and carries the schema this code needs; PROBLEM says what to do if not."""

    reachable: bool
    revision: str | None
    head: str
    problem: str | None

    @property
    def ready(self) -> bool:
        return self.problem is None


def schema_state(engine: Engine) -> SchemaState:
    """Ask the database for its Alembic revision and compare it with the code's head."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_current_head() or ""
    try:
        with engine.connect() as connection:
            # Alembic's own table, read directly (its MigrationContext logs at info on every look).
            revision = None
            if inspect(connection).has_table("alembic_version"):
                revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0][:200]
        where = engine.url.render_as_string(hide_password=True)
        return SchemaState(False, None, head, f"the database at {where} is not reachable ({reason})")
    if revision is None:
        return SchemaState(True, None, head, "the database has no schema yet: run `flask --app wsgi db upgrade`")
    if revision != head:
        return SchemaState(True, revision, head, f"the database is at revision {revision} and this code needs "
                                                 f"{head}: run `flask --app wsgi db upgrade`")
    return SchemaState(True, revision, head, None)


def alembic_config(database_url: str) -> AlembicConfig:
    """Alembic's configuration, pointed at migrations/ and the configured database."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


_INSERTS_UNLESS_PRESENT: dict[tuple, object] = {}


def insert_new_rows(session: Session, model: type[Base], conflict_on: tuple[str, ...], *rows: dict) -> list[int]:
    """Insert ROWS of MODEL in one statement (`INSERT … ON CONFLICT DO NOTHING RETURNING id`), skipping each row
    whose CONFLICT_ON columns match a row already there: the ids of those inserted. On PostgreSQL, a matching
    row another transaction inserted and has not committed yet makes this wait for that transaction's end."""
    name = session.get_bind().dialect.name
    key = (model, conflict_on, name)
    statement = _INSERTS_UNLESS_PRESENT.get(key)
    if statement is None:
        # Built once, the rows given as parameters: SQLAlchemy then compiles it once, not at every call.
        dialect = sqlite if name == "sqlite" else postgresql
        statement = _INSERTS_UNLESS_PRESENT[key] = (
            dialect.insert(model).on_conflict_do_nothing(index_elements=list(conflict_on)).returning(model.id))
    return list(session.execute(statement, list(rows)).scalars())


def count_ahead(session: Session, order: tuple[InstrumentedAttribute, InstrumentedAttribute], at: tuple,
                *line: ColumnElement[bool]) -> int:
    """How many rows of a LINE (the conditions that pick it) stand before the row AT in its ORDER: since when,
    then id, the last of ORDER, whose rows are counted."""
    return int(session.scalar(select(func.count(order[-1])).where(*line, tuple_(*order) < tuple_(*at))) or 0)
