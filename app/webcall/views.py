"""The public call button: a page anyone may open, the snippet that embeds it, and the token its browser
calls with. No sign-in: what guards the token is in guards.py (origin, rate limit, CAPTCHA)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from app.calls import web_callers
from app.gateways import captcha
from app.logs import get_logger
from app.web.security_headers import widen_page_policy
from app.web.unit_of_work import request_session
from app.webcall.guards import TokenLimit, allowed_origin, captcha_passed, own_origin
from app.webcall.token import voice_token

blueprint = Blueprint("webcall", __name__)
log = get_logger(__name__)

# What a visitor may send: longer is refused in words (what is stored is cut shorter still, once cleaned).
MAX_FIELD = 2000
# The Voice SDK talks to Twilio's signalling and Insights servers over wss and https, and plays its own
# sounds (ringing, keys) from Twilio's SDK host.
TWILIO_CONNECT = ["wss://*.twilio.com", "https://*.twilio.com"]
TWILIO_MEDIA = ["https://sdk.twilio.com"]


def _settings():
    return current_app.config["SETTINGS"]


def _limit() -> TokenLimit:
    limit = current_app.extensions.get("web_call_limit")
    if limit is None:
        settings = _settings()
        limit = current_app.extensions["web_call_limit"] = TokenLimit(
            settings.ratelimit_storage_uri, settings.web_call_tokens_per_address,
            settings.web_call_token_window_seconds)
    return limit


@blueprint.get("/call")
def call_page():
    """The call button: name and reason (optional), Call, the keypad and Hang up."""
    settings = _settings()
    missing = settings.web_call_missing()
    widget = captcha.provider(settings)
    # The CAPTCHA provider's widget (its script, and the frame it runs its challenge in) on this page only.
    policy = {directive: list(sources) for directive, sources in (widget.policy if widget else {}).items()}
    policy["connect_src"] = [*TWILIO_CONNECT, *policy.get("connect_src", ())]
    widen_page_policy(**policy, media_src=TWILIO_MEDIA, frame_ancestors=["'self'", *settings.web_call_origins])
    if missing:
        log.warning("web_calls_off", missing=missing)
    return render_template("webcall/call.html", missing=missing, captcha=widget,
                           captcha_site_key=settings.web_call_captcha_site_key,
                           max_name=web_callers.MAX_NAME, max_reason=web_callers.MAX_REASON), 503 if missing else 200


@blueprint.get("/call/embed.js")
def embed_script():
    """The snippet a website adds: it puts the call page in an iframe that may use the microphone."""
    script = render_template("webcall/embed.js", page=f"{own_origin(_settings())}/call")
    return Response(script, mimetype="text/javascript", headers={"Cache-Control": "public, max-age=300"})


def _cors(response: Response, origin: str) -> Response:
    # Only an origin on the list is ever named; the service's own pages need no CORS.
    response.headers["Vary"] = "Origin"
    if origin and origin != own_origin(_settings()):
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def _refused(status: int, words: str, origin: str = "", **headers) -> Response:
    response = jsonify(error=words)
    response.status_code = status
    response.headers.update(headers)
    return _cors(response, origin) if origin else response


@blueprint.route("/call/token", methods=["OPTIONS"])
def token_preflight():
    """CORS preflight of a site on WEB_CALL_ORIGINS (a JSON POST from another origin asks first)."""
    origin = request.headers.get("Origin", "")
    if not allowed_origin(_settings(), origin):
        return _refused(403, "this site may not ask for a call token")
    response = _cors(Response(status=204), origin)
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@blueprint.post("/call/token")
def token():
    """A token for one call from the browser, as a new visitor: {"token", "identity", "expires_in"}."""
    settings = _settings()
    origin = request.headers.get("Origin", "").strip().lower().rstrip("/")
    if not allowed_origin(settings, origin):
        log.warning("web_call_origin_refused", origin=origin[:200] or None)
        return _refused(403, "this site may not ask for a call token")
    missing = settings.web_call_missing()
    if missing:
        return _refused(503, "calling from the website is not set up: " + ", ".join(missing) + " missing", origin)
    address = request.remote_addr or "unknown"
    wait = _limit().take(address)
    if wait is not None:
        log.warning("web_call_token_limited", retry_after_seconds=wait)
        return _refused(429, f"too many calls from your address; try again in {wait} seconds", origin,
                        **{"Retry-After": str(wait)})
    fields = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(fields, dict) and not hasattr(fields, "get"):
        return _refused(400, "send a JSON object or a form", origin)
    values = {name: fields.get(name) or "" for name in ("name", "reason", "captcha")}
    if any(not isinstance(value, str) for value in values.values()):
        return _refused(400, "name, reason and captcha must be text", origin)
    if any(len(value) > MAX_FIELD for value in values.values()):
        return _refused(400, f"name, reason and captcha may be at most {MAX_FIELD} characters", origin)
    if not captcha_passed(settings, values["captcha"], address):
        return _refused(403, "the CAPTCHA was not passed; please try again", origin)
    visitor = web_callers.new_visitor(request_session(), values["name"], values["reason"])
    # The identity is no secret (it names the call); the token is, and is never logged.
    log.info("web_call_token_issued", identity=visitor.identity)
    response = jsonify(token=voice_token(settings, visitor.identity), identity=visitor.identity,
                       expires_in=settings.web_call_token_ttl_seconds)
    response.headers["Cache-Control"] = "no-store"
    return _cors(response, origin)
