"""`flask db`: database migrations, and pruning what is kept only for a while."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import click
from alembic import command
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from app.database import alembic_config, schema_state
from app.db import session_scope
from app.models import WebhookDelivery, utcnow


@contextmanager
def database_session() -> Iterator[Session]:
    """A session for a CLI command: a database that is unreachable or not migrated is a message, not a traceback."""
    state = schema_state(current_app.extensions["db_engine"])
    if not state.ready:
        raise click.ClickException(state.problem)
    with session_scope(current_app) as session:
        yield session


@contextmanager
def errors_in_words(*errors: type[Exception]) -> Iterator[None]:
    """The service's refusals (ERRORS) raised inside end the command with their sentence, not a traceback."""
    try:
        yield
    except errors as error:
        raise click.ClickException(str(error))


def removing_command(group: click.Group, name: str, argument: str, remove: Callable[[Session, str], object],
                     refusal: type[Exception], done: str, help: str) -> click.Command:
    """GROUP's command NAME, which removes the one row ARGUMENT names: REMOVE(session, value) in one session,
    REFUSAL in words, then DONE (formatted with the value) on standard output."""

    @group.command(name, help=help)
    @click.argument(argument)
    @with_appcontext
    def command(**arguments: str) -> None:
        value = arguments[argument]
        with errors_in_words(refusal), database_session() as session:
            remove(session, value)
        click.echo(done.format(value))

    return command


@click.group("db")
def db_cli() -> None:
    """Database migrations (Alembic)."""


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    _ensure_sqlite_folder(current_app.config["SETTINGS"].database_url)
    _migrating(lambda url: command.upgrade(alembic_config(url), revision))


@db_cli.command("downgrade")
@click.argument("revision")
@with_appcontext
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. -1 or base)."""
    _migrating(lambda url: command.downgrade(alembic_config(url), revision))


@db_cli.command("current")
@with_appcontext
def current() -> None:
    """Show the database's revision."""
    _migrating(lambda url: command.current(alembic_config(url)))


def _migrating(step) -> None:
    # An unreachable database is a sentence, not Alembic's traceback.
    state = schema_state(current_app.extensions["db_engine"])
    if not state.reachable:
        raise click.ClickException(state.problem)
    step(current_app.config["SETTINGS"].database_url)


@db_cli.command("prune")
@click.option("--older-than-hours", type=click.IntRange(min=1), default=48, show_default=True)
@with_appcontext
def prune(older_than_hours: int) -> None:
    """Delete remembered webhook deliveries older than the given age (Twilio retries within minutes), and login
    sessions idle past LOGIN_IDLE_HOURS."""
    from datetime import timedelta

    from sqlalchemy import delete

    from app.auth.service import end_idle_login_sessions

    cutoff = utcnow() - timedelta(hours=older_than_hours)
    idle_hours = current_app.config["SETTINGS"].login_idle_hours
    with database_session() as session:
        removed = session.execute(delete(WebhookDelivery).where(WebhookDelivery.created_at < cutoff)).rowcount
        ended = end_idle_login_sessions(session, timedelta(hours=idle_hours)) if idle_hours else 0
    click.echo(f"removed {removed} webhook deliveries older than {older_than_hours} h")
    if idle_hours:
        click.echo(f"ended {ended} login sessions idle for more than {idle_hours} h")


def _ensure_sqlite_folder(database_url: str) -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
