"""`flask calls reconcile`: ask Twilio about every live call once and fix what it contradicts."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.database import schema_state
from app.jobs.setup import reconciler_of


@click.group("calls")
def calls_cli() -> None:
    """Calls in progress."""


@calls_cli.command("reconcile")
@with_appcontext
def reconcile_command() -> None:
    """Ask Twilio for the status of every call and leg the database holds as live, and catch up what it missed."""
    state = schema_state(current_app.extensions["db_engine"])
    if not state.ready:
        raise click.ClickException(state.problem)
    outcome = reconciler_of(current_app).run_once()
    if outcome is None:
        raise click.ClickException("the database could not be reached; nothing was reconciled")
    click.echo(f"asked Twilio about {outcome.asked} legs; fixed {len(outcome.fixed)}; "
               f"Twilio did not answer for {len(outcome.unanswered)}; agents freed: {len(outcome.agents_freed)}; "
               f"calls whose left-over effects were carried out: {len(outcome.calls_recovered)}; "
               f"rings given up: {outcome.rings_given_up}")
    if outcome.unanswered:
        raise click.ClickException(f"Twilio did not answer for legs {outcome.unanswered}; run again later")
