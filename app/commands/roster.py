"""`flask roster`: load queues and agents from a file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.agents import service
from app.agents.service import DEMO_ROSTER, read_roster
from app.commands.database import database_session


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
