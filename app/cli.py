"""Operator commands: database migrations and roster files."""

from __future__ import annotations

import json
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from app.agents import service
from app.database import schema_state
from app.db import session_scope
from app.models import WebhookDelivery, utcnow
from config import PROJECT_ROOT

DEMO_ROSTER = PROJECT_ROOT / "app" / "fixtures" / "demo_roster.toml"


@contextmanager
def database_session() -> Iterator[Session]:
    """A session for a CLI command: a database that is unreachable or not migrated is a message, not a traceback."""
    state = schema_state(current_app.extensions["db_engine"])
    if not state.ready:
        raise click.ClickException(state.problem)
    with session_scope(current_app) as session:
        yield session


def alembic_config(database_url: str) -> AlembicConfig:
    """Alembic's configuration, pointed at migrations/ and the configured database."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


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


def read_roster(path: Path) -> dict:
    """Read a roster file: TOML or JSON, by its suffix."""
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with path.open("rb") as handle:
        return tomllib.load(handle)


@click.group("roster")
def roster_cli() -> None:
    """Load queues and agents from a file."""


@roster_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DEMO_ROSTER)
@click.option("--if-empty", is_flag=True,
              help="Load only into a database with no queues and no agents (what `make run` does), "
                   "so a real roster is never overwritten.")
@with_appcontext
def load(path: Path, if_empty: bool) -> None:
    """Load a roster file (TOML or JSON); default: the demo roster."""
    try:
        roster = read_roster(path)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise click.ClickException(f"{path.name}: not valid TOML/JSON: {error}") from None
    try:
        with database_session() as session:
            if if_empty and service.roster_exists(session):
                click.echo(f"roster not loaded from {path.name}: the database already has queues or agents "
                           "(change them with `flask agents` and `flask queues`, or load without --if-empty)")
                return
            queues, agents = service.load_roster(session, roster)
            click.echo(f"loaded {len(queues)} queues and {len(agents)} agents from {path.name}")
    except service.RosterError as error:
        raise click.ClickException(f"{path.name}: {error}") from None
