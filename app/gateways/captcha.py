"""The CAPTCHA in front of the call token: the providers' widgets, and asking a provider whether a visitor passed.

WEB_CALL_CAPTCHA names the provider (or `none`, a deliberate choice to have
none), WEB_CALL_CAPTCHA_SITE_KEY its widget's public key, and
WEB_CALL_CAPTCHA_SECRET the key its verify URL is asked with. The call page
renders the provider's own widget (its script, and a container the script
fills in, "implicit rendering"), which puts the visitor's answer in a hidden
field of the page's form once they pass; the page sends that answer with the
token request, and the service asks the provider whether it is good.

The three providers share the server side, the "siteverify" exchange: POST
`secret`, `response` and `remoteip` to the verify URL, and the JSON answer's
`success` says. Their widgets differ only in a few names, below, each from
the provider's own documentation:

* Cloudflare Turnstile: developers.cloudflare.com/turnstile/get-started/client-side-rendering
  (a `cf-turnstile` container, the hidden input `cf-turnstile-response`),
  /turnstile/get-started/server-side-validation (siteverify), and
  /turnstile/reference/content-security-policy (script-src and frame-src
  https://challenges.cloudflare.com). A token is good for one siteverify,
  within 300 s (its FAQ).
* hCaptcha: docs.hcaptcha.com (an `h-captcha` container, the field
  `h-captcha-response`, siteverify at api.hcaptcha.com; its CSP section:
  script-src, frame-src, style-src and connect-src of hcaptcha.com and
  *.hcaptcha.com).
* Google reCAPTCHA v2 (the checkbox): developers.google.com/recaptcha/docs/display
  and /verify (a `g-recaptcha` container, the field `g-recaptcha-response`),
  its FAQ's CSP (script-src www.google.com/recaptcha/ and
  www.gstatic.com/recaptcha/, frame-src www.google.com/recaptcha/ and
  recaptcha.google.com/recaptcha/).

Each widget's answer is spent by one verification, so the page resets the
widget (`<object>.reset()`, which all three have) after every token request,
passed or not: a visitor who tries again solves it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from config import Settings

TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Provider:
    """What the call page needs to show one provider's widget, and where its answers are verified."""

    name: str
    script_url: str  # its widget's script, loaded by the page
    container_class: str  # the element the script fills in
    response_field: str  # the hidden field it puts the visitor's answer in
    script_object: str  # the script's global object (its reset())
    verify_url: str  # siteverify
    policy: dict[str, tuple[str, ...]]  # what the page's Content-Security-Policy must allow, by directive


PROVIDERS = {
    "turnstile": Provider(
        "turnstile", "https://challenges.cloudflare.com/turnstile/v0/api.js", "cf-turnstile", "cf-turnstile-response",
        "turnstile", "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        {"script_src": ("https://challenges.cloudflare.com",), "frame_src": ("https://challenges.cloudflare.com",)}),
    "hcaptcha": Provider(
        "hcaptcha", "https://js.hcaptcha.com/1/api.js", "h-captcha", "h-captcha-response", "hcaptcha",
        "https://api.hcaptcha.com/siteverify",
        {directive: ("https://hcaptcha.com", "https://*.hcaptcha.com")
         for directive in ("script_src", "frame_src", "style_src", "connect_src")}),
    "recaptcha": Provider(
        "recaptcha", "https://www.google.com/recaptcha/api.js", "g-recaptcha", "g-recaptcha-response", "grecaptcha",
        "https://www.google.com/recaptcha/api/siteverify",
        {"script_src": ("https://www.google.com/recaptcha/", "https://www.gstatic.com/recaptcha/"),
         "frame_src": ("https://www.google.com/recaptcha/", "https://recaptcha.google.com/recaptcha/")}),
}


def provider(settings: Settings) -> Provider | None:
    """The configured provider, or None (no CAPTCHA: not set, or `none`)."""
    return PROVIDERS.get(settings.web_call_captcha)


def verify_url(settings: Settings) -> str:
    """Where answers are verified: WEB_CALL_CAPTCHA_VERIFY_URL when given, else the provider's siteverify."""
    chosen = provider(settings)
    return settings.web_call_captcha_verify_url or (chosen.verify_url if chosen else "")


@dataclass(frozen=True)
class Verdict:
    """What the provider said of one answer: passed or not, with its error codes; UNREACHABLE names the error
    when it could not be asked (or did not answer 200 with JSON)."""

    passed: bool
    error_codes: tuple[str, ...] = ()
    unreachable: str | None = None


def siteverify(settings: Settings, answer: str, address: str | None) -> Verdict:
    """Ask the provider about ANSWER, from the visitor at ADDRESS (the siteverify exchange)."""
    form = {"secret": settings.web_call_captcha_secret, "response": answer}
    if address:
        form["remoteip"] = address
    try:
        response = requests.post(verify_url(settings), timeout=TIMEOUT_SECONDS, data=form)
        if response.status_code != 200:
            return Verdict(False, unreachable=f"HTTP {response.status_code}")
        body = response.json()
    except (requests.RequestException, ValueError) as error:
        return Verdict(False, unreachable=type(error).__name__)
    if not isinstance(body, dict):
        return Verdict(False, unreachable="an answer that is not a JSON object")
    codes = body.get("error-codes")
    codes = tuple(str(code)[:64] for code in codes)[:5] if isinstance(codes, list) else ()
    return Verdict(body.get("success") is True, codes)


# What the doctor verifies with: no visitor's answer, so the provider can only say whether it knows the secret.
DOCTOR_ANSWER = "switchboard-doctor-check"
SECRET_REFUSED = ("missing-input-secret", "invalid-input-secret")


def secret_check(settings: Settings) -> tuple[bool, str]:
    """Whether the provider can be reached and knows WEB_CALL_CAPTCHA_SECRET, in words: asked about an answer no
    visitor gave, which it refuses either way, its error codes tell a wrong secret from a wrong answer."""
    verdict = siteverify(settings, DOCTOR_ANSWER, None)
    if verdict.unreachable:
        return False, f"its siteverify ({verify_url(settings)}) did not answer ({verdict.unreachable})"
    if any(code in SECRET_REFUSED for code in verdict.error_codes):
        return False, f"it refused WEB_CALL_CAPTCHA_SECRET ({', '.join(verdict.error_codes)})"
    if verdict.passed:
        return False, "it passed an answer no visitor gave (a testing secret passes everyone)"
    return True, "it knows the secret"
