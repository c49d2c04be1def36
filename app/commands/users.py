"""`flask users …` and `flask api-tokens …`: manage who may sign in and who may call the API."""

from __future__ import annotations

import sys
from datetime import timezone

import click
from flask import current_app
from flask.cli import with_appcontext

from app.auth import service
from app.commands.database import database_session, errors_in_words, removing_command

ROLES = [role.value for role in service.Role]


def _read_password(from_stdin: bool) -> str:
    # Never an option value: those end up in shell history and `ps`.
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group("users")
def users_cli() -> None:
    """Create and list users of the board and the console."""


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--agent-extension", default=None, help="the agent an agent user signs in as")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input instead of a prompt")
@with_appcontext
def create_user(username: str, role: str, agent_extension: str | None, password_stdin: bool) -> None:
    """Create a user; the password is asked for, never passed as an option."""
    password = _read_password(password_stdin)
    with errors_in_words(service.AuthError), database_session() as session:
        user = service.create_user(session, username, password, role, agent_extension)
        click.echo(f"user {user.username} created ({user.role})")


@users_cli.command("list")
@with_appcontext
def list_users() -> None:
    """List users with their role and agent extension."""
    with database_session() as session:
        rows = [
            (user.username, user.role, user.agent.extension if user.agent else "-")
            for user in service.list_users(session)
        ]
    if not rows:
        click.echo("no users")
    for username, role, extension in rows:
        click.echo(f"{username:<24} {role:<11} {extension}")


@users_cli.command("set-password")
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input instead of a prompt")
@with_appcontext
def set_password(username: str, password_stdin: bool) -> None:
    """Set a user's password; their open sessions end."""
    password = _read_password(password_stdin)
    with errors_in_words(service.AuthError), database_session() as session:
        service.change_password(session, username, password)
    click.echo(f"password of {username} changed")


@users_cli.command("bootstrap")
@click.option("--ask/--no-ask", default=None,
              help="Ask on this terminal for the first supervisor when none exists "
                   "(default: when standard input is a terminal).")
@with_appcontext
def bootstrap(ask: bool | None) -> None:
    """Make sure someone can sign in: the supervisor from SUPERVISOR_USERNAME/PASSWORD, or one asked for here."""
    settings = current_app.config["SETTINGS"]
    if not (settings.supervisor_username and settings.supervisor_password):
        with database_session() as session:
            if service.supervisor_exists(session):
                click.echo("a supervisor exists; nothing to do")
                return
        if ask is None:
            ask = sys.stdin.isatty()
        if not ask:
            click.echo("No supervisor exists yet, so nobody can sign in. Create one with "
                       "`flask --app wsgi users create --username NAME --role supervisor`, or set "
                       "SUPERVISOR_USERNAME and SUPERVISOR_PASSWORD.", err=True)
            return
        # Only someone at this machine's terminal can answer, and only while no supervisor exists.
        click.echo("No supervisor exists yet: create the first one now.")
        username = click.prompt("Username")
        password = click.prompt("Password (at least 10 characters)", hide_input=True, confirmation_prompt=True)
        with errors_in_words(service.AuthError), database_session() as session:
            created = service.bootstrap_supervisor(session, username, password)
        click.echo(f"supervisor {username} created; sign in at {settings.public_base_url}/login"
                   if created else "a supervisor already exists; nothing changed")
        return
    with errors_in_words(service.AuthError), database_session() as session:
        created = service.bootstrap_supervisor(session, settings.supervisor_username, settings.supervisor_password)
    if created:
        click.echo(f"supervisor {settings.supervisor_username} created")
    else:
        click.echo("a supervisor already exists; nothing changed")


@click.group("api-tokens")
def api_tokens_cli() -> None:
    """Create, list and revoke tokens for the JSON API."""


@api_tokens_cli.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice([scope.value for scope in service.Scope]),
              required=True, help="what the token may do: read (GET routes), act (POST and PUT); give both for both")
@click.option("--expires-in", default=None, help="refused after this long: days or hours, like 30d or 12h "
                                                  "(default: never)")
@with_appcontext
def create_token(name: str, scopes: tuple[str, ...], expires_in: str | None) -> None:
    """Create a token and print it once; only its SHA-256 is kept."""
    with errors_in_words(service.AuthError), database_session() as session:
        lifetime = service.read_expires_in(expires_in) if expires_in is not None else None
        token = service.create_api_token(session, name, scopes, lifetime)
    click.echo(f"token {name} created; it is shown only this once:", err=True)
    click.echo(token)


def _utc(moment) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if moment else "never"


@api_tokens_cli.command("list")
@with_appcontext
def list_tokens() -> None:
    """List each token's name, scopes, expiry, last use and creation (never the tokens)."""
    with database_session() as session:
        rows = [(token.name, " ".join(service.token_scopes(token)), token.expires_at, token.last_used_at,
                 token.created_at) for token in service.list_api_tokens(session)]
    if not rows:
        click.echo("no tokens")
    for name, scopes, expires_at, last_used_at, created_at in rows:
        expiry = f"expires {_utc(expires_at)}" if expires_at else "never expires"
        click.echo(f"{name:<24} scopes {scopes:<9} {expiry:<28} last used {_utc(last_used_at):<21} "
                   f"created {_utc(created_at)}")


revoke_token = removing_command(api_tokens_cli, "revoke", "name", service.revoke_api_token, service.AuthError,
                                "token {} revoked", help="Revoke a token; requests with it are refused at once.")
