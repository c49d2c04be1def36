"""The Twilio stand-in's browser callers: TwiML Apps, API keys, and a Voice SDK client's call.

Twilio's Voice JavaScript SDK does not dial a number: "When you initiate a
call using Twilio.Device, you don't dial another phone directly. Instead,
you connect to Twilio and instruct Twilio to fetch TwiML from your server
to handle the call. Twilio processes the resulting TwiML in the same way
that it processes voice traffic from a physical phone"
(twilio.com/docs/voice/sdks/javascript, "How the Voice JavaScript SDK
works"). The server it asks is the Voice URL of the TwiML App named in the
access token's voice grant (REST API: Applications,
twilio.com/docs/usage/api/applications). `Device.connect({params})` sends
`params`, "a flat object containing key:value pairs to be sent to the TwiML
app" (twilio.github.io/twilio-voice.js, ConnectOptions).

What the stand-in does, from those pages:

* `client_call(token, params)` checks the access token as Twilio would:
  an HS256 JWT (twilio.com/docs/iam/access-tokens: `iss` the API key SID,
  `sub` the account SID, `grants.identity`, `grants.voice.outgoing.
  application_sid`, `nbf`, `exp`) signed with that API key's secret. A token
  with a wrong signature, unknown key, other account, no voice grant, an
  unknown app, or outside `nbf`..`exp` is refused (`AccessTokenRefused`, with
  Twilio's 20101 "Invalid Access Token" or 20104 "Access Token expired"),
  and no webhook is sent;
* a token that passes makes an inbound call whose first request goes to the
  App's Voice URL with `From` and `Caller` `client:<identity>`, `To` and
  `Called` the `To` param or empty, `Direction=inbound`, and the custom
  params alongside; its status callbacks go to the App's StatusCallback;
* the REST resources provisioning uses: Applications (list by
  FriendlyName, create, fetch, update) and Keys (`new_keys.create`, whose
  answer alone holds the secret, and fetch, which never does:
  twilio.com/docs/iam/api-keys/key-resource).

Guesses: Twilio's docs do not list, for a client call, whether `To` is
sent empty or left out when no `To` param is given (sent empty here); the
clock skew Twilio allows on `nbf`/`exp` (none here); the App's
VoiceFallbackUrl is not asked when the Voice URL fails (the number's is,
for phone calls; a client call has none here). Not modelled: WebRTC media,
the SDK's own signalling, regions and edges.
"""

from __future__ import annotations

from typing import Optional

import jwt

from app.sandbox.twilio_calls import API_VERSION, SimCall, TwimlError, _rfc2822, _sid


class AccessTokenRefused(TwimlError):
    """Twilio refused a Voice SDK client's access token (the Device's `error` event)."""

    def __init__(self, code: int, message: str):
        super().__init__(f"access token refused ({code}): {message}")
        self.code = code


class BrowserClients:
    """TwiML Apps, API keys and the calls of browser clients, for TwilioNetwork."""

    def add_api_key(self, friendly_name: str = "switchboard-web-callers") -> tuple[str, str]:
        """Give the account an API key; return (sid, secret)."""
        sid, secret = _sid("SK"), _sid("")
        with self._state:
            self.api_keys[sid] = {"sid": sid, "friendly_name": friendly_name, "secret": secret,
                                  "date_created": self.clock.now()}
        return sid, secret

    def add_application(self, friendly_name: str, voice_url: str, status_callback: str = "",
                        voice_fallback_url: str = "") -> str:
        """Give the account a TwiML App; return its SID."""
        sid = _sid("AP")
        with self._state:
            self.applications[sid] = {"sid": sid, "friendly_name": friendly_name, "voice_url": voice_url,
                                      "voice_method": "POST", "status_callback": status_callback,
                                      "status_callback_method": "POST", "voice_fallback_url": voice_fallback_url,
                                      "voice_fallback_method": "POST", "date_created": self.clock.now()}
        return sid

    def verified_client(self, token: str) -> tuple[str, dict]:
        """The identity and TwiML App a Voice SDK access token lets call, or AccessTokenRefused."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AccessTokenRefused(20101, "Invalid Access Token: not a JWT") from None
        key = self.api_keys.get(str(unverified.get("iss", "")))
        if key is None:
            raise AccessTokenRefused(20101, "Invalid Access Token: unknown API key")
        try:
            claims = jwt.decode(token, key["secret"], algorithms=["HS256"],
                                options={"verify_exp": False, "verify_nbf": False})
        except jwt.PyJWTError:
            raise AccessTokenRefused(20101, "Invalid Access Token: bad signature") from None
        now = self.clock.now().timestamp()
        if claims.get("sub") != self.account_sid:
            raise AccessTokenRefused(20101, "Invalid Access Token: another account")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise AccessTokenRefused(20104, "Access Token expired or expiration date invalid")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now:
            raise AccessTokenRefused(20101, "Invalid Access Token: not valid yet")
        grants = claims.get("grants") or {}
        identity = grants.get("identity")
        app_sid = ((grants.get("voice") or {}).get("outgoing") or {}).get("application_sid")
        if not identity or not app_sid:
            raise AccessTokenRefused(20101, "Invalid Access Token: no identity or voice grant")
        app = self.applications.get(app_sid)
        if app is None:
            raise AccessTokenRefused(20101, "Invalid Access Token: no such TwiML App")
        return identity, app

    def client_call(self, token: str, params: Optional[dict] = None) -> SimCall:
        """A browser's `device.connect({params})`: Twilio checks the token, then asks the App's Voice URL."""
        identity, app = self.verified_client(token)
        params = {str(name): str(value) for name, value in (params or {}).items()}
        caller = f"client:{identity}"
        call = SimCall(self, _sid("CA"), caller, params.get("To", ""), "inbound", "ringing", url=app["voice_url"],
                       status_callback=app["status_callback"] or None)
        custom = {name: value for name, value in params.items() if name != "To"}
        with self._state:
            self.calls[call.sid] = call
        self._drive(lambda: self._fetch(call, app["voice_url"], custom, answering=True))
        return call

    def _client_route(self, route: str, method: str, path: str, form, query) -> Optional[tuple[int, dict]]:
        """Applications and Keys; None for any other route."""
        from app.sandbox.twilio_rest import _error

        if route == "Applications.json" and method == "GET":
            wanted = query.get("FriendlyName")
            found = [self._application_resource(a) for a in self.applications.values()
                     if wanted is None or a["friendly_name"] == wanted]
            return 200, {"applications": found, "page": 0, "page_size": 50, "start": 0,
                         "end": max(len(found) - 1, 0), "uri": path, "first_page_uri": path,
                         "next_page_uri": None, "previous_page_uri": None}
        if route == "Applications.json" and method == "POST":
            sid = self.add_application(form.get("FriendlyName", ""), form.get("VoiceUrl", ""))
            self._update_application(self.applications[sid], form)
            return 201, self._application_resource(self.applications[sid])
        if route.startswith("Applications/") and route.endswith(".json"):
            app = self.applications.get(route[len("Applications/"):-len(".json")])
            if app is None:
                return _error(404, 20404, f"The requested resource {path} was not found")
            if method == "POST":
                self._update_application(app, form)
            return 200, self._application_resource(app)
        if route == "Keys.json" and method == "POST":
            sid, secret = self.add_api_key(form.get("FriendlyName", ""))
            return 201, {**self._key_resource(self.api_keys[sid]), "secret": secret}
        if route.startswith("Keys/") and route.endswith(".json") and method == "GET":
            key = self.api_keys.get(route[len("Keys/"):-len(".json")])
            if key is None:
                return _error(404, 20404, f"The requested resource {path} was not found")
            return 200, self._key_resource(key)
        return None

    def _update_application(self, app: dict, form) -> None:
        names = {"FriendlyName": "friendly_name", "VoiceUrl": "voice_url", "VoiceMethod": "voice_method",
                 "StatusCallback": "status_callback", "StatusCallbackMethod": "status_callback_method",
                 "VoiceFallbackUrl": "voice_fallback_url", "VoiceFallbackMethod": "voice_fallback_method"}
        for param, key in names.items():
            if param in form:
                app[key] = form[param]

    def _application_resource(self, app: dict) -> dict:
        return {**{k: v for k, v in app.items() if k != "date_created"}, "account_sid": self.account_sid,
                "api_version": API_VERSION, "date_created": _rfc2822(app["date_created"]),
                "date_updated": _rfc2822(app["date_created"]),
                "uri": self._path(f"Applications/{app['sid']}.json")}

    def _key_resource(self, key: dict) -> dict:
        # The secret is in the create's answer only.
        return {"sid": key["sid"], "friendly_name": key["friendly_name"],
                "date_created": _rfc2822(key["date_created"]), "date_updated": _rfc2822(key["date_created"])}
