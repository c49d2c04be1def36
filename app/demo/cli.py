"""`flask demo`: run one whole warm transfer against loopback stand-ins and narrate it."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.demo.scenarios import SCENARIOS


def _build_app(settings):
    from app import create_app

    return create_app(settings)


def _close_app(app) -> None:
    from app import close_app

    close_app(app)


@click.command("demo")
@click.option("--llm", "llm", type=click.Choice(sorted(SCENARIOS)), default="normal", show_default=True,
              help="normal: the LLM answers at once; slow: it misses the whisper's deadline and the fallback is spoken.")
@click.option("--verbose", is_flag=True, help="Also show the service's own log lines (on stderr).")
@click.option("--database", "database_url", default=None, metavar="URL",
              help="Run on this database (migrated and given the demo roster if empty) instead of a fresh "
                   "throw-away SQLite file; the service's own database is never used unless named here.")
@with_appcontext
def demo_command(llm: str, verbose: bool, database_url: str | None) -> None:
    """Place a scripted call and warm-transfer it from Alice to Bob, all on this machine."""
    if database_url is None:
        with tempfile.TemporaryDirectory(prefix="switchboard-demo-") as folder:
            _run(llm, verbose, f"sqlite:///{Path(folder) / 'demo.db'}")
    else:
        _run(llm, verbose, database_url)


def _run(llm: str, verbose: bool, database_url: str) -> None:
    settings = replace(current_app.config["SETTINGS"], database_url=database_url)
    try:
        # The sandbox is loaded here, for this command only: the service never imports it.
        from app.demo.script import DemoFailed, run_demo
    except ImportError as error:
        raise click.ClickException(f"the demo needs the sandbox (app/sandbox), which this install leaves out: {error}")
    try:
        outcome = run_demo(settings, _build_app, _close_app, click.echo, llm=llm, quiet=not verbose)
    except DemoFailed as error:
        raise click.ClickException(f"demo failed {error}") from None
    click.echo(f"\nResult: transfer {outcome.transfer_state}; summary source: {outcome.summary_source} ({outcome.summary_detail}).")
