"""What stands in front of the public token endpoint, which nobody signs in to reach.

A page on another site cannot read this service's CSRF token, so a CSRF
token cannot tell a visitor's own click from a script of another site; two
checks take its place:

* the origin: a browser always sends `Origin` with a cross-site or scripted
  POST and no page can set it, so only the service's own address and the
  sites of WEB_CALL_ORIGINS get a token (403 otherwise, and CORS headers
  only ever name an origin on the list). A request without `Origin` is no
  browser's page and is refused too. This keeps other sites' pages from
  giving their visitors calls at the centre's expense; a script outside any
  browser can send any `Origin`, and is held back by:
* the rate limit: WEB_CALL_TOKENS_PER_ADDRESS tokens per client address
  (an IPv6 one by its /64, and eight times as many per /56)
  within WEB_CALL_TOKEN_WINDOW_SECONDS (a moving window in the store of
  RATELIMIT_STORAGE_URI, shared by every worker when that is Redis); past
  it, 429 with Retry-After;
* a CAPTCHA (WEB_CALL_CAPTCHA: Turnstile, hCaptcha or reCAPTCHA, whose
  widget the page shows; gateways/captcha.py), which production asks for
  whenever web calls are on (or for `none`, said outright).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from app.auth.limit_store import NETWORK_SHARE, LimitStore, client_key, client_network
from app.gateways import captcha
from app.logs import get_logger
from config import Settings

log = get_logger(__name__)
NAMESPACE = "switchboard-web-call"


def own_origin(settings: Settings) -> str:
    """The service's own origin, from PUBLIC_BASE_URL (its pages may always ask for a token)."""
    parts = urlsplit(settings.public_base_url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def allowed_origin(settings: Settings, origin: str | None) -> bool:
    """Whether a browser page at ORIGIN may ask for a token."""
    origin = (origin or "").strip().lower().rstrip("/")
    return bool(origin) and (origin == own_origin(settings) or origin in settings.web_call_origins)


class TokenLimit:
    """Tokens handed to one client address, over a moving window."""

    def __init__(self, storage_uri: str, per_address: int, window_seconds: int):
        self._store = LimitStore(storage_uri)
        self._item = LimitStore.window(per_address, window_seconds, NAMESPACE)
        self._network = LimitStore.window(per_address * NETWORK_SHARE, window_seconds, NAMESPACE)

    def take(self, address: str) -> int | None:
        """Count a token for ADDRESS (an IPv6 one by its /64, and by its /56 with a wider allowance); None when it
        may have one, else the seconds until it may."""
        # Each counter is tested and counted in one step (no two requests both pass its last place); a token the
        # network's counter refuses has still counted against the address's.
        counters = [(self._item, ("address", client_key(address)))]
        network = client_network(address)
        if network is not None:
            counters.append((self._network, ("network", network)))
        for item, keys in counters:
            if not self._store.hit(item, *keys):
                return self._store.retry_after(item, *keys)
        return None


def captcha_passed(settings: Settings, answer: str, address: str) -> bool:
    """Whether the CAPTCHA's provider accepts ANSWER from the visitor at ADDRESS (True when there is none)."""
    if captcha.provider(settings) is None:
        return True
    if not answer:
        return False
    verdict = captcha.siteverify(settings, answer, address)
    if verdict.unreachable:
        # A provider that cannot answer lets nobody through: the page says to try again.
        log.warning("web_call_captcha_unreachable", error=verdict.unreachable)
    elif not verdict.passed:
        # The provider's own words for why (a spent or expired answer, a wrong secret), never the answer itself.
        log.info("web_call_captcha_refused", error_codes=list(verdict.error_codes))
    return verdict.passed
