"""Switchboard's configuration: read from the environment once, typed, validated.

`load_settings()` is the only place that reads the process environment. In
development a `.env` file beside this one is read too (the real environment
wins); in production it is ignored. Every problem is collected and reported at
once, naming each variable, so an operator fixes them in one go.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent
INSTANCE_DIR = PROJECT_ROOT / "instance"
DEFAULT_DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'switchboard.db'}"
# Twilio's own public hold music, served from Twilio's sound bucket.

LLM_PROVIDERS = ("none", "openai", "groq", "openrouter")
APP_ENVS = ("development", "production", "test")
# WEB_CALL_CAPTCHA: a provider whose widget the call page shows (app/gateways/captcha.py), or none, said outright.
WEB_CALL_CAPTCHAS = ("turnstile", "hcaptcha", "recaptcha", "none")


class ConfigError(Exception):
    """Raised at start-up when settings are missing or malformed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Settings:
    """Everything the service is told by its environment."""

    app_env: str = "development"
    debug: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""
    database_url: str = DEFAULT_DATABASE_URL
    public_base_url: str = "http://localhost:8000"
    trusted_proxy_hops: int = 0
    # A request body larger than this is answered 413 before anything reads it (app/web/request_size.py).
    max_request_bytes: int = 1_048_576
    log_format: str = "console"
    log_level: str = "INFO"

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_previous_auth_token: str = ""
    twilio_phone_number: str = ""
    twilio_api_base_url: str = ""
    twilio_timeout_seconds: float = 5.0
    # Calling from the website (docs/web-callers.md): the API key that signs the browsers' access tokens, the
    # TwiML App their calls reach, the sites allowed to ask for a token or embed the page; all unset: off.
    twilio_api_key_sid: str = ""
    twilio_api_key_secret: str = ""
    twilio_twiml_app_sid: str = ""
    web_call_origins: tuple[str, ...] = ()
    # Tokens one address may take within the window, and how long a token lets its browser connect.
    web_call_tokens_per_address: int = 5
    web_call_token_window_seconds: int = 600
    web_call_token_ttl_seconds: int = 300
    # The CAPTCHA in front of a call token (app/gateways/captcha.py): its provider (or "none"), its widget's site key,
    # the secret its answers are verified with, and where (the provider's siteverify unless given).
    web_call_captcha: str = ""
    web_call_captcha_site_key: str = ""
    web_call_captcha_secret: str = ""
    web_call_captcha_verify_url: str = ""

    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: str = ""
    livekit_sip_host: str = ""
    livekit_sip_username: str = ""
    livekit_sip_password: str = ""
    livekit_room_prefix: str = "call"
    livekit_timeout_seconds: float = 5.0
    livekit_allowed_addresses: tuple[str, ...] = ()

    llm_provider: str = "none"
    llm_model: str = ""
    llm_base_url: str = ""
    llm_timeout_seconds: float = 8.0
    openai_api_key: str = ""
    groq_api_key: str = ""
    openrouter_api_key: str = ""
    summary_deadline_seconds: float = 6.0
    # How long one attempt at sending an event to a subscriber waits for its answer (README, "Event webhooks").
    event_webhook_timeout_seconds: float = 10.0

    say_voice: str = "Polly.Joanna"
    say_language: str = "en-US"
    # Empty: the service's own 24-second clip, PUBLIC_BASE_URL/static/audio/hold.wav?v=<its hash>. A replacement
    # should last 20 to 30 s (the hold loop looks at the call each time it ends) and carry a Cache-Control max-age.
    hold_music_url: str = ""
    agent_ring_timeout_seconds: int = 20
    transfer_ring_timeout_seconds: int = 25
    # Outside transfers: E.164 prefixes ("+44") and SIP hosts or domains they may call; none: they are off.
    outside_transfer_allow: tuple[str, ...] = ()
    # The caller ID an outside party sees: "ours" (the number the caller dialled).
    outside_transfer_caller_id: str = "ours"
    # Outbound calls (an agent dialling a customer, a callback): the E.164 prefixes they may call; none: they are off.
    outbound_call_allow: tuple[str, ...] = ()
    # How long an outbound call rings the customer before it is unanswered.
    outbound_ring_timeout_seconds: int = 30
    # A callback rings its customer at most this many times, this long apart, before it is marked failed.
    callback_attempts: int = 3
    callback_retry_seconds: int = 300
    # A caller cut off who calls again from the same number within this long goes back to their agent, or to
    # their place in line, without the IVR (0: off).
    resume_window_seconds: int = 120
    # Only a caller whose carrier vouched for their number (STIR/SHAKEN attestation A) goes back where they were:
    # a caller ID is easy to fake, and a resumed caller reaches their agent with their context.
    resume_requires_attestation: bool = False
    # A browser agent who took a call is given this long to join its LiveKit room; then the call goes to the
    # next agent (their media never connected, and no LiveKit release reported it).
    browser_join_seconds: int = 20
    # How long a webhook may spend on Twilio and LiveKit before it answers (Twilio waits 15 s); what is left
    # then is carried out after the answer.
    webhook_budget_seconds: float = 10.0
    max_queue_wait_seconds: int = 120
    # The time zone of the queues' business hours, for a queue that names none (an IANA name).
    centre_timezone: str = "UTC"
    # After a call they talked on, an agent is in after-call work (wrap-up) this long before the next offer (0: off).
    wrap_up_seconds: int = 0
    # The disposition codes an agent picks from when their after-call work is done.
    disposition_codes: tuple[str, ...] = ("resolved", "follow-up", "escalated", "other")
    # A queued caller hears their place (and the queue's recent wait) when queued, then every this often (0: never).
    queue_announce_seconds: int = 60
    # The service level counts the calls answered within this many seconds of joining a queue (app/calls/figures.py).
    service_level_seconds: int = 20
    missed_calls_before_away: int = 3
    ivr_max_attempts: int = 2
    room_empty_timeout_seconds: int = 1800
    # How often the reconciler job asks Twilio about live calls (0: only `flask calls reconcile`).
    reconcile_interval_seconds: int = 60
    # How long one reconciler pass may ask Twilio and fix legs before it leaves the rest to the next pass
    # (less than the interval; when not set, 30 s or half the interval, whichever is shorter).
    reconcile_pass_seconds: float = 30.0
    # Whether each service process also works jobs (true), or only separate `flask jobs work` processes do.
    jobs_in_process: bool = True
    # How many jobs one worker runs at once.
    job_concurrency: int = 2
    # A job whose worker has not beaten its heart for this long is queued again (its worker died).
    job_stalled_after_seconds: int = 30
    # "on" (every call), "off", or the names of the queues whose calls are transcribed.
    transcription: tuple[str, ...] = ("on",)
    # How long the caller's transcription stays stopped once a card number starts to be read.
    transcription_card_pause_seconds: int = 60

    web_concurrency: int = 2
    web_threads: int = 4

    # Live pages (docs/live-pages.md): the path prefix the pages open their streams under, routed by the reverse
    # proxy to the live process (`flask live`); empty: each web worker serves its own streams, as on SQLite.
    live_stream_base: str = ""
    live_host: str = "127.0.0.1"
    live_port: int = 8001
    # The most live pages one live process follows at once; past that a page is answered 503 and polls.
    live_max_pages: int = 2000
    # The board lists this many live calls, the longest-running first, and counts the rest (supervisor/board.py).
    board_calls_shown: int = 100

    supervisor_username: str = ""
    supervisor_password: str = ""
    ratelimit_storage_uri: str = "memory://"
    # Failed sign-ins counted over LOGIN_FAILURE_WINDOW_SECONDS: from one address (whoever they try), and for one
    # user from one address (app/auth/sign_in_limit.py). Successes never count.
    login_failures_per_address: int = 20
    login_failures_per_user: int = 5
    login_failure_window_seconds: int = 300
    # A login session unused this long is ended (0: only by signing out or a password change).
    login_idle_hours: int = 12

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def transcribes_every_call(self) -> bool:
        """Whether real-time transcription starts with the greeting, for every call."""
        return self.transcription == ("on",)

    def transcribes_queue(self, queue_name: str | None) -> bool:
        """Whether calls to this queue are transcribed."""
        if self.transcription == ("off",):
            return False
        return self.transcribes_every_call or (queue_name is not None and queue_name.lower() in self.transcription)

    @property
    def outside_transfers_enabled(self) -> bool:
        """Whether the allow-list names anywhere an outside transfer may call."""
        return bool(self.outside_transfer_allow)

    @property
    def outside_transfer_prefixes(self) -> tuple[str, ...]:
        """The E.164 prefixes of the allow-list."""
        return tuple(entry for entry in self.outside_transfer_allow if entry.startswith("+"))

    @property
    def outside_transfer_sip_domains(self) -> tuple[str, ...]:
        """The SIP hosts and domains of the allow-list."""
        return tuple(entry for entry in self.outside_transfer_allow if not entry.startswith("+"))

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    def web_call_missing(self) -> list[str]:
        """The settings calling from the website still needs (none: it is on)."""
        needed = {"TWILIO_ACCOUNT_SID": self.twilio_account_sid, "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
                  "TWILIO_API_KEY_SID": self.twilio_api_key_sid, "TWILIO_API_KEY_SECRET": self.twilio_api_key_secret,
                  "TWILIO_TWIML_APP_SID": self.twilio_twiml_app_sid}
        if self.production:
            # A public page that places calls at the centre's expense: production has a CAPTCHA in front of it,
            # or says outright that it has none (WEB_CALL_CAPTCHA=none).
            needed["WEB_CALL_CAPTCHA"] = self.web_call_captcha
        return [name for name, value in needed.items() if not value]

    @property
    def web_calls_wanted(self) -> bool:
        """Whether any setting of calling from the website is given (provisioning and the doctor then look)."""
        return bool(self.twilio_api_key_sid or self.twilio_twiml_app_sid or self.web_call_origins)

    @property
    def livekit_configured(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)

    @property
    def sip_configured(self) -> bool:
        return bool(self.livekit_sip_host)

    @property
    def llm_api_key(self) -> str:
        return {
            "openai": self.openai_api_key,
            "groq": self.groq_api_key,
            "openrouter": self.openrouter_api_key,
        }.get(self.llm_provider, "")

    def secret_values(self) -> tuple[str, ...]:
        """Values that must never reach a log line."""
        candidates = (
            self.secret_key,
            self.twilio_auth_token,
            self.twilio_previous_auth_token,
            self.twilio_api_key_secret,
            self.web_call_captcha_secret,
            self.livekit_api_secret,
            self.livekit_sip_password,
            self.openai_api_key,
            self.groq_api_key,
            self.openrouter_api_key,
            self.supervisor_password,
            _password_of(self.database_url),
        )
        return tuple(value for value in candidates if value and len(value) >= 4)

    def unconfigured(self) -> list[str]:
        """Integrations left unset, for the start-up log and /ready."""
        missing = []
        if not self.twilio_configured:
            missing.append("twilio")
        if not self.livekit_configured:
            missing.append("livekit")
        if not self.sip_configured:
            missing.append("livekit_sip")
        if self.llm_provider == "none":
            missing.append("llm")
        return missing


# Variable name -> (field, parser). Parsers raise ValueError with a reason.
def _text(value: str) -> str:
    return value.strip()


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _int(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if number <= 0:
        raise ValueError("must be greater than zero")
    return number


def _url(value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError("expected an absolute http(s) or ws(s) URL")
    return value


def _path_prefix(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and (not value.startswith("/") or "//" in value or any(c in value for c in "?#\"' <>")):
        raise ValueError("expected a path such as /live, or nothing")
    return value


def _database_url(value: str) -> str:
    value = value.strip()
    if value.startswith("postgres://"):
        value = "postgresql://" + value[len("postgres://"):]
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://"):]
    if not (value.startswith("sqlite") or value.startswith("postgresql")):
        raise ValueError("expected a sqlite:/// or postgresql:// URL")
    return value


def _choice(options: tuple[str, ...]):
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _transcription(value: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    if not names:
        raise ValueError("expected on, off, or queue names separated by commas")
    if len(names) > 1 and ({"on", "off"} & set(names)):
        raise ValueError("on and off stand alone; list queue names to transcribe only some queues")
    return names


def _timezone(value: str) -> str:
    name = value.strip()
    try:
        if name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name such as Europe/London or UTC") from None
    return name


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _phone(value: str) -> str:
    value = value.strip()
    if value and not (value.startswith("+") and value[1:].isdigit() and 8 <= len(value) <= 16):
        raise ValueError("expected an E.164 number such as +15551234567")
    return value


E164_PREFIX = re.compile(r"^\+[1-9]\d{0,14}$")
SIP_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")


def _prefixes(value: str) -> tuple[str, ...]:
    entries = tuple(entry.replace(" ", "") for entry in _csv(value))
    for entry in entries:
        if not E164_PREFIX.match(entry):
            raise ValueError(f"{entry} is not an E.164 prefix (+ and 1 to 15 digits, such as +44 or +1212)")
    return entries


def _origins(value: str) -> tuple[str, ...]:
    """Web origins, each scheme://host[:port] exactly as a browser sends it in Origin (no path, no slash)."""
    origins = []
    for entry in _csv(value):
        parts = urlsplit(entry)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path or parts.query:
            raise ValueError(f"{entry!r} is not an origin such as https://www.example.com (no path)")
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _outside_allow(value: str) -> tuple[str, ...]:
    entries = tuple(entry.lower().replace(" ", "") for entry in _csv(value))
    for entry in entries:
        if entry.startswith("+") and not E164_PREFIX.match(entry):
            raise ValueError(f"{entry} is not an E.164 prefix (+ and 1 to 15 digits, such as +44 or +1212)")
        if not entry.startswith("+") and not SIP_DOMAIN.match(entry):
            raise ValueError(f"{entry} is neither an E.164 prefix (+44) nor a SIP host or domain (pbx.example.com)")
    return entries


VARIABLES: dict[str, tuple[str, object]] = {
    "APP_ENV": ("app_env", _choice(APP_ENVS)),
    "DEBUG": ("debug", _bool),
    "HOST": ("host", _text),
    "PORT": ("port", _int),
    "SECRET_KEY": ("secret_key", _text),
    "DATABASE_URL": ("database_url", _database_url),
    "PUBLIC_BASE_URL": ("public_base_url", _url),
    "TRUSTED_PROXY_HOPS": ("trusted_proxy_hops", _int),
    "MAX_REQUEST_BYTES": ("max_request_bytes", _int),
    "LOG_FORMAT": ("log_format", _choice(("console", "json"))),
    "LOG_LEVEL": ("log_level", _choice(("debug", "info", "warning", "error"))),
    "TWILIO_ACCOUNT_SID": ("twilio_account_sid", _text),
    "TWILIO_AUTH_TOKEN": ("twilio_auth_token", _text),
    "TWILIO_PREVIOUS_AUTH_TOKEN": ("twilio_previous_auth_token", _text),
    "TWILIO_PHONE_NUMBER": ("twilio_phone_number", _phone),
    "TWILIO_API_BASE_URL": ("twilio_api_base_url", _url),
    "TWILIO_TIMEOUT_SECONDS": ("twilio_timeout_seconds", _seconds),
    "TWILIO_API_KEY_SID": ("twilio_api_key_sid", _text),
    "TWILIO_API_KEY_SECRET": ("twilio_api_key_secret", _text),
    "TWILIO_TWIML_APP_SID": ("twilio_twiml_app_sid", _text),
    "WEB_CALL_ORIGINS": ("web_call_origins", _origins),
    "WEB_CALL_TOKENS_PER_ADDRESS": ("web_call_tokens_per_address", _int),
    "WEB_CALL_TOKEN_WINDOW_SECONDS": ("web_call_token_window_seconds", _int),
    "WEB_CALL_TOKEN_TTL_SECONDS": ("web_call_token_ttl_seconds", _int),
    "WEB_CALL_CAPTCHA": ("web_call_captcha", _choice(WEB_CALL_CAPTCHAS)),
    "WEB_CALL_CAPTCHA_SITE_KEY": ("web_call_captcha_site_key", _text),
    "WEB_CALL_CAPTCHA_SECRET": ("web_call_captcha_secret", _text),
    "WEB_CALL_CAPTCHA_VERIFY_URL": ("web_call_captcha_verify_url", _url),
    "LIVEKIT_URL": ("livekit_url", _url),
    "LIVEKIT_API_KEY": ("livekit_api_key", _text),
    "LIVEKIT_API_SECRET": ("livekit_api_secret", _text),
    "LIVEKIT_SIP_HOST": ("livekit_sip_host", _text),
    "LIVEKIT_SIP_USERNAME": ("livekit_sip_username", _text),
    "LIVEKIT_SIP_PASSWORD": ("livekit_sip_password", _text),
    "LIVEKIT_ROOM_PREFIX": ("livekit_room_prefix", _text),
    "LIVEKIT_TIMEOUT_SECONDS": ("livekit_timeout_seconds", _seconds),
    "LIVEKIT_ALLOWED_ADDRESSES": ("livekit_allowed_addresses", _csv),
    "LLM_PROVIDER": ("llm_provider", _choice(LLM_PROVIDERS)),
    "TRANSCRIPTION": ("transcription", _transcription),
    "TRANSCRIPTION_CARD_PAUSE_SECONDS": ("transcription_card_pause_seconds", _int),
    "LLM_MODEL": ("llm_model", _text),
    "LLM_BASE_URL": ("llm_base_url", _url),
    "LLM_TIMEOUT_SECONDS": ("llm_timeout_seconds", _seconds),
    "OPENAI_API_KEY": ("openai_api_key", _text),
    "GROQ_API_KEY": ("groq_api_key", _text),
    "OPENROUTER_API_KEY": ("openrouter_api_key", _text),
    "SUMMARY_DEADLINE_SECONDS": ("summary_deadline_seconds", _seconds),
    "EVENT_WEBHOOK_TIMEOUT_SECONDS": ("event_webhook_timeout_seconds", _seconds),
    "SAY_VOICE": ("say_voice", _text),
    "SAY_LANGUAGE": ("say_language", _text),
    "HOLD_MUSIC_URL": ("hold_music_url", _url),
    "AGENT_RING_TIMEOUT_SECONDS": ("agent_ring_timeout_seconds", _int),
    "TRANSFER_RING_TIMEOUT_SECONDS": ("transfer_ring_timeout_seconds", _int),
    "OUTSIDE_TRANSFER_ALLOW": ("outside_transfer_allow", _outside_allow),
    "OUTSIDE_TRANSFER_CALLER_ID": ("outside_transfer_caller_id", _choice(("ours", "caller"))),
    "OUTBOUND_CALL_ALLOW": ("outbound_call_allow", _prefixes),
    "OUTBOUND_RING_TIMEOUT_SECONDS": ("outbound_ring_timeout_seconds", _int),
    "CALLBACK_ATTEMPTS": ("callback_attempts", _int),
    "CALLBACK_RETRY_SECONDS": ("callback_retry_seconds", _int),
    "RESUME_WINDOW_SECONDS": ("resume_window_seconds", _int),
    "RESUME_REQUIRES_ATTESTATION": ("resume_requires_attestation", _bool),
    "BROWSER_JOIN_SECONDS": ("browser_join_seconds", _int),
    "WEBHOOK_BUDGET_SECONDS": ("webhook_budget_seconds", _seconds),
    "MAX_QUEUE_WAIT_SECONDS": ("max_queue_wait_seconds", _int),
    "CENTRE_TIMEZONE": ("centre_timezone", _timezone),
    "QUEUE_ANNOUNCE_SECONDS": ("queue_announce_seconds", _int),
    "SERVICE_LEVEL_SECONDS": ("service_level_seconds", _int),
    "WRAP_UP_SECONDS": ("wrap_up_seconds", _int),
    "DISPOSITION_CODES": ("disposition_codes", _csv),
    "MISSED_CALLS_BEFORE_AWAY": ("missed_calls_before_away", _int),
    "IVR_MAX_ATTEMPTS": ("ivr_max_attempts", _int),
    "ROOM_EMPTY_TIMEOUT_SECONDS": ("room_empty_timeout_seconds", _int),
    "RECONCILE_INTERVAL_SECONDS": ("reconcile_interval_seconds", _int),
    "RECONCILE_PASS_SECONDS": ("reconcile_pass_seconds", _seconds),
    "JOBS_IN_PROCESS": ("jobs_in_process", _bool),
    "JOB_CONCURRENCY": ("job_concurrency", _int),
    "JOB_STALLED_AFTER_SECONDS": ("job_stalled_after_seconds", _int),
    "WEB_CONCURRENCY": ("web_concurrency", _int),
    "WEB_THREADS": ("web_threads", _int),
    "LIVE_STREAM_BASE": ("live_stream_base", _path_prefix),
    "LIVE_HOST": ("live_host", _text),
    "LIVE_PORT": ("live_port", _int),
    "LIVE_MAX_PAGES": ("live_max_pages", _int),
    "BOARD_CALLS_SHOWN": ("board_calls_shown", _int),
    "SUPERVISOR_USERNAME": ("supervisor_username", _text),
    "SUPERVISOR_PASSWORD": ("supervisor_password", _text),
    "RATELIMIT_STORAGE_URI": ("ratelimit_storage_uri", _text),
    "LOGIN_FAILURES_PER_ADDRESS": ("login_failures_per_address", _int),
    "LOGIN_FAILURES_PER_USER": ("login_failures_per_user", _int),
    "LOGIN_FAILURE_WINDOW_SECONDS": ("login_failure_window_seconds", _int),
    "LOGIN_IDLE_HOURS": ("login_idle_hours", _int),
}


def load_settings(environ: Mapping[str, str] | None = None, *, dotenv: bool | None = None) -> Settings:
    """Build Settings from the environment (and `.env` in development), or raise ConfigError."""
    real = dict(os.environ if environ is None else environ)
    use_dotenv = dotenv if dotenv is not None else (environ is None and real.get("APP_ENV") != "production")
    merged: dict[str, str] = {}
    if use_dotenv and (PROJECT_ROOT / ".env").is_file():
        merged.update({k: v for k, v in dotenv_values(PROJECT_ROOT / ".env").items() if v is not None})
    merged.update(real)

    values: dict[str, object] = {}
    problems: list[str] = []
    for name, (field, parse) in VARIABLES.items():
        raw = merged.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[field] = parse(raw)  # type: ignore[operator]
        except ValueError as error:
            problems.append(f"{name}: {error}")

    interval = values.get("reconcile_interval_seconds", Settings.reconcile_interval_seconds)
    if interval:
        values.setdefault("reconcile_pass_seconds", min(Settings.reconcile_pass_seconds, interval / 2))
    values.setdefault("log_format", "console" if values.get("app_env", "development") == "development" else "json")
    settings = Settings(**values)  # type: ignore[arg-type]
    problems.extend(_cross_checks(settings, merged))
    if problems:
        raise ConfigError(problems)
    return settings


def _cross_checks(settings: Settings, merged: Mapping[str, str]) -> list[str]:
    problems = []
    groups = {
        "Twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"),
        "LiveKit": ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"),
        "LiveKit SIP": ("LIVEKIT_SIP_HOST", "LIVEKIT_SIP_USERNAME", "LIVEKIT_SIP_PASSWORD"),
    }
    for label, names in groups.items():
        given = [name for name in names if merged.get(name, "").strip()]
        if given and len(given) != len(names):
            missing = [name for name in names if name not in given]
            problems.append(f"{', '.join(missing)}: required when {label} is configured")
        if settings.production and not given:
            problems.append(f"{', '.join(names)}: required in production")
    if settings.twilio_account_sid and not settings.twilio_account_sid.startswith("AC"):
        problems.append("TWILIO_ACCOUNT_SID: expected an account SID starting with AC")
    if settings.llm_provider != "none" and not settings.llm_api_key:
        key_name = f"{settings.llm_provider.upper()}_API_KEY"
        problems.append(f"{key_name}: required when LLM_PROVIDER={settings.llm_provider}")
    if settings.production and not settings.secret_key:
        problems.append("SECRET_KEY: required in production")
    if settings.production and settings.database_url.startswith("sqlite"):
        problems.append("DATABASE_URL: production needs PostgreSQL, not the embedded SQLite file")
    if not settings.jobs_in_process and settings.database_url.startswith("sqlite"):
        problems.append("JOBS_IN_PROCESS: must be true on the embedded SQLite database, whose jobs live in the "
                        "process's memory (separate job workers need PostgreSQL)")
    if settings.job_concurrency < 1:
        problems.append("JOB_CONCURRENCY: must be at least 1")
    if settings.job_stalled_after_seconds < 2:
        problems.append("JOB_STALLED_AFTER_SECONDS: must be at least 2 (a worker beats its heart every third of it)")
    if settings.summary_deadline_seconds >= 30:
        # No webhook waits for the summary any more; this bounds how long a
        # greeted target listens to pauses before the fallback is spoken.
        problems.append("SUMMARY_DEADLINE_SECONDS: the target waits this long after the greeting (use < 30)")
    if settings.event_webhook_timeout_seconds > 30:
        problems.append("EVENT_WEBHOOK_TIMEOUT_SECONDS: at most 30 (a slow subscriber holds a job worker that long)")
    if bool(settings.supervisor_username) != bool(settings.supervisor_password):
        problems.append("SUPERVISOR_USERNAME, SUPERVISOR_PASSWORD: set both or neither")
    elif settings.supervisor_password and len(settings.supervisor_password) < 10:
        problems.append("SUPERVISOR_PASSWORD: must be at least 10 characters")
    if not 5 <= settings.outbound_ring_timeout_seconds <= MAX_OUTBOUND_RING_SECONDS:
        # The agent waits in the call's room, ringing, while the customer's phone rings (LiveKit answers a SIP
        # call only once another party's track is there); their <Dial> into the room gives up after 60 s
        # (ROOM_DIAL_TIMEOUT_SECONDS in app/telephony/sip.py), so the customer must ring for less.
        problems.append(f"OUTBOUND_RING_TIMEOUT_SECONDS: must be 5 to {MAX_OUTBOUND_RING_SECONDS} (the agent "
                        "waits in the room, which rings for at most 60 s)")
    if not 2 <= settings.webhook_budget_seconds <= 13:
        problems.append("WEBHOOK_BUDGET_SECONDS: must be 2 to 13 (Twilio waits 15 s for a webhook's answer; the "
                        "commit and the answer itself need the rest)")
    if not 5 <= settings.browser_join_seconds <= 50:
        # The caller rings in the room until the browser publishes (LiveKit answers a SIP call only then);
        # their <Dial> gives up after 60 s, so the wait must end well before it.
        problems.append("BROWSER_JOIN_SECONDS: must be 5 to 50 (the caller rings in the room for at most 60 s)")
    if settings.reconcile_interval_seconds and settings.reconcile_pass_seconds >= settings.reconcile_interval_seconds:
        problems.append(f"RECONCILE_PASS_SECONDS: must be less than RECONCILE_INTERVAL_SECONDS "
                        f"({settings.reconcile_interval_seconds}), so a pass ends before the next one is due")
    if settings.callback_attempts < 1:
        problems.append("CALLBACK_ATTEMPTS: must be at least 1")
    for name in ("LOGIN_FAILURES_PER_ADDRESS", "LOGIN_FAILURES_PER_USER", "LOGIN_FAILURE_WINDOW_SECONDS"):
        if getattr(settings, name.lower()) < 1:
            problems.append(f"{name}: must be at least 1")
    if settings.service_level_seconds < 1:
        problems.append("SERVICE_LEVEL_SECONDS: must be at least 1")
    if settings.board_calls_shown < 1:
        problems.append("BOARD_CALLS_SHOWN: must be at least 1")
    for name in ("WEB_CALL_TOKENS_PER_ADDRESS", "WEB_CALL_TOKEN_WINDOW_SECONDS"):
        if getattr(settings, name.lower()) < 1:
            problems.append(f"{name}: must be at least 1")
    if not 60 <= settings.web_call_token_ttl_seconds <= 3600:
        problems.append("WEB_CALL_TOKEN_TTL_SECONDS: must be 60 to 3600 (a token only has to last until the "
                        "browser connects)")
    problems.extend(_captcha_problems(settings))
    if settings.twilio_api_key_sid and not settings.twilio_api_key_sid.startswith("SK"):
        problems.append("TWILIO_API_KEY_SID: expected an API key SID starting with SK")
    if settings.twilio_twiml_app_sid and not settings.twilio_twiml_app_sid.startswith("AP"):
        problems.append("TWILIO_TWIML_APP_SID: expected a TwiML App SID starting with AP")
    if settings.ivr_max_attempts < 1:
        problems.append("IVR_MAX_ATTEMPTS: must be at least 1")
    if settings.max_request_bytes < MIN_REQUEST_BYTES:
        problems.append(f"MAX_REQUEST_BYTES: must be at least {MIN_REQUEST_BYTES} (Twilio's webhooks and the API's "
                        "requests take a few kilobytes)")
    if not 1 <= settings.port <= 65535:
        problems.append(f"PORT: {settings.port} is not a TCP port (1 to 65535)")
    if settings.production:
        problems.extend(_production_checks(settings))
    return problems


# The least MAX_REQUEST_BYTES may be: a Twilio webhook with a long transcript is a few kilobytes.
MIN_REQUEST_BYTES = 16_384

# The longest an outbound call rings the customer: well inside the 60 s its agent's <Dial> into the room rings.
MAX_OUTBOUND_RING_SECONDS = 45


# Twilio signs every webhook for the URL it calls: in production that must be
# the public https address, and a session key must be long enough to guess.
MIN_SECRET_KEY_LENGTH = 32


def _captcha_problems(settings: Settings) -> list[str]:
    """The CAPTCHA's settings: a provider needs its site key and secret; the others mean nothing without one."""
    keys = {"WEB_CALL_CAPTCHA_SITE_KEY": settings.web_call_captcha_site_key,
            "WEB_CALL_CAPTCHA_SECRET": settings.web_call_captcha_secret}
    if settings.web_call_captcha in ("", "none"):
        given = [name for name, value in {**keys, "WEB_CALL_CAPTCHA_VERIFY_URL": settings.web_call_captcha_verify_url}
                 .items() if value]
        if given:
            return [f"{', '.join(given)}: set WEB_CALL_CAPTCHA to the provider they are for (turnstile, hcaptcha "
                    "or recaptcha)"]
        return []
    unset = [name for name, value in keys.items() if not value]
    return [f"{', '.join(unset)}: needed with WEB_CALL_CAPTCHA={settings.web_call_captcha}"] if unset else []


def _production_checks(settings: Settings) -> list[str]:
    problems = []
    parts = urlsplit(settings.public_base_url)
    if parts.scheme != "https":
        problems.append(f"PUBLIC_BASE_URL: {settings.public_base_url} is not https; Twilio must reach the "
                        "service at its public https address")
    if (parts.hostname or "") in ("localhost", "127.0.0.1", "::1", "0.0.0.0"):
        problems.append(f"PUBLIC_BASE_URL: {settings.public_base_url} is this machine; give the address Twilio "
                        "and LiveKit call (webhook signatures are checked against it)")
    if settings.secret_key and len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        problems.append(f"SECRET_KEY: at least {MIN_SECRET_KEY_LENGTH} characters in production "
                        "(python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    if (PROJECT_ROOT / ".env").is_file():
        # The flask CLI loads .env into the environment by itself, so
        # ignoring it here is not enough: production refuses to start beside one.
        problems.append(f".env: {PROJECT_ROOT / '.env'} exists; production takes its settings from the "
                        "environment only (the flask CLI would read that file): remove or rename it")
    return problems


def _password_of(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


@contextmanager
def exit_on_config_error():
    """At start-up: turn a ConfigError into its message on stderr and exit status 2, not a traceback."""
    try:
        yield
    except ConfigError as error:
        print(f"switchboard: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def development_secret_key() -> str:
    """A per-checkout secret for development, kept under instance/ so sessions survive restarts."""
    INSTANCE_DIR.mkdir(exist_ok=True)
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
