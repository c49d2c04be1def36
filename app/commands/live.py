"""`flask live`: the live pages' process (app/live/), serving every open board, call page and console from one
event loop; the reverse proxy sends LIVE_STREAM_BASE's paths to it (docs/live-pages.md)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.database import schema_state
from app.live.server import live_server


@click.command("live")
@click.option("--host", default=None, help="Address to listen on (default: LIVE_HOST).")
@click.option("--port", default=None, type=int, help="Port to listen on (default: LIVE_PORT).")
@with_appcontext
def live_command(host: str | None, port: int | None) -> None:
    """Serve the live pages' streams until stopped (SIGTERM or Ctrl-C end the open streams; pages reconnect)."""
    settings = current_app.config["SETTINGS"]
    state = schema_state(current_app.extensions["db_engine"])
    if not state.ready:
        raise click.ClickException(state.problem)
    if not settings.live_stream_base:
        click.echo("LIVE_STREAM_BASE is empty: the pages follow the web workers' own streams, not this process; "
                   "set it (e.g. /live) and route that path here.", err=True)
    live_server(current_app._get_current_object(), host or settings.live_host, port or settings.live_port).run()
