"""`flask demo`: run one whole warm transfer against loopback stand-ins and narrate it."""

from __future__ import annotations

import signal
import tempfile
import threading
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
@click.option("--live", is_flag=True,
              help="Serve the service on its own database (or --database) under gunicorn and play callers slowly "
                   "through the stand-ins, to watch on the board; Ctrl-C stops it.")
@click.option("--callers", type=click.IntRange(min=1), default=None,
              help="With --live: how many callers to play (default: until Ctrl-C).")
@click.option("--pace", type=click.FloatRange(min=0, max=30), default=2.0, show_default=True,
              help="With --live: seconds of real time between a person's steps.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="With --live: the port the service is served on.")
@with_appcontext
def demo_command(llm: str, verbose: bool, database_url: str | None, live: bool, callers: int | None, pace: float,
                 port: int) -> None:
    """Place a scripted call and warm-transfer it from Alice to Bob, all on this machine (--live: watch many)."""
    if live:
        _run_live(database_url, callers, pace, port)
        return
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


def _stop_on_sigterm(signum, frame) -> None:
    # `docker compose stop` sends SIGTERM: stop as Ctrl-C does, hanging up the calls and stopping gunicorn.
    raise KeyboardInterrupt


def _run_live(database_url: str | None, callers: int | None, pace: float, port: int) -> None:
    settings = current_app.config["SETTINGS"]
    # The key the service signs sign-ins with: the configured one, or the development key kept under instance/.
    settings = replace(settings, database_url=database_url or settings.database_url,
                       secret_key=current_app.config["SECRET_KEY"])
    try:
        # The sandbox is loaded here, for this command only: the service never imports it.
        from app.demo.live import run_live
        from app.demo.script import DemoFailed
    except ImportError as error:
        raise click.ClickException(f"the demo needs the sandbox (app/sandbox), which this install leaves out: {error}")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        result = run_live(settings, click.echo, callers=callers, pace=pace, port=port)
    except DemoFailed as error:
        raise click.ClickException(f"demo failed: {error}") from None
    except KeyboardInterrupt:
        click.echo("\nStopped: every call hung up, the service and the stand-ins stopped.")
        return
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    click.echo(f"\n{result.callers} callers played: {result.talked} talked to an agent, {result.transferred} "
               f"warm-transferred, {result.voicemails} left a voicemail, {result.callbacks} asked for a callback.")
    for problem in result.problems:
        click.echo(f"   problem: {problem}", err=True)
