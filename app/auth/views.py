"""Signing in and out of the supervisor board and the agent console."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

from app.auth import service
from app.auth.guards import SignedInUser
from app.auth.sign_in_limit import Refusal
from app.logs import get_logger
from app.web.errors import error_page
from app.web.unit_of_work import request_session

blueprint = Blueprint("auth", __name__)
log = get_logger(__name__)

# The board and the console are separate packages; plain paths keep this
# blueprint free of a dependency on them.
HOME_BY_ROLE = {service.Role.SUPERVISOR: "/board", service.Role.AGENT: "/console"}


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=service.MAX_PASSWORD_LENGTH)])


def safe_next(target: str | None) -> str | None:
    """The target if it is a relative path on this site, else None (an open redirect is a phishing aid)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers read a backslash as a slash and drop tabs and newlines, so
    # "/\evil.example" or "/\t/evil.example" would leave the site.
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def home_for(role: str) -> str:
    """Where a user of this role lands after signing in."""
    return HOME_BY_ROLE.get(role, "/login")


@blueprint.get("/")
def home():
    """The start page: the signed-in user's home, or the sign-in page."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    return redirect("/login")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form; on the right credentials start a session and go on.

    Only failed sign-ins are counted (app/auth/sign_in_limit.py): an address,
    or a user at an address, over its limit is refused before the password
    is checked; a success never counts.
    """
    target = safe_next(request.args.get("next"))
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(target or home_for(current_user.role))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = current_app.extensions["sign_in_limit"].attempt(
            form.username.data, request.remote_addr or "unknown",
            lambda: service.authenticate(request_session(), form.username.data, form.password.data))
        if isinstance(user, Refusal):
            body, status = error_page(429, "Too many failed sign-ins", user.words)
            return body, status, {"Retry-After": str(user.retry_after_seconds)}
        if user is not None:
            # A fresh session on every sign-in, so a session id planted
            # before login is worth nothing after it; one open in this
            # browser before ends here.
            if current_user.is_authenticated:
                service.end_login_session(request_session(), current_user.session_key)
            session.clear()
            key = service.start_login_session(request_session(), user)
            login_user(SignedInUser.from_user(user, key))
            log.info("user_logged_in", user_id=user.id, role=user.role)
            return redirect(target or home_for(user.role))
        log.info("login_refused")
        error = "Wrong username or password."
    return render_template("auth/login.html", form=form, error=error, next=target)


@blueprint.post("/logout")
def logout():
    """End the session on the server, so a copy of its cookie is refused too, and go back to the login page."""
    if current_user.is_authenticated:
        service.end_login_session(request_session(), current_user.session_key)
        log.info("user_logged_out", user_id=current_user.id)
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect("/login")
