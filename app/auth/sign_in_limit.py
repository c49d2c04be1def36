"""The sign-in limit: failed sign-ins are counted, per address and per user at an address; successes never are.

A shared office signs in from one address at shift start. Counting every
attempt (successes too) would lock the whole office out after a handful of
colleagues signed in; so only a wrong username or password counts, and a
user who gets in has their own failures at that address forgotten.

The counters, each over a moving window of LOGIN_FAILURE_WINDOW_SECONDS:

- per address (LOGIN_FAILURES_PER_ADDRESS): one address trying many
  usernames (password spraying) is stopped whoever it tries; an IPv6
  address counts by its /64, and its /56 is allowed eight times as many
  (limit_store.client_network), so moving through a home's /64s does not
  start afresh at each;
- per user at one address (LOGIN_FAILURES_PER_USER): one address guessing
  one user's password is stopped sooner, and only there. The counter is
  kept per user *and* address on purpose: a counter per user alone would let
  anyone who knows a username lock that user out everywhere by typing wrong
  passwords for them. Here the real user, at their own desk, signs in as
  usual while someone elsewhere is refused.

An address over either limit is refused before the password is checked, so
refused attempts cost no password hashing and tell nothing about the
password. Counters live where RATELIMIT_STORAGE_URI says (`memory://`, per
process; `redis://…`, shared by every worker and host). When that store
cannot be reached the limit is kept in this process's memory meanwhile
rather than letting everybody in or nobody.

A test and the count that follows a failure are two steps: sign-ins checked
at the same moment from one address may each be let through before any of
them is counted, so the limit can be passed by as many attempts as the
service serves at once. Each still costs a password hash.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, TypeVar

from app.auth.limit_store import NETWORK_SHARE, LimitStore, client_key, client_network
from app.logs import get_logger

log = get_logger(__name__)
KEY_PREFIX = "switchboard-sign-in"
T = TypeVar("T")


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in is refused before its password is checked, and when to try again."""

    scope: str  # "address", "network" or "user"
    retry_after_seconds: int

    @property
    def words(self) -> str:
        minutes = max(1, math.ceil(self.retry_after_seconds / 60))
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        if self.scope == "user":
            return (f"Too many wrong passwords for this user from your address. Try again in {wait}; "
                    "signing in from another address is not affected.")
        if self.scope == "network":
            return f"Too many failed sign-ins from your network. Try again in {wait}."
        return f"Too many failed sign-ins from your address. Try again in {wait}."


class SignInLimit:
    """Counts failed sign-ins and says when an address, or a user at an address, must wait."""

    def __init__(self, storage_uri: str, *, per_address: int, per_user: int, window_seconds: int):
        self._store = LimitStore(storage_uri)
        self._address = LimitStore.window(per_address, window_seconds, KEY_PREFIX)
        self._network = LimitStore.window(per_address * NETWORK_SHARE, window_seconds, KEY_PREFIX)
        self._user = LimitStore.window(per_user, window_seconds, KEY_PREFIX)

    def attempt(self, username: str, address: str, check: Callable[[], T | None]) -> T | Refusal | None:
        """Sign in as USERNAME from ADDRESS: a Refusal while over a limit (CHECK is not run), else what CHECK
        answers (the user, or None for a wrong username or password, which is counted)."""
        refusal = self.refusal(username, address)
        if refusal is not None:
            log.warning("login_limited", scope=refusal.scope, retry_after_seconds=refusal.retry_after_seconds)
            return refusal
        user = check()
        if user is None:
            self.failed(username, address)
        else:
            self.succeeded(username, address)
        return user

    def refusal(self, username: str, address: str) -> Refusal | None:
        """Why a sign-in as USERNAME from ADDRESS is refused now, or None if it may be tried."""
        for scope, item, keys in self._counters(username, address):
            if not self._store.test(item, *keys):
                return Refusal(scope, self._store.retry_after(item, *keys))
        return None

    def failed(self, username: str, address: str) -> None:
        """Count a wrong username or password: against the address (and its network), and against the user at
        that address."""
        for _scope, item, keys in self._counters(username, address):
            self._store.hit(item, *keys)

    def succeeded(self, username: str, address: str) -> None:
        """The user got in: their failures at this address are forgotten (the address's are kept)."""
        self._store.clear(self._user, *self._user_keys(username, address))

    def _counters(self, username: str, address: str):
        yield "address", self._address, ("address", client_key(address))
        network = client_network(address)
        if network is not None:
            yield "network", self._network, ("network", network)
        yield "user", self._user, self._user_keys(username, address)

    @staticmethod
    def _user_keys(username: str, address: str) -> tuple[str, ...]:
        # Usernames are typed by anyone: a digest keeps the store's keys short and free of separators,
        # and "Sam" and "sam" share one counter.
        digest = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
        return ("user", digest, client_key(address))
