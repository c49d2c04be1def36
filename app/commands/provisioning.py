"""`flask provision`: point the Twilio number and LiveKit SIP at this service, idempotently."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.gateways.livekit import LiveKitError
from app.gateways.registry import gateways
from app.gateways.twilio import TwilioError
from app.provisioning.doctor import run_checks
from app.provisioning.plan import (
    SYSTEMS,
    Change,
    ProvisioningError,
    apply_plan,
    desired_state,
    make_plan,
    warnings_for,
)

# Exit status of --check: 0 up to date, 1 drift, 2 could not tell (errors).
EXIT_DRIFT = 1
EXIT_ERROR = 2


class ProvisioningFailed(click.ClickException):
    """An error that stops provisioning; exits 2 so --check's 1 always means drift."""

    exit_code = EXIT_ERROR


@click.command("provision")
@click.option("--dry-run", is_flag=True, help="Print the changes and make none.")
@click.option("--check", is_flag=True,
              help="Print what differs; exit 1 if anything does, 0 if up to date.")
@click.option("--only", type=click.Choice(SYSTEMS), default=None,
              help="Provision one system only.")
@click.option("--rotate-sip-password", is_flag=True,
              help="Set the trunk's password from LIVEKIT_SIP_PASSWORD even if nothing else "
                   "differs (LiveKit cannot show the current one).")
@click.option("--create-api-key", is_flag=True,
              help="Create the API key that signs browsers' call tokens (while TWILIO_API_KEY_SID is unset); "
                   "its secret is printed once.")
@with_appcontext
def provision_command(dry_run: bool, check: bool, only: str | None,
                      rotate_sip_password: bool, create_api_key: bool) -> None:
    """Set the Twilio number's webhooks, the TwiML App of calls from the website, and the LiveKit SIP trunk and
    dispatch rule."""
    if dry_run and check:
        raise click.UsageError("--dry-run and --check cannot be combined")
    if check and rotate_sip_password:
        raise click.UsageError("--rotate-sip-password changes the trunk; it has no --check")
    if check and create_api_key:
        raise click.UsageError("--create-api-key makes a key; it has no --check")
    settings = current_app.config["SETTINGS"]
    systems = (only,) if only else SYSTEMS
    try:
        desired = desired_state(settings, systems)
    except ProvisioningError as error:
        raise ProvisioningFailed(str(error)) from None
    for warning in warnings_for(settings, systems):
        click.echo(f"warning: {warning}", err=True)

    found = gateways()
    twilio = found.twilio if desired.number is not None or desired.app is not None else None
    livekit = found.livekit if "livekit" in systems else None
    try:
        plan = make_plan(desired, twilio, livekit, rotate_sip_password=rotate_sip_password,
                         create_api_key=create_api_key)
        if check:
            _report_drift(plan.changes)
        elif dry_run:
            _report_plan(plan.changes)
        elif plan.up_to_date:
            click.echo("Up to date: nothing to change.")
        else:
            apply_plan(plan, twilio, livekit,
                       on_applied=lambda change: click.echo(f"done: {change.sentence}"))
            click.echo(f"Applied {len(plan.changes)} change(s).")
    except ProvisioningError as error:
        raise ProvisioningFailed(str(error)) from None
    except (TwilioError, LiveKitError) as error:
        # The gateways' messages carry the API's own words with secrets already removed.
        raise ProvisioningFailed(f"{error}; the steps after it were not made") from None


def _report_drift(changes: tuple[Change, ...]) -> None:
    if not changes:
        click.echo("Up to date.")
        return
    for change in changes:
        click.echo(f"drift: {change.sentence}")
    click.echo(f"{len(changes)} difference(s); `flask provision` fixes them.")
    raise click.exceptions.Exit(EXIT_DRIFT)


def _report_plan(changes: tuple[Change, ...]) -> None:
    if not changes:
        click.echo("Up to date: nothing to change.")
        return
    click.echo("Would apply (dry run, nothing changed):")
    for change in changes:
        click.echo(f"  - {change.sentence}")
    click.echo(f"{len(changes)} change(s); run without --dry-run to apply them.")


@click.command("doctor")
@with_appcontext
def doctor_command() -> None:
    """Check, changing nothing, that the real accounts and this service are ready for a first call."""
    settings = current_app.config["SETTINGS"]
    found = gateways()
    checks = run_checks(settings, found.twilio, found.livekit, found.llm)
    for check in checks:
        click.echo(check.line)
    failed = [check.name for check in checks if not check.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: {', '.join(failed)}")
    click.echo("All checks passed.")
