"""A loopback stand-in for a CAPTCHA provider: its siteverify endpoint, and a widget script for the call page.

What it models, from Cloudflare Turnstile's documentation (the rules
hCaptcha's and reCAPTCHA's siteverify share, app/gateways/captcha.py):

* siteverify (developers.cloudflare.com/turnstile/get-started/server-side-validation):
  a form POST of `secret`, `response` and optionally `remoteip`, answered
  with JSON `{"success": …, "error-codes": […], "challenge_ts": …,
  "hostname": …}`; the error codes `missing-input-secret`,
  `invalid-input-secret`, `missing-input-response`,
  `invalid-input-response` and `timeout-or-duplicate`.
* A token is good for one siteverify, and for 300 seconds after it was
  issued (Turnstile's FAQ: "Can a Turnstile token be used twice?", "How
  long is a Turnstile token valid").
* The widget, rendered implicitly: the provider's script finds the
  container (`cf-turnstile`, `h-captcha`, `g-recaptcha`) and, once the
  visitor passes, puts the token in a hidden field of the enclosing form
  (`cf-turnstile-response`, …); its global object's `reset()` takes the
  answer back and asks again (the client-side rendering page).

What it does not model, a guess marked as one: the real widget runs its
challenge in a frame from the provider's origin and gets its token from the
provider's servers; this one shows a button, "I am human", and hands out,
one per press, tokens this stand-in issued when the script was served. A
test routes the provider's real script URL to `widget_script`, so the page
loads it from the address it names, under its own Content-Security-Policy.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl

from app.gateways.captcha import Provider
from app.sandbox.loopback import LoopbackServing

TOKEN_SECONDS = 300
HOSTNAME = "127.0.0.1"

# The widget, for one provider: %(container)s, %(field)s, %(object)s and %(tokens)s filled in by widget_script.
WIDGET = """(function () {
  "use strict";
  var tokens = %(tokens)s;
  var widgets = [];
  function render(container) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "captcha-stand-in";
    button.textContent = "I am human";
    var answer = document.createElement("input");
    answer.type = "hidden";
    answer.name = %(field)s;
    button.addEventListener("click", function () {
      answer.value = tokens.shift() || "";
      button.textContent = "Passed";
      button.disabled = true;
    });
    container.appendChild(button);
    container.appendChild(answer);
    widgets.push({ button: button, answer: answer });
  }
  window[%(object)s] = {
    reset: function () {
      widgets.forEach(function (widget) {
        widget.answer.value = "";
        widget.button.textContent = "I am human";
        widget.button.disabled = false;
      });
    },
    getResponse: function () { return widgets.length ? widgets[0].answer.value : ""; }
  };
  function start() {
    Array.prototype.forEach.call(document.getElementsByClassName(%(container)s), render);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
"""


class CaptchaStandIn:
    """The provider on loopback: `verify_url` for WEB_CALL_CAPTCHA_VERIFY_URL, `secret` for its secret."""

    def __init__(self, secret: str = "captcha-stand-in-secret", now: Callable[[], float] = time.monotonic) -> None:
        self.secret = secret
        self._now = now
        self._issued: dict[str, float] = {}  # token -> when it was issued; gone once spent
        self._lock = threading.Lock()
        self.verified: list[dict] = []  # every siteverify request's form, as received
        self._serving = LoopbackServing("captcha-stand-in")

    @property
    def verify_url(self) -> str:
        return self._serving.address + "/siteverify"

    def issue(self) -> str:
        """A token, as the provider hands one to a visitor who passed its challenge."""
        token = "stand-in." + secrets.token_urlsafe(24)
        with self._lock:
            self._issued[token] = self._now()
        return token

    def widget_script(self, provider: Provider, tokens: int = 3) -> str:
        """PROVIDER's widget script as this stand-in serves it: TOKENS answers, one per press of its button."""
        return WIDGET % {"tokens": json.dumps([self.issue() for _ in range(tokens)]),
                         "field": json.dumps(provider.response_field), "object": json.dumps(provider.script_object),
                         "container": json.dumps(provider.container_class)}

    def siteverify(self, form: dict[str, str]) -> dict:
        """The answer to one siteverify request."""
        self.verified.append(dict(form))
        secret, token = form.get("secret", ""), form.get("response", "")
        errors = []
        if not secret:
            errors.append("missing-input-secret")
        elif secret != self.secret:
            errors.append("invalid-input-secret")
        if not token:
            errors.append("missing-input-response")
        if errors:
            return {"success": False, "error-codes": errors}
        with self._lock:
            issued = self._issued.pop(token, None)  # spent by this request, whatever it answers
        if issued is None:
            # Spent, or never issued: one of this stand-in's own shape was issued once (timeout-or-duplicate), any
            # other is not a token at all (invalid-input-response). How the real provider tells them apart is a guess.
            known = token.startswith("stand-in.")
            return {"success": False, "error-codes": ["timeout-or-duplicate" if known else "invalid-input-response"]}
        if self._now() - issued > TOKEN_SECONDS:
            return {"success": False, "error-codes": ["timeout-or-duplicate"]}
        return {"success": True, "error-codes": [], "hostname": HOSTNAME,
                "challenge_ts": datetime.fromtimestamp(time.time(), timezone.utc).isoformat()}

    def start(self) -> "CaptchaStandIn":
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                if self.path != "/siteverify":
                    self.send_error(404)
                    return
                body = json.dumps(stand_in.siteverify(form)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._serving.start(ThreadingHTTPServer((HOSTNAME, 0), Handler))
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> "CaptchaStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
