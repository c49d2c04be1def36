"""The declarative base and the engine: everything about the database that does not need Flask.

Domain code, Alembic and the tools reach the schema through here; the
session per web request lives in app/db.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from weakref import WeakKeyDictionary

from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    ColumnElement,
    MetaData,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value
from sqlalchemy.pool import NullPool

from app.pg_cursor import DescribedOnDemand
from config import PROJECT_ROOT

T = TypeVar("T")

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
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for several workers. A failed
    statement's error never shows its bound values (callers' numbers, names, a CallToken): hide_parameters."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=None if pooled else NullPool,
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite has no row locks: take the write lock at BEGIN so that two
        # workers reserving the same agent serialise instead of both winning.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    # psycopg's cursor with its description made only when read (app/pg_cursor.py).
    described = {"cursor_factory": DescribedOnDemand}
    if not pooled:
        return create_engine(database_url, poolclass=NullPool, hide_parameters=True, connect_args=described)
    # No ping at each checkout (a round trip on every request): a connection found dead when used is discarded
    # with the rest of the pool, and the step that met it runs once more (app/db.worth_running_again);
    # connections are renewed every half hour so none outlives a proxy's or a firewall's idle limit.
    return create_engine(database_url, pool_size=5, max_overflow=5, pool_recycle=1800, hide_parameters=True,
                         connect_args=described)


def read_as_one(session: Session) -> Session:
    """SESSION, whose next transaction sees the database as it was at its first statement, for a page's data read
    in several statements (the board's list of calls, their timelines and transfers, its figures and agents): on
    PostgreSQL a read-only REPEATABLE READ transaction, which psycopg opens with its BEGIN (no round trip of its
    own); under READ COMMITTED each statement sees the database as it is when that statement starts, so a caller
    arriving between two of them was in one and not the other. SQLite's transactions already do so (BEGIN
    IMMEDIATE, make_engine). Call it before the session's first statement."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
    return session


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


_INSERTS: dict[tuple, object] = {}


def _insert(session: Session, model: type[Base], conflict_on: tuple[str, ...],
            also: tuple[ColumnElement, ...] = ()):
    """`INSERT INTO <MODEL's table> … RETURNING id` (and ALSO; `ON CONFLICT DO NOTHING` on CONFLICT_ON, if
    given), built once per dialect: the values go as parameters, so SQLAlchemy compiles it once too. Core, on the
    table, not the ORM's unit of work."""
    name = session.get_bind().dialect.name
    key = (model, conflict_on, also, name)
    statement = _INSERTS.get(key)
    if statement is None:
        statement = (sqlite if name == "sqlite" else postgresql).insert(model.__table__)
        if conflict_on:
            statement = statement.on_conflict_do_nothing(index_elements=list(conflict_on))
        statement = _INSERTS[key] = statement.returning(model.__table__.c.id, *also)
    return statement


def insert_new_rows(session: Session, model: type[Base], conflict_on: tuple[str, ...], *rows: dict,
                    also: tuple[ColumnElement, ...] = ()) -> list[Row]:
    """Insert ROWS of MODEL in one statement (`INSERT … ON CONFLICT DO NOTHING RETURNING id`), skipping each row
    whose CONFLICT_ON columns match a row already there: a row (its `id`, then ALSO, labelled columns the
    statement returns as well) for each one inserted. On PostgreSQL, a matching row another transaction inserted
    and has not committed yet makes this wait for that transaction's end."""
    statement = _insert(session, model, conflict_on, also)
    return session.connection().execute(statement, list(rows) if len(rows) > 1 else rows[0]).all()


_COLUMNS: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def _columns(model: type[Base]) -> tuple[tuple[str, str, bool], ...]:
    """MODEL's columns as (column key, attribute name, whether the server gives a default), worked out once."""
    columns = _COLUMNS.get(model)
    if columns is None:
        mapper = inspect(model)
        columns = _COLUMNS[model] = tuple(
            (column.key, mapper.get_property_by_column(column).key, column.server_default is not None)
            for column in mapper.local_table.columns)
    return columns


def insert_now(session: Session, row: Base, *, unless_present: tuple[str, ...] = ()) -> Base | None:
    """Write ROW, a new ORM object, at once: one `INSERT … RETURNING id`, built once, after which ROW is in
    SESSION as if it had been read back (its defaults filled in, nothing pending). What the ORM's flush would do
    for it, at a fraction of the CPU: the flush works out what to write each time, this does not.

    UNLESS_PRESENT: columns of a unique key; when a row with the same values is there already, nothing is
    written and the answer is None. Only the columns given to ROW are sent (None for a column the table
    defaults); relationships are not: set the foreign keys, and link loaded collections with `link_loaded`.
    Objects pending in SESSION are not flushed first.
    """
    return insert_now_asking(session, row, (), {}, unless_present=unless_present)[0]


def insert_now_asking(session: Session, row: Base, asked: tuple[ColumnElement, ...], params: dict[str, Any], *,
                      unless_present: tuple[str, ...] = ()) -> tuple[Base | None, tuple]:
    """`insert_now`, with ASKED (labelled scalar subqueries, PARAMS their bind parameters) answered by the same
    statement's `RETURNING`: no round trip of their own. On PostgreSQL they see the tables as they were before
    this insert. The row (None as for insert_now) and ASKED's values, in order (all None when nothing was
    inserted)."""
    result = session.connection().execute(_insert(session, type(row), unless_present, asked),
                                          {**params, **_given(row)})
    inserted = result.first()
    if inserted is None:
        return None, (None,) * len(asked)
    written = dict(result.last_inserted_params())  # the values given, and the defaults Core added
    written["id"] = inserted.id
    _adopt(session, row, written)
    return row, tuple(inserted[1:])


def _given(row: Base) -> dict[str, Any]:
    """The columns ROW, a new ORM object, was given a value for (None counts as not given), by column key."""
    attributes = instance_dict(row)
    return {key: value for key, name, _ in _columns(type(row)) if (value := attributes.get(name)) is not None}


def _adopt(session: Session, row: Base, written: dict[str, Any]) -> None:
    """ROW, just inserted with WRITTEN (every column's value by key, its id included), is in SESSION as if it had
    been read back: a column WRITTEN leaves out holds its database default, read when asked, or else NULL."""
    attributes = instance_dict(row)
    for key, name, server_default in _columns(type(row)):
        if not server_default or key in written:
            attributes[name] = written.get(key)
    make_transient_to_detached(row)  # what it holds now counts as loaded (a server default is read when asked)
    session.add(row)
    # As the flush does with a row it inserted: written in this transaction, so a rollback takes it out of the
    # session again (the only private name used; SQLAlchemy is pinned, and tests/test_insert_now.py checks it).
    session._transaction._new[inspect(row)] = True


# A row of another table written with the row it refers to: (its model, the column that refers to the row, its
# values; that column's value, if they hold one, is replaced by the row's id).
Child = tuple[type[Base], str, dict[str, Any]]


def insert_now_with(session: Session, row: Base, children: tuple[Child, ...], asked: tuple[ColumnElement, ...],
                    params: dict[str, Any], *,
                    unless_present: tuple[str, ...] = ()) -> tuple[Base | None, tuple, tuple]:
    """`insert_now_asking`, and with ROW its CHILDREN, rows of other tables that refer to it: the row, the
    children's ids in order, ASKED's values (all None when UNLESS_PRESENT found a row: nothing is written).

    On PostgreSQL all of it is one statement: the row's INSERT and each child's in one WITH (a data-modifying
    common table expression), whose SELECT returns the row's id, the children's ids and ASKED. On SQLite,
    which has no INSERT inside WITH, the row's statement and one per child. Every column with a Python-side
    default that is not given is sent with it: Core fills defaults in only for a statement's own INSERT, not for
    one inside WITH."""
    if session.get_bind().dialect.name == "sqlite":
        written, answers = insert_now_asking(session, row, asked, params, unless_present=unless_present)
        if written is None:
            return None, (None,) * len(children), answers
        ids = tuple(insert_new_rows(session, model, (), {**values, reference: written.id})[0].id
                    for model, reference, values in children)
        return written, ids, answers
    model = type(row)
    values = _with_defaults(model, _given(row))
    given = tuple((child, reference, _with_defaults(child, {key: value for key, value in values_of_child.items()
                                                             if key != reference}))
                  for child, reference, values_of_child in children)
    shape = tuple((child, reference, tuple(child_values)) for child, reference, child_values in given)
    statement = _family(model, tuple(values), shape, unless_present, asked)
    bound = {**params, **{f"row_{key}": value for key, value in values.items()}}
    for number, (_, _, child_values) in enumerate(given):
        bound.update({f"child{number}_{key}": value for key, value in child_values.items()})
    found = session.connection().execute(statement, bound).first()
    if found is None:
        return None, (None,) * len(children), (None,) * len(asked)
    # Every column was sent (defaults included), or left to the database's default, or NULL: only the id is new.
    _adopt(session, row, {**values, "id": found[0]})
    return row, tuple(found[1:1 + len(children)]), tuple(found[1 + len(children):])


def _with_defaults(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """VALUES, with the Python-side default of each of MODEL's columns they do not name (as Core would add)."""
    values = dict(values)
    for key, default in _defaults(model):
        if key not in values:
            # A function's default is Core's wrapper of it, which takes a context the functions here never use.
            values[key] = default.arg(None) if default.is_callable else default.arg
    return values


_DEFAULTS: dict[type, tuple] = {}


def _defaults(model: type[Base]) -> tuple:
    """MODEL's columns with a Python-side default, as (column key, the default), worked out once."""
    defaults = _DEFAULTS.get(model)
    if defaults is None:
        columns = [column for column in model.__table__.columns if column.default is not None]
        for column in columns:
            if not (column.default.is_scalar or column.default.is_callable):
                raise ValueError(f"{model.__name__}.{column.key}: a default that is neither a value nor a function")
        defaults = _DEFAULTS[model] = tuple((column.key, column.default) for column in columns)
    return defaults


_FAMILIES: dict[tuple, object] = {}


def _family(model: type[Base], keys: tuple[str, ...], children: tuple[tuple[type[Base], str, tuple[str, ...]], ...],
            conflict_on: tuple[str, ...], asked: tuple[ColumnElement, ...]):
    """`insert_now_with`'s statement on PostgreSQL, built once for its tables and columns (the values are bound
    parameters: row_<column> for the row's, child<n>_<column> for the n-th child's)."""
    key = (model, keys, children, conflict_on, asked)
    statement = _FAMILIES.get(key)
    if statement is not None:
        return statement
    table = model.__table__
    insert_row = postgresql.insert(table).values(
        {name: bindparam(f"row_{name}", type_=table.c[name].type) for name in keys})
    if conflict_on:
        insert_row = insert_row.on_conflict_do_nothing(index_elements=list(conflict_on))
    new_row = insert_row.returning(table.c.id).cte("new_row")
    written = []
    for number, (child, reference, child_keys) in enumerate(children):
        child_table = child.__table__
        chosen = select(new_row.c.id, *(bindparam(f"child{number}_{name}", type_=child_table.c[name].type)
                                        for name in child_keys))
        written.append(postgresql.insert(child_table).from_select([reference, *child_keys], chosen,
                                                                  include_defaults=False)
                       .returning(child_table.c.id).cte(f"new_child_{number}"))
    joined = new_row
    for child_row in written:
        joined = joined.join(child_row, true())
    statement = _FAMILIES[key] = select(new_row.c.id, *(child_row.c.id.label(f"child_{number}_id")
                                                              for number, child_row in enumerate(written)),
                                        *asked).select_from(joined)
    return statement


def link_loaded(parent: Base, collection: str, child: Base, reference: str) -> None:
    """Show CHILD, written with `insert_now`, in PARENT's COLLECTION if that is loaded (else a read finds it), and
    PARENT as CHILD's REFERENCE, both as committed state: nothing is written for it."""
    if collection in parent.__dict__:
        set_committed_value(parent, collection, [*getattr(parent, collection), child])
    set_committed_value(child, reference, parent)


# session.info key: the configuration version the session's transaction read, with that transaction.
_CONFIGURATION_VERSION = "configuration_version"
# What this process read of each configuration, by engine and name: (the version it was read under, the rows).
# Keyed by the engine object, not its URL: hashing a URL renders it as text each time.
_CONFIGURATION: WeakKeyDictionary[Engine, dict[str, tuple[int, Any]]] = WeakKeyDictionary()


def note_configuration_version(session: Session, version: int | None) -> None:
    """VERSION is the configuration's version as this transaction of SESSION read it (models.CONFIGURATION_VERSION;
    a webhook's delivery claim returns it): until the transaction ends, `read_configuration` may answer from
    what the process read under that version."""
    if version is not None:
        session.info[_CONFIGURATION_VERSION] = (session.get_transaction(), version)


def read_configuration(session: Session, name: str, read: Callable[[], T]) -> T:
    """READ(), the rows of the configuration NAME (the IVR's menu, who subscribes to events), or the rows the
    process last read of it when they were read under the version this transaction read: no statement then.

    Exact, never a guess: the version changes in the same transaction as
    any change to the queues or the subscribers (the database's triggers,
    migration 0025), and rows kept under a version were read after it was,
    so they hold at least what it counts. A transaction that read no
    version (a page's, a job's) reads afresh. As READ's own statement would
    have, a hit first flushes what the session has pending (autoflush).
    """
    noted = session.info.get(_CONFIGURATION_VERSION)
    if noted is None or noted[0] is not session.get_transaction():
        return read()
    engine = session.get_bind()
    kept_here = _CONFIGURATION.get(engine)
    if kept_here is None:
        kept_here = _CONFIGURATION.setdefault(engine, {})
    kept = kept_here.get(name)
    if kept is not None and kept[0] == noted[1]:
        if session.autoflush:
            session.flush()
        return kept[1]
    rows = read()
    kept_here[name] = (noted[1], rows)
    return rows


def count_ahead(session: Session, order: tuple[InstrumentedAttribute, InstrumentedAttribute], at: tuple,
                *line: ColumnElement[bool]) -> int:
    """How many rows of a LINE (the conditions that pick it) stand before the row AT in its ORDER: since when,
    then id, the last of ORDER, whose rows are counted."""
    return int(session.scalar(select(func.count(order[-1])).where(*line, tuple_(*order) < tuple_(*at))) or 0)
