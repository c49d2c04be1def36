"""`flask live`: the live pages' process (app/live/), serving every open board, call page and console from one
event loop; the reverse proxy sends LIVE_STREAM_BASE's paths to it (docs/live-pages.md)."""

from __future__ import annotations

import os

import click
from flask import current_app
from flask.cli import with_appcontext

from app.database import schema_state

DEFAULT_NICENESS = 10


@click.command("live")
@click.option("--host", default=None, help="Address to listen on (default: LIVE_HOST).")
@click.option("--port", default=None, type=int, help="Port to listen on (default: LIVE_PORT).")
@click.option("--nice", "niceness", default=DEFAULT_NICENESS, type=click.IntRange(0, 19), show_default=True,
              help="How much lower than the web workers this process asks the system to run (0: the same).")
@with_appcontext
def live_command(host: str | None, port: int | None, niceness: int) -> None:
    """Serve the live pages' streams until stopped (SIGTERM or Ctrl-C end the open streams; pages reconnect)."""
    # Imported here: the web workers, which register this command too, never load the ASGI server.
    from app.live.server import live_server
    from app.process import settle_startup_objects

    settings = current_app.config["SETTINGS"]
    if niceness:
        # On a box shared with the web workers, a busy moment goes to the webhooks (a caller on the line) before
        # the live pages (a screen a few hundred milliseconds late).
        os.nice(niceness)
    state = schema_state(current_app.extensions["db_engine"])
    if not state.ready:
        raise click.ClickException(state.problem)
    if not settings.live_stream_base:
        click.echo("LIVE_STREAM_BASE is empty: the pages follow the web workers' own streams, not this process; "
                   "set it (e.g. /live) and route that path here.", err=True)
    server = live_server(current_app._get_current_object(), host or settings.live_host, port or settings.live_port)
    settle_startup_objects()  # its board reads make many objects: full collections walk only theirs
    server.run()
