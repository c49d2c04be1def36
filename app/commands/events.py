"""`flask events …`: the subscribers told of what happens to calls (event webhooks), their delivery logs, replays."""

from __future__ import annotations

from datetime import timezone

import click
from flask import current_app
from flask.cli import with_appcontext

from app.commands.database import database_session, errors_in_words, removing_command
from app.jobs.setup import jobs_of
from app.jobs.tasks import sender_of
from app.models import DeliveryState
from app.outgoing import subscribers as service
from app.outgoing.catalogue import EVENT_TYPES
from app.outgoing.sending import replay
from app.outgoing.signing import SecretUnreadable


def _when(moment) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


@click.group("events")
def events_cli() -> None:
    """Subscribers to the service's events (signed webhooks): subscribe, list, remove, deliveries, replay."""


@events_cli.command("subscribe")
@click.option("--name", required=True, help="the subscriber's name (unique)")
@click.option("--url", required=True, help="where events are POSTed: https (http only to 127.0.0.1 or localhost)")
@click.option("--events", "event_types", required=True,
              help=f"comma-separated event types, of: {', '.join(EVENT_TYPES)}")
@with_appcontext
def subscribe(name: str, url: str, event_types: str) -> None:
    """Add a subscriber and print its signing secret once (it is kept sealed and never shown again)."""
    secret_key = current_app.config["SETTINGS"].secret_key
    with errors_in_words(service.SubscriberError), database_session() as session:
        secret = service.subscribe(session, name, url, event_types.split(","), secret_key)
    click.echo(f"subscriber {name.strip()} created; its signing secret is shown only this once "
               "(it stays readable only under this SECRET_KEY):", err=True)
    click.echo(secret)


@events_cli.command("list")
@with_appcontext
def list_subscribers() -> None:
    """List the subscribers: name, URL, event types (never the secrets)."""
    with database_session() as session:
        rows = [(s.name, s.url, ",".join(s.event_types)) for s in service.subscribers(session)]
    if not rows:
        click.echo("no subscribers")
    for name, url, types in rows:
        click.echo(f"{name:<20} {url}  {types}")


remove = removing_command(events_cli, "remove", "name", service.remove, service.SubscriberError,
                          "subscriber {} removed",
                          help="Remove a subscriber, with its unsent deliveries and its delivery log.")


@events_cli.command("deliveries")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@with_appcontext
def deliveries(name: str, limit: int) -> None:
    """A subscriber's latest deliveries, newest first, each attempt under it (time, HTTP status, error)."""
    with errors_in_words(service.SubscriberError), database_session() as session:
        rows = service.delivery_log(session, name, limit)
        lines = []
        for delivery, attempts in rows:
            lines.append(f"{delivery.id:>6} {delivery.event_type:<19} {delivery.delivery_state:<10} {delivery.message_id} "
                         f"call {delivery.call_id if delivery.call_id is not None else '-'}")
            for attempt in attempts:
                status = attempt.status_code if attempt.status_code is not None else "no answer"
                what = "replay" if attempt.replay else "attempt"
                lines.append(f"         {what} {_when(attempt.attempted_at)}  {status}  {attempt.error or 'ok'}")
            if delivery.delivery_state == DeliveryState.PENDING and delivery.attempts:
                lines.append(f"         next attempt {_when(delivery.next_attempt_at)}")
    click.echo("\n".join(lines) if lines else "no deliveries")


@events_cli.command("replay")
@click.argument("delivery_id", type=int)
@with_appcontext
def replay_delivery(delivery_id: int) -> None:
    """Send one delivery again now (same webhook-id, fresh timestamp and signature), whatever its state."""
    sender = sender_of(jobs_of(current_app).context["tools"])
    with errors_in_words(LookupError, SecretUnreadable):
        outcome = replay(sender, delivery_id)
    if not outcome.delivered:
        raise click.ClickException(f"delivery {delivery_id} sent again: {outcome.error}")
    click.echo(f"delivery {delivery_id} sent again: HTTP {outcome.status_code}")
