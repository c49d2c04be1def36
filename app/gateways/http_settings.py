"""requests' settings from the environment (proxies, CA bundle), read once per origin instead of per request.

A requests Session with `trust_env` (the default) asks the environment
again for every request it sends (`Session.merge_environment_settings`):
urllib's `getproxies()` goes through every variable of `os.environ` twice
and NO_PROXY is parsed for the request's host. That was about a quarter
of the thread CPU of one REST call to Twilio (docs/performance.md), and
the steps that ring someone make one or two. The process's environment
does not change while it runs, so what it says for a scheme and host (and
the request's own proxies, stream, verify and cert) is kept and handed
out again as a copy. The session's own `proxies`, `verify` and `cert` are
read with the first request to an origin: set them before it, not after.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests


def environment_read_once(session: requests.Session) -> requests.Session:
    """SESSION, reading the environment's settings once per origin (scheme, host and port); the same session."""
    read = session.merge_environment_settings
    kept: dict[tuple, dict[str, Any]] = {}

    def merge_environment_settings(url, proxies, stream, verify, cert):
        if not session.trust_env:
            return read(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        own = frozenset((proxies or {}).items())
        key = (parts.scheme, parts.netloc, own, stream, verify, cert)
        settings = kept.get(key)
        if settings is None:
            # requests adds the environment's proxies into the dict it is given: twilio-python gives its own,
            # long-lived one, so it gets a copy. Two threads may both read at first; they read the same thing.
            settings = kept[key] = read(url, dict(own), stream, verify, cert)
        return {**settings, "proxies": dict(settings["proxies"])}

    session.merge_environment_settings = merge_environment_settings  # type: ignore[method-assign]
    return session
