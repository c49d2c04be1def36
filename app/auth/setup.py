"""Wire sign-in into an app: login sessions, CSRF protection, the limit on failed sign-ins, their error pages.

Every POST, PUT, PATCH and DELETE needs a CSRF token unless its blueprint is
exempted with `csrf_exempt(blueprint)`: Twilio and LiveKit webhooks (which
prove themselves by signature) and the bearer-token JSON API. Exemption goes
by blueprint, so it may happen before or after the blueprint is registered.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect

from app.auth.guards import load_signed_in_user
from app.auth.sign_in_limit import SignInLimit
from app.logs import get_logger
from app.web.errors import error_page

# One instance for every app: exemptions are kept by blueprint, and
# blueprints are module-level objects shared by every app anyway.
csrf = CSRFProtect()
log = get_logger(__name__)


def init_auth(app: Flask) -> None:
    """Add login sessions, CSRF protection on every form, and the limit on failed sign-ins (POST /login)."""
    settings = app.config["SETTINGS"]

    app.session_interface = CookieSessions()
    login_manager = LoginManager()
    login_manager.user_loader(load_signed_in_user)
    login_manager.init_app(app)

    app.extensions["sign_in_limit"] = SignInLimit(
        settings.ratelimit_storage_uri,
        per_address=settings.login_failures_per_address,
        per_user=settings.login_failures_per_user,
        window_seconds=settings.login_failure_window_seconds,
    )

    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_failed)


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened only when the request carries the cookie.

    Flask builds a signing serializer for every request before it looks for
    the cookie; webhooks and API calls never carry one (2% of a webhook's CPU).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def csrf_exempt(blueprint: Blueprint) -> Blueprint:
    """Exempt a blueprint and the blueprints nested in it from CSRF checks (webhooks, bearer-token API)."""
    csrf.exempt(blueprint)
    # Flask registers nested blueprints under their own names, and the CSRF
    # check looks the request's innermost blueprint up by name.
    for child, _options in blueprint._blueprints:
        csrf_exempt(child)
    return blueprint


def _csrf_failed(error: CSRFError):
    log.info("csrf_refused", reason=error.description, path=request.path)
    return error_page(
        400,
        "Form expired or incomplete",
        "This form could not be accepted because its security token was missing or out of date. "
        "Go back, reload the page and try again.",
    )
