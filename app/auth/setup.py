"""Wire sign-in into an app: login sessions, CSRF protection, the login rate limit, their error pages.

Every POST, PUT, PATCH and DELETE needs a CSRF token unless its blueprint is
exempted with `csrf_exempt(blueprint)`: Twilio and LiveKit webhooks (which
prove themselves by signature) and the bearer-token JSON API. Exemption goes
by blueprint, so it may happen before or after the blueprint is registered.
"""

from __future__ import annotations

from flask import Blueprint, Flask, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect

from app.auth.guards import load_signed_in_user
from app.auth.views import blueprint as auth_blueprint
from app.logs import get_logger
from app.web.errors import error_page

LOGIN_RATE_LIMIT = "5 per minute"

# One instance for every app: exemptions are kept by blueprint, and
# blueprints are module-level objects shared by every app anyway.
csrf = CSRFProtect()
log = get_logger(__name__)


def init_auth(app: Flask) -> None:
    """Add login sessions, CSRF protection on every form, and a rate limit on POST /login."""
    settings = app.config["SETTINGS"]

    login_manager = LoginManager()
    login_manager.user_loader(load_signed_in_user)
    login_manager.init_app(app)

    # Set up before CSRFProtect, so the limit is checked first and even
    # floods of POST /login without a CSRF token are counted.
    limiter = Limiter(
        get_remote_address,
        storage_uri=settings.ratelimit_storage_uri,
        key_prefix="switchboard",
        headers_enabled=True,
        # If Redis (or whatever backs the limit) is down, keep limiting
        # per process rather than locking everybody out.
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    limiter.limit(
        LOGIN_RATE_LIMIT,
        methods=["POST"],
        exempt_when=lambda: request.endpoint != "auth.login",
    )(auth_blueprint)

    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_error_handler(RateLimitExceeded, _rate_limited)


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


def _rate_limited(error: RateLimitExceeded):
    log.warning("rate_limited", path=request.path, limit=error.description)
    what = "sign-in attempts" if request.endpoint == "auth.login" else "requests"
    return error_page(429, "Too many attempts", f"Too many {what} from your address. Wait a minute, then try again.")
