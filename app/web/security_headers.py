"""Security headers on every response (flask-talisman): no framing, no sniffing, a strict CSP, HSTS over HTTPS.

The pages load only the service's own scripts and styles (no inline ones),
so the Content-Security-Policy is 'self' throughout; the agent console also
talks to the LiveKit server named by LIVEKIT_URL (its WebSocket and HTTPS
origins). HTTPS itself is the proxy's job (docs/deployment.md): nothing is
redirected here, and HSTS is sent on requests that arrived over HTTPS.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from flask_talisman import Talisman

from config import Settings


def livekit_origins(livekit_url: str) -> list[str]:
    """The origins the browser reaches LiveKit on: its ws(s) and http(s) forms."""
    parts = urlsplit(livekit_url or "")
    if not parts.netloc:
        return []
    secure = parts.scheme in ("wss", "https")
    return [f"{'wss' if secure else 'ws'}://{parts.netloc}", f"{'https' if secure else 'http'}://{parts.netloc}"]


def init_security_headers(app: Flask) -> None:
    """Send the security headers on every response."""
    settings: Settings = app.config["SETTINGS"]
    Talisman(
        app,
        force_https=False,
        strict_transport_security=True,
        strict_transport_security_max_age=31536000,
        session_cookie_secure=settings.public_base_url.startswith("https://"),
        frame_options="DENY",
        referrer_policy="same-origin",
        content_security_policy={
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
        },
        permissions_policy={"microphone": "(self)", "camera": "()", "geolocation": "()"},
    )
