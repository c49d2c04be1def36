"""Moving-window counters in the store RATELIMIT_STORAGE_URI names, kept in this process's memory while that
store cannot be reached (rather than letting everybody through or nobody).

The sign-in limit (sign_in_limit.py) and the website's call tokens
(app/webcall/guards.py) count here; each names its own namespace.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.logs import get_logger

log = get_logger(__name__)


def client_key(address: str) -> str:
    """What a client address is counted under: an IPv6 address by its /64, the smallest network a subscriber is
    given (any host in it may take any of its addresses, so the whole address would let one client count as
    many; a subscriber given a /56 or a /48 still holds many /64s); an IPv4 address, or an IPv4 address written
    as IPv6, whole; anything else as given.

    Some proxies write the client's port into X-Forwarded-For (`203.0.113.7:51234`, `[2001:db8::1]:51234`):
    the port is left out, or each new connection of one client would count as another client."""
    ip = _ip_address(address)
    if ip is None:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# A network shared by several subscribers' /64s counts as this many clients (client_network).
NETWORK_SHARE = 8


def client_network(address: str) -> str | None:
    """The wider network an IPv6 client's /64 is counted in as well: its /56, what an ISP commonly hands one home
    or office (RIPE-690 recommends a /56 or a /48 per end site), whose holder may move through its 256 /64s and
    be a new client to the /64's counter at each; None for IPv4 (one address is one NAT's many users already) and
    for anything that is not an address. The limits allow a /56 NETWORK_SHARE times what they allow one /64."""
    ip = _ip_address(address)
    if ip is None or ip.version != 6 or ip.ipv4_mapped is not None:
        return None
    return str(ipaddress.IPv6Network((ip, 56), strict=False))


# An address with a port: [IPv6]:port, [IPv6], or IPv4:port (a bare IPv6 address has at least two colons).
_WITH_PORT = re.compile(r"\[(?P<v6>[^\]]+)\](?::\d{1,5})?|(?P<v4>[^:]+):\d{1,5}")


def _ip_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ADDRESS names, with or without a port; None if it names none."""
    host = address.strip()
    found = _WITH_PORT.fullmatch(host)
    if found is not None:
        host = found.group("v6") or found.group("v4")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class LimitStore:
    """Moving windows of hits, by keys, in one store (with a memory fallback)."""

    def __init__(self, storage_uri: str):
        # A store that does not answer within a second is taken as down, not waited for.
        timeouts = {"socket_connect_timeout": 1, "socket_timeout": 1} if storage_uri.startswith("redis") else {}
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri, wrap_exceptions=True, **timeouts))
        self._fallback: MovingWindowRateLimiter | None = None

    @staticmethod
    def window(amount: int, seconds: int, namespace: str) -> RateLimitItemPerSecond:
        """AMOUNT hits per SECONDS, counted apart from other namespaces."""
        return RateLimitItemPerSecond(amount, seconds, namespace=namespace)

    def test(self, item, *keys: str) -> bool:
        """Whether one more hit would still be within ITEM for KEYS (nothing is counted)."""
        return self._run("test", item, keys)

    def hit(self, item, *keys: str) -> bool:
        """Count a hit; False (and not counted) when it would go past ITEM."""
        return self._run("hit", item, keys)

    def clear(self, item, *keys: str) -> None:
        """Forget KEYS' hits."""
        self._run("clear", item, keys)

    def retry_after(self, item, *keys: str) -> int:
        """Whole seconds until the window of KEYS lets one more hit through (at least 1)."""
        reset_at = self._run("get_window_stats", item, keys).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _run(self, operation: str, item, keys: tuple[str, ...]):
        try:
            return getattr(self._limiter, operation)(item, *keys)
        except StorageError as error:
            log.warning("rate_limit_store_unreachable", error=str(error.storage_error)[:200],
                        kept="in this process meanwhile")
            if self._fallback is None:
                self._fallback = MovingWindowRateLimiter(MemoryStorage())
            return getattr(self._fallback, operation)(item, *keys)
