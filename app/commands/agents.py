"""`flask agents …` and `flask queues …`: manage the roster from a terminal."""

from __future__ import annotations

import json
from typing import Any, Callable

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from app.agents import service
from app.commands.database import database_session, errors_in_words, removing_command
from app.hours import HoursError, week_from_lines
from app.jobs.setup import jobs_of
from app.jobs.steps import job_step
from app.models import Presence

PRESENCES = [presence.value for presence in Presence]


def listing_command(group: click.Group, help: str, read: Callable[[Session], list[dict]]):
    """Decorates a function that prints rows for a person as GROUP's `list` command: the rows READ gives in one
    session, printed as JSON with --json, else by the function."""

    def decorate(show: Callable[[list[dict]], None]) -> click.Command:
        @group.command("list", help=help)
        @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
        @with_appcontext
        def command(as_json: bool) -> None:
            with database_session() as session:
                rows = read(session)
            if as_json:
                click.echo(json.dumps(rows, indent=2))
            else:
                show(rows)

        return command

    return decorate


def _save(save: Callable[[Session, Any], Any], spec: Any, saved: Callable[[Any], str]) -> None:
    """SAVE a parsed SPEC (an agent's, a queue's) in one session and print what SAVED says of the row."""
    with database_session() as session:
        click.echo(saved(save(session, spec)))


@click.group("agents")
def agents_cli() -> None:
    """Add, list, update and remove agents."""


@click.group("queues")
def queues_cli() -> None:
    """Add and list queues."""


@agents_cli.command("add")
@click.option("--name", required=True)
@click.option("--extension", required=True, help="2 to 6 digits, dialled in transfers")
@click.option("--sip-uri", default=None, help="sip:user@domain of the agent's softphone")
@click.option("--skills", default="", help="comma-separated, e.g. billing,technical")
@click.option("--presence", type=click.Choice(PRESENCES), default=Presence.OFFLINE.value)
@with_appcontext
def add_agent(name, extension, sip_uri, skills, presence) -> None:
    """Add an agent (or update the one with this extension)."""
    with errors_in_words(service.RosterError):
        spec = service.parse_agent(
            {"name": name, "extension": extension, "sip_uri": sip_uri, "skills": skills, "presence": presence}
        )
        _save(service.upsert_agent, spec, lambda agent: f"agent {agent.extension} {agent.name} saved")


@listing_command(agents_cli, "List agents with presence and activity.",
                 lambda session: [service.agent_as_dict(agent) for agent in service.list_agents(session)])
def list_agents(rows: list[dict]) -> None:
    if not rows:
        click.echo("no agents yet: flask --app wsgi agents add, or roster load")
        return
    click.echo(f"{'ext':>6}  {'name':<20} {'presence':<9} {'activity':<8} {'skills':<20} softphone")
    for row in rows:
        click.echo(
            f"{row['extension']:>6}  {row['name']:<20} {row['presence']:<9} {row['activity']:<8} "
            f"{','.join(row['skills']):<20} {row['sip_uri'] or 'browser'}"
        )


@agents_cli.command("presence")
@click.argument("extension")
@click.argument("presence", type=click.Choice(PRESENCES))
@with_appcontext
def set_presence(extension: str, presence: str) -> None:
    """Set an agent's presence."""
    # A step on calls: an agent made available is offered the waiting transfers and callers at once.
    with errors_in_words(service.RosterError), job_step(jobs_of(current_app).context["tools"]) as t:
        service.set_presence_and_offer(t, extension, presence)
    click.echo(f"agent {extension} is {presence}")


remove_agent = removing_command(agents_cli, "remove", "extension", service.remove_agent, service.RosterError,
                                "agent {} removed", help="Remove an agent.")


@queues_cli.command("add")
@click.option("--name", required=True)
@click.option("--dtmf-code", required=True, help="the digit a caller presses in the IVR")
@click.option("--skill", default=None, help="agents with this skill answer the queue (default: its name)")
@click.option("--hints", default="", help="comma-separated speech hints")
@click.option("--default", "is_default", is_flag=True, help="where callers go when the IVR cannot tell")
@click.option("--wrap-up-seconds", default=None, help="after-call work of its agents (default: WRAP_UP_SECONDS)")
@click.option("--announce-seconds", default=None,
              help="how often a queued caller hears their place (default: QUEUE_ANNOUNCE_SECONDS)")
@click.option("--max-wait-seconds", default=None,
              help="longest wait before the overflow or a transfer's end (default: MAX_QUEUE_WAIT_SECONDS)")
@click.option("--callback-attempts", default=None,
              help="times a callback rings its customer before it fails (default: CALLBACK_ATTEMPTS)")
@click.option("--priority", default=None,
              help="-100 to 100 (default 0): an agent serving several queues gets the highest one's caller first")
@click.option("--timezone", default=None, help="time zone of its hours, e.g. Europe/London (default: CENTRE_TIMEZONE)")
@click.option("--hours", "hours", multiple=True, metavar="DAYS=RANGES",
              help="business hours, once per day or run of days: mon-fri=09:00-17:00, sat=10:00-12:00,13:00-16:00, "
                   "sun=closed, fri=22:00-06:00 (past midnight); days not named are closed; none: always open")
@click.option("--holiday", "holidays", multiple=True, metavar="YYYY-MM-DD", help="a date it is closed all day")
@click.option("--overflow", default=None,
              help="past the longest wait: options (default), voicemail, callback, or another queue's name")
@with_appcontext
def add_queue(name, dtmf_code, skill, hints, is_default, wrap_up_seconds, announce_seconds,
              max_wait_seconds, callback_attempts, priority, timezone, hours, holidays, overflow) -> None:
    """Add a queue (or update the one with this name)."""
    with errors_in_words(service.RosterError):
        try:
            week = week_from_lines(hours) if hours else None
        except HoursError as error:
            raise service.RosterError(f"queue {name.strip().lower()!r}: {error}") from None
        spec = service.parse_queue(
            {
                "name": name,
                "dtmf_code": dtmf_code,
                "skill": skill or name,
                "speech_hints": hints.split(","),
                "default": is_default,
                "wrap_up_seconds": wrap_up_seconds,
                "announce_seconds": announce_seconds,
                "max_wait_seconds": max_wait_seconds,
                "callback_attempts": callback_attempts,
                "priority": priority,
                "timezone": timezone,
                "hours": week,
                "holidays": list(holidays),
                "overflow": overflow,
            }
        )
        _save(service.add_queue, spec, lambda queue: f"queue {queue.name} saved (press {queue.dtmf_code})")


@listing_command(queues_cli, "List queues.",
                 lambda session: [service.queue_as_dict(queue) for queue in service.list_queues(session)])
def list_queues(rows: list[dict]) -> None:
    for row in rows:
        marker = " (default)" if row["default"] else ""
        click.echo(f"{row['dtmf_code']:>4}  {row['name']:<16} skill={row['skill']}{marker}")
