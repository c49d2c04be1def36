"""Switchboard: the Flask application factory."""

from __future__ import annotations

from flask import Flask

from config import INSTANCE_DIR, Settings, development_secret_key, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the application: each step initialises one concern, in order."""
    from app.auth.setup import init_auth
    from app.db import init_db
    from app.gateways.registry import init_gateways
    from app.jobs.setup import init_jobs
    from app.web.media_cache import init_media_cache
    from app.web.request_context import init_request_context
    from app.web.request_cost import init_request_cost
    from app.web.request_size import init_request_size_limit
    from app.web.security_headers import init_security_headers
    from app.web.text_input import init_text_input_check
    from app.web.unit_of_work import init_unit_of_work

    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    init_settings(app, settings or load_settings())
    for step in (init_logging, init_db, init_live_pages, init_request_cost, init_unit_of_work, init_gateways,
                 init_jobs, init_request_context, init_request_size_limit, init_text_input_check,
                 init_security_headers, init_media_cache, init_auth, init_blueprints, init_cli, init_proxy, announce):
        step(app)
    return app


def init_settings(app: Flask, settings: Settings) -> None:
    app.config["SETTINGS"] = settings
    app.config["SECRET_KEY"] = settings.secret_key or development_secret_key()
    app.config["DEBUG"] = settings.debug
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.public_base_url.startswith("https://")


def init_live_pages(app: Flask) -> None:
    """The live pages open their streams under LIVE_STREAM_BASE (empty: the web workers' own). What changed reaches
    the live process from PostgreSQL's own triggers (app/live/signal.py), not from the app."""
    app.context_processor(lambda: {"live_stream_base": app.config["SETTINGS"].live_stream_base})


def init_logging(app: Flask) -> None:
    from app.logs import configure_logging

    settings: Settings = app.config["SETTINGS"]
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())


def close_app(app: Flask, wait_seconds: float = 10.0) -> bool:
    """Stop what the app runs in the background, then release its gateways and connections (tests, commands).

    Live page streams are ended and the job worker is stopped, the jobs under
    way (a summary being written) waited for at most WAIT_SECONDS, so
    nothing uses the database after its engine is gone; False if something
    was still running at the end.
    """
    from app.gateways.registry import close_gateways

    streams = app.extensions.get("supervisor_stream_gate")
    stopped = streams.close(wait_seconds) if streams is not None else True
    stopped = app.extensions["jobs"].stop(wait_seconds) and stopped
    close_gateways(app)
    app.extensions["db_engine"].dispose()
    return stopped


def init_blueprints(app: Flask) -> None:
    # The API's views join its blueprint as their modules load.
    from app.api import calls as _calls_api  # noqa: F401
    from app.api import queues as _queues_api  # noqa: F401
    from app.api import roster as _roster_api  # noqa: F401
    from app.api import transfers as _transfers_api  # noqa: F401
    from app.api.common import blueprint as api
    from app.auth.setup import csrf_exempt
    from app.auth.views import blueprint as auth
    from app.console.views import blueprint as console
    from app.health.views import blueprint as health
    from app.supervisor.history import blueprint as history
    from app.supervisor.views import blueprint as supervisor
    from app.voice.agent import blueprint as agent_voice
    from app.voice.caller import blueprint as calls
    from app.voice.livekit import blueprint as livekit
    from app.voice.target import blueprint as transfer_voice
    from app.webcall.views import blueprint as webcall

    # Webhooks prove themselves by signature and the API by bearer token, not by a CSRF token; the public call
    # token, asked for by other sites' pages too, by its Origin and a rate limit (app/webcall/guards.py).
    for exempt in (calls, agent_voice, transfer_voice, livekit, api, webcall):
        csrf_exempt(exempt)
    for blueprint in (health, auth, calls, agent_voice, transfer_voice, livekit, api, supervisor, history, console,
                      webcall):
        app.register_blueprint(blueprint)


def init_cli(app: Flask) -> None:
    from app.commands.agents import agents_cli, queues_cli
    from app.commands.calls import calls_cli
    from app.commands.database import db_cli
    from app.commands.events import events_cli
    from app.commands.jobs import jobs_cli
    from app.commands.live import live_command
    from app.commands.provisioning import doctor_command, provision_command
    from app.commands.roster import roster_cli
    from app.commands.users import api_tokens_cli, users_cli
    from app.demo.cli import demo_command

    groups = (db_cli, agents_cli, queues_cli, roster_cli, provision_command, doctor_command, users_cli,
              api_tokens_cli, demo_command, calls_cli, jobs_cli, events_cli, live_command)
    for group in groups:
        app.cli.add_command(group)


def init_proxy(app: Flask) -> None:
    """Believe X-Forwarded-* only as deep as TRUSTED_PROXY_HOPS.

    ProxyFix reads each header from the right: with one hop the client is the
    address the proxy appended last, and whatever a client wrote further left
    (a forged X-Forwarded-For) is ignored.
    """
    settings: Settings = app.config["SETTINGS"]
    if settings.trusted_proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]


def announce(app: Flask) -> None:
    from app.logs import get_logger

    settings: Settings = app.config["SETTINGS"]
    log = get_logger("switchboard")
    database = "postgresql" if settings.database_url.startswith("postgresql") else "sqlite"
    log.info("app_created", env=settings.app_env, database=database, public_base_url=settings.public_base_url)
    for integration in settings.unconfigured():
        log.warning("integration_not_configured", integration=integration)
    if settings.ratelimit_storage_uri.startswith("memory://") and settings.web_concurrency > 1:
        # Each worker counts sign-in attempts on its own: the limit is that many times looser.
        log.warning("login_limit_per_worker", workers=settings.web_concurrency,
                    advice="set RATELIMIT_STORAGE_URI to a shared store, e.g. redis://localhost:6379/0")
    if settings.trusted_proxy_hops and not _binds_to_loopback(settings.host):
        # Whoever reaches the port directly, past the proxy, writes the
        # X-Forwarded-For the service believes: their address is what they say.
        log.warning("proxy_can_be_bypassed", host=settings.host, trusted_proxy_hops=settings.trusted_proxy_hops,
                    risk="clients that reach this address directly can forge their address (X-Forwarded-For) "
                         "and dodge the login rate limit",
                    advice="bind HOST to 127.0.0.1 or a private interface only the proxy reaches, "
                           "or firewall the port to the proxy's address")


def _binds_to_loopback(host: str) -> bool:
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        # Any other host name may resolve to an interface others reach.
        return False
