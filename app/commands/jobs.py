"""`flask jobs work` and `flask jobs list`: the job workers of a PostgreSQL deployment, and what is queued."""

from __future__ import annotations

import signal

import click
from flask import current_app
from flask.cli import with_appcontext

from app.database import schema_state
from app.jobs.engine import QUEUE
from app.jobs.setup import jobs_of, start_jobs


@click.group("jobs")
def jobs_cli() -> None:
    """Background jobs and timers (docs/jobs.md)."""


def _ready_runtime():
    state = schema_state(current_app.extensions["db_engine"])
    if not state.ready:
        raise click.ClickException(state.problem)
    runtime = jobs_of(current_app)
    if runtime.in_memory:
        raise click.ClickException("the embedded SQLite database keeps jobs in each service process's memory; "
                                   "a separate worker needs DATABASE_URL to be PostgreSQL")
    return runtime


@jobs_cli.command("work")
@with_appcontext
def work_command() -> None:
    """Work jobs and run the timers until stopped (SIGTERM or Ctrl-C finish the jobs under way first)."""
    runtime = _ready_runtime()
    runtime.work_here = True
    stop = {"asked": False}

    def ask_to_stop(_signum, _frame) -> None:
        stop["asked"] = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, ask_to_stop)
    start_jobs(current_app)
    click.echo(f"working jobs (concurrency {runtime.concurrency}); stop with SIGTERM or Ctrl-C")
    runtime.work_until(lambda: stop["asked"])
    click.echo("stopped")


@jobs_cli.command("list")
@with_appcontext
def list_command() -> None:
    """The jobs queued, running, failed or done lately, one a line."""
    runtime = _ready_runtime()
    runtime.work_here = False  # only reads the queue
    try:
        jobs = runtime.call(runtime.app.job_manager.list_jobs_async(queue=QUEUE))
    finally:
        runtime.stop(10.0)
    for job in jobs:
        click.echo(f"{job.id}\t{job.status}\t{job.task_name}\t{job.scheduled_at or ''}\t{job.attempts} attempts")
    if not jobs:
        click.echo("no jobs")
