"""Users, passwords and API tokens: who may use the board, the console and the JSON API.

Passwords are kept only as salted werkzeug hashes (scrypt by default); API
tokens only as their SHA-256, so a copy of the database lets nobody in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from enum import StrEnum
from functools import cache
from typing import Iterable

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.models import Agent, ApiToken, LoginSession, User, utcnow

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
TOKEN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_PREFIX = "sb_"
# A login session's key is secrets.token_urlsafe(32): 43 characters.
MAX_SESSION_KEY_LENGTH = 64
# last_seen_at is a hint for whoever reads the table, not a clock to the
# second: writing it at most this often keeps page views from writing at all.
LAST_SEEN_RESOLUTION = timedelta(minutes=5)


class Role(StrEnum):
    SUPERVISOR = "supervisor"
    AGENT = "agent"


class AuthError(ValueError):
    """A user or token command that cannot be applied, with the reason in words."""


def create_user(
    session: Session, username: str, password: str, role: str, agent_extension: str | None = None
) -> User:
    """Create a user; an agent user is tied to the agent with that extension."""
    username = username.strip()
    if not USERNAME_PATTERN.match(username):
        raise AuthError("username must be 2 to 64 letters, digits or . _ @ -, starting with a letter or digit")
    if role not in Role.__members__.values():
        raise AuthError(f"role must be one of {', '.join(Role)}")
    _check_password(password)
    if session.scalar(select(exists().where(User.username == username))):
        raise AuthError(f"user {username!r} already exists")
    agent = _agent_for(session, role, agent_extension)
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        agent_id=agent.id if agent else None,
    )
    session.add(user)
    session.flush()
    return user


def _agent_for(session: Session, role: str, extension: str | None) -> Agent | None:
    if role == Role.SUPERVISOR:
        if extension:
            raise AuthError("a supervisor is not tied to an agent extension")
        return None
    if not extension:
        raise AuthError("an agent user needs the extension of the agent it signs in as")
    agent = session.scalar(select(Agent).where(Agent.extension == extension.strip()))
    if agent is None:
        raise AuthError(f"no agent with extension {extension}")
    if session.scalar(select(exists().where(User.agent_id == agent.id))):
        raise AuthError(f"agent {agent.extension} already has a user")
    return agent


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def find_user(session: Session, user_id: int) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def list_users(session: Session) -> list[User]:
    """Every user, by username."""
    return list(session.scalars(select(User).order_by(User.username)))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user whose username and password match, or None."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        # Spend the same time as for a wrong password, so the answer does not
        # reveal which usernames exist.
        check_password_hash(_dummy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


@cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def change_password(session: Session, username: str, new_password: str) -> User:
    """Replace a user's password (which also ends that user's signed-in sessions)."""
    _check_password(new_password)
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise AuthError(f"no user {username!r}")
    user.password_hash = generate_password_hash(new_password)
    end_login_sessions_of(session, user.id)
    session.flush()
    return user


def start_login_session(session: Session, user: User) -> str:
    """Open a login session for USER and return its key for the session cookie (only its SHA-256 is stored)."""
    key = secrets.token_urlsafe(32)
    session.add(LoginSession(key_hash=hash_api_token(key), user_id=user.id))
    session.flush()
    return key


def find_login_session(session: Session, key: str, idle_limit: timedelta | None = None) -> LoginSession | None:
    """The open login session with this key, or None once it has ended (signed out, password changed, user gone,
    or unused for longer than IDLE_LIMIT: then it is ended here)."""
    if not key or len(key) > MAX_SESSION_KEY_LENGTH:
        return None
    login = session.scalar(select(LoginSession).where(LoginSession.key_hash == hash_api_token(key)))
    if login is None:
        return None
    now = utcnow()
    if idle_limit is not None and now - login.last_seen_at > idle_limit:
        session.delete(login)
        return None
    if now - login.last_seen_at >= LAST_SEEN_RESOLUTION:
        login.last_seen_at = now
    return login


def end_login_session(session: Session, key: str) -> None:
    """End the login session with this key, so its cookie, and every copy of it, is refused from now on."""
    session.execute(delete(LoginSession).where(LoginSession.key_hash == hash_api_token(key)))


def end_idle_login_sessions(session: Session, idle_limit: timedelta) -> int:
    """End every login session unused for longer than IDLE_LIMIT (flask db prune); returns how many."""
    cutoff = utcnow() - idle_limit
    return session.execute(delete(LoginSession).where(LoginSession.last_seen_at < cutoff)).rowcount


def end_login_sessions_of(session: Session, user_id: int) -> None:
    """End every login session of a user."""
    session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))


def supervisor_exists(session: Session) -> bool:
    """Whether anyone can sign in as a supervisor."""
    return bool(session.scalar(select(exists().where(User.role == Role.SUPERVISOR))))


def bootstrap_supervisor(session: Session, username: str, password: str) -> bool:
    """Create the first supervisor unless one exists; True if it was created."""
    if supervisor_exists(session):
        return False
    create_user(session, username, password, Role.SUPERVISOR)
    return True


def hash_api_token(token: str) -> str:
    """The SHA-256 (hex) under which a token (or a login session's key) is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class Scope(StrEnum):
    """What an API token may do: every JSON API route needs one of these."""

    READ = "read"  # read calls, transfers, callbacks, agents and queues (GET)
    ACT = "act"  # place calls, start and act on transfers, set presence (POST, PUT, DELETE)


# --expires-in: a whole number of days or hours, at most ten years.
EXPIRES_IN_PATTERN = re.compile(r"^\s*(\d{1,6})\s*([dh])\s*$", re.IGNORECASE)
MAX_EXPIRES_IN = timedelta(days=3650)


def read_expires_in(text: str) -> timedelta:
    """A token's lifetime as given on the command line: 30d (days) or 12h (hours)."""
    match = EXPIRES_IN_PATTERN.match(text or "")
    if match is None:
        raise AuthError(f"expires-in {text!r} is not a lifetime: give days or hours, like 30d or 12h")
    number, unit = int(match.group(1)), match.group(2).lower()
    lifetime = timedelta(days=number) if unit == "d" else timedelta(hours=number)
    if not timedelta(0) < lifetime <= MAX_EXPIRES_IN:
        raise AuthError(f"expires-in must be from 1h to {MAX_EXPIRES_IN.days}d")
    return lifetime


def read_scopes(names: Iterable[str]) -> tuple[Scope, ...]:
    """The scopes NAMES give, in Scope's order; AuthError for none or a name that is not a scope."""
    given = {name.strip().lower() for name in names}
    unknown = given - set(Scope)
    if unknown:
        raise AuthError(f"{', '.join(sorted(unknown))} is not a scope: use {' and/or '.join(Scope)}")
    if not given:
        raise AuthError(f"give the token at least one scope: {' and/or '.join(Scope)}")
    return tuple(scope for scope in Scope if scope in given)


def token_scopes(token: ApiToken) -> tuple[Scope, ...]:
    """The scopes a stored token has."""
    return read_scopes(token.scopes.split())


def create_api_token(session: Session, name: str, scopes: Iterable[str],
                     expires_in: timedelta | None = None) -> str:
    """Create a named API token with SCOPES that expires after EXPIRES_IN (None: never), and return its
    plaintext, which is never stored and cannot be shown again."""
    name = name.strip()
    if not TOKEN_NAME_PATTERN.match(name):
        raise AuthError("token name must be 1 to 64 letters, digits or . _ -, starting with a letter or digit")
    chosen = read_scopes(scopes)
    if session.scalar(select(exists().where(ApiToken.name == name))):
        raise AuthError(f"token {name!r} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_api_token(token), scopes=" ".join(chosen),
                         expires_at=utcnow() + expires_in if expires_in is not None else None))
    session.flush()
    return token


class TokenRefused(Exception):
    """An API request refused for its token: STATUS (401 or 403) and why, in words."""

    def __init__(self, status: int, words: str) -> None:
        super().__init__(words)
        self.status = status


def admit_api_token(session: Session, token: str, scope: Scope) -> ApiToken:
    """The stored token matching this plaintext, if it has not expired and has SCOPE (its last use noted);
    TokenRefused otherwise: 401 for a token that is unknown (or revoked) or expired, 403 for a missing scope."""
    api_token = verify_api_token(session, token)
    if api_token is None:
        raise TokenRefused(401, "the API token is not valid (it may have been revoked)")
    now = utcnow()
    if api_token.expires_at is not None and api_token.expires_at <= now:
        raise TokenRefused(401, f"the API token {api_token.name!r} expired at "
                                f"{api_token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one")
    scopes = token_scopes(api_token)
    if scope not in scopes:
        raise TokenRefused(403, f"the API token {api_token.name!r} has the scope {' and '.join(scopes)} only; "
                                f"this needs the {scope} scope (a token created with --scope {scope})")
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_SEEN_RESOLUTION:
        api_token.last_used_at = now
    return api_token


def verify_api_token(session: Session, token: str) -> ApiToken | None:
    """The stored token matching this plaintext, or None."""
    if not token:
        return None
    # Looking up by digest leaks nothing useful through timing: an attacker
    # cannot steer the SHA-256 of a guess towards a stored one.
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_api_token(token)))


def list_api_tokens(session: Session) -> list[ApiToken]:
    """Every API token (names, scopes and dates only; plaintexts are never stored), by name."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_api_token(session: Session, name: str) -> None:
    """Delete the token with this name, so it stops working at once."""
    token = session.scalar(select(ApiToken).where(ApiToken.name == name.strip()))
    if token is None:
        raise AuthError(f"no token {name!r}")
    session.delete(token)
    session.flush()
