"""Security headers on every response (flask-talisman): no framing, no sniffing, a strict CSP, HSTS over HTTPS.

The pages load only the service's own scripts and styles (no inline ones),
so the Content-Security-Policy is 'self' throughout; the agent console also
talks to the LiveKit server named by LIVEKIT_URL (its WebSocket and HTTPS
origins). HTTPS itself is the proxy's job (docs/deployment.md): nothing is
redirected here, and HSTS is sent on requests that arrived over HTTPS.

A page that needs more names it for its own response (`widen_page_policy`):
the public call page reaches Twilio's Voice SDK servers and may be framed by
the sites of WEB_CALL_ORIGINS; every other page keeps the base policy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, g
from flask_talisman import Talisman

from config import Settings


def livekit_origins(livekit_url: str) -> list[str]:
    """The origins the browser reaches LiveKit on: its ws(s) and http(s) forms."""
    parts = urlsplit(livekit_url or "")
    if not parts.netloc:
        return []
    secure = parts.scheme in ("wss", "https")
    return [f"{'wss' if secure else 'ws'}://{parts.netloc}", f"{'https' if secure else 'http'}://{parts.netloc}"]


def widen_page_policy(**sources: list[str]) -> None:
    """This response's page needs more than the base policy: SOURCES added per directive (`connect_src=[...]`);
    `frame_ancestors` replaces the base's 'none', and X-Frame-Options is then left out (CSP supersedes it)."""
    g.page_policy = {name.replace("_", "-"): list(values) for name, values in sources.items()}


def _policy_text(policy: dict[str, str]) -> str:
    return "; ".join(f"{directive} {sources}" for directive, sources in policy.items())


def init_security_headers(app: Flask) -> None:
    """Send the security headers on every response."""
    settings: Settings = app.config["SETTINGS"]
    policy = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "media-src": "'self' blob: mediastream:",
        "connect-src": " ".join(["'self'", *livekit_origins(settings.livekit_url)]),
        "frame-ancestors": "'none'",
        "form-action": "'self'",
        "base-uri": "'none'",
        "object-src": "'none'",
    }

    # Registered before Talisman's, so it runs after it (Flask runs after-request functions last-in first).
    @app.after_request
    def widened(response: Response) -> Response:
        extra = g.get("page_policy")
        if not extra:
            return response
        page = dict(policy)
        for directive, sources in extra.items():
            base = "" if directive == "frame-ancestors" else page.get(directive, "")
            page[directive] = " ".join(part for part in (base, *sources) if part)
        response.headers["Content-Security-Policy"] = _policy_text(page)
        if "frame-ancestors" in extra:
            response.headers.pop("X-Frame-Options", None)
        return response

    Talisman(
        app,
        force_https=False,
        strict_transport_security=True,
        strict_transport_security_max_age=31536000,
        session_cookie_secure=settings.public_base_url.startswith("https://"),
        frame_options="DENY",
        referrer_policy="same-origin",
        content_security_policy=policy,
        permissions_policy={"microphone": "(self)", "camera": "()", "geolocation": "()"},
    )
