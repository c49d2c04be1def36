"""Security headers on every response: no framing, no sniffing, a strict CSP, HSTS over HTTPS.

The pages load only the service's own scripts and styles (no inline ones),
so the Content-Security-Policy is 'self' throughout; the agent console also
talks to the LiveKit server named by LIVEKIT_URL (its WebSocket and HTTPS
origins). HTTPS itself is the proxy's job (docs/deployment.md): nothing is
redirected here, and HSTS is sent on requests that arrived over HTTPS.

A page that needs more names it for its own response (`widen_page_policy`):
the public call page reaches Twilio's Voice SDK servers and may be framed by
the sites of WEB_CALL_ORIGINS; every other page keeps the base policy.

The headers are the same on every response but those: they are written out
once, at start-up. (flask-talisman, which set them before, rebuilt them on
every response, a twentieth of a webhook's CPU: issue 23.)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, g, request

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


HSTS = "max-age=31536000; includeSubDomains"  # a year; subdomains too


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
    every_response = {
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        "Content-Security-Policy": _policy_text(policy),
    }

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        for name, value in every_response.items():
            headers[name] = value
        if request.is_secure or request.headers.get("X-Forwarded-Proto") == "https":
            headers["Strict-Transport-Security"] = HSTS
        extra = g.get("page_policy")
        if extra:
            page = dict(policy)
            for directive, sources in extra.items():
                base = "" if directive == "frame-ancestors" else page.get(directive, "")
                page[directive] = " ".join(part for part in (base, *sources) if part)
            headers["Content-Security-Policy"] = _policy_text(page)
            if "frame-ancestors" in extra:
                headers.pop("X-Frame-Options", None)
        return response
