"""Who may open a page or call the JSON API, and what those who may not are told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Callable
from urllib.parse import urlencode

import structlog
from flask import current_app, g, jsonify, redirect, request
from flask_login import UserMixin, current_user

from app.actors import Actor, ActorKind
from app.auth import service
from app.models import User
from app.web.errors import error_page
from app.web.unit_of_work import request_session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class SignedInUser(UserMixin):
    """The user of a login session, detached from the database rows it was read from."""

    id: int
    username: str
    role: str
    agent_id: int | None
    session_key: str

    @classmethod
    def from_user(cls, user: User, session_key: str) -> SignedInUser:
        """Wrap a User row signed in under this login session key."""
        return cls(user.id, user.username, user.role, user.agent_id, session_key)

    def get_id(self) -> str:
        """What the session cookie keeps: the key of the login session row, never the user id itself."""
        return self.session_key


def load_signed_in_user(session_key: str) -> SignedInUser | None:
    """Flask-Login's user loader: the user of this login session, unless it has ended since."""
    hours = current_app.config["SETTINGS"].login_idle_hours
    login = service.find_login_session(request_session(), session_key,
                                       timedelta(hours=hours) if hours else None)
    if login is None:
        return None
    return SignedInUser.from_user(login.user, session_key)


def current_agent_id() -> int | None:
    """The agent id of the signed-in user, or None for supervisors and anonymous visitors."""
    if not current_user.is_authenticated:
        return None
    return current_user.agent_id


def current_actor() -> Actor:
    """Who is asking in this request: the API token it carries (by its name), or the signed-in user (by their
    username). Only for views behind roles_required or api_token_required."""
    if "api_token_name" in g:
        return Actor(ActorKind.TOKEN, g.api_token_name)
    if not current_user.is_authenticated:
        raise RuntimeError("current_actor() outside a guarded view: nobody is signed in")
    return Actor(ActorKind.USER, current_user.username)


def roles_required(*roles: str) -> Callable:
    """Guard a page: anonymous visitors go to the login page, other roles get a 403 page."""
    allowed = frozenset(roles)

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(_login_url())
            if current_user.role not in allowed:
                return error_page(
                    403,
                    "Not for your role",
                    f"This page is for {' and '.join(sorted(allowed))} accounts; "
                    f"you are signed in as {current_user.username} ({current_user.role}).",
                )
            return view(*args, **kwargs)

        return guarded

    return decorate


def _login_url() -> str:
    # Only the path and query: the login view accepts nothing but same-site
    # relative targets, and this keeps the URL short.
    target = request.full_path if request.query_string else request.path
    return "/login?" + urlencode({"next": target})


def api_token_required(scope: service.Scope) -> Callable:
    """Guard a JSON endpoint that needs SCOPE: a valid `Authorization: Bearer` token that has SCOPE and has not
    expired (401 without one, or with an expired or revoked one; 403 without SCOPE), or a signed-in supervisor
    (who has every scope). The token's name (never the token) goes into the request's log lines as
    `api_client`; a supervisor's as `api_user`."""
    scope = service.Scope(scope)

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            if header:
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return _unauthorized("Authorization must be 'Bearer <token>'")
                try:
                    api_token = service.admit_api_token(request_session(), token.strip(), scope)
                except service.TokenRefused as refused:
                    return _unauthorized(str(refused)) if refused.status == 401 else _forbidden(str(refused))
                g.api_token_name = api_token.name
                structlog.contextvars.bind_contextvars(api_client=api_token.name)
                return view(*args, **kwargs)
            if current_user.is_authenticated:
                if current_user.role != service.Role.SUPERVISOR:
                    return _forbidden("the API is open to supervisors and API tokens only")
                structlog.contextvars.bind_contextvars(api_user=current_user.username)
                # The API blueprint is exempt from CSRF for token clients; a
                # browser session carries cookies a hostile page could ride on,
                # so changes made with it must still prove the CSRF token.
                if request.method not in SAFE_METHODS:
                    current_app.extensions["csrf"].protect()
                return view(*args, **kwargs)
            return _unauthorized("an API token is required: send 'Authorization: Bearer <token>'")

        guarded.api_scope = scope
        return guarded

    return decorate


def _forbidden(message: str):
    return jsonify(error=message), 403


def _unauthorized(message: str):
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="switchboard"'
    return response
