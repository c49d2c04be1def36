"""structlog set up once, with stdlib, werkzeug and gunicorn logs in the same shape.

Development gets the console renderer; everything else JSON lines. A last
processor masks every configured secret value wherever it appears, and any
key that names a secret, so a careless log call cannot leak one.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from functools import lru_cache
from typing import Any, Iterable

import structlog

SECRET_KEY_PATTERN = re.compile(r"(password|secret|token|authorization|api_key|signature)", re.IGNORECASE)
MASK = "[redacted]"


class SecretMasker:
    """A structlog processor that hides secret values and secret-named keys."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        # One pattern for them all, longest first: each text is searched once, however many secrets there are.
        self._pattern = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None

    def mask_text(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return {k: (MASK if _names_secret(str(k)) else self._mask(v)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._mask(v) for v in value)
        return value

    def __call__(self, _logger, _method, event_dict: dict[str, Any]) -> dict[str, Any]:
        for key, value in list(event_dict.items()):
            if key != "event" and _names_secret(key):
                event_dict[key] = MASK
            elif isinstance(value, str):
                event_dict[key] = self.mask_text(value)
            elif isinstance(value, (dict, list, tuple)):
                event_dict[key] = self._mask(value)
        return event_dict


@lru_cache(maxsize=4096)
def _names_secret(key: str) -> bool:
    """Whether a log field named KEY holds a secret by its name (the names are few: asked once each)."""
    return SECRET_KEY_PATTERN.search(key) is not None


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record (gunicorn and pytest swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _shared_processors(masker: SecretMasker) -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        masker,
    ]


def logging_dict_config(log_format: str, level: str, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A logging.dictConfig routing stdlib, werkzeug and gunicorn records through structlog's formatter."""
    masker = SecretMasker(secrets)
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": _shared_processors(masker),
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            masker,
            renderer,
        ],
    }
    handler = {"()": StderrHandler, "formatter": "structured"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "gunicorn.error": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            # The service writes one line per request itself, with what it cost (`request_served`,
            # app/web/request_cost.py), at every LOG_LEVEL; gunicorn's access line would repeat it.
            "gunicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": False},
            "switchboard.request": {"level": "INFO"},
            "werkzeug": {"handlers": ["default"], "level": "INFO", "propagate": False},
            # Alembic announces every plugin it sets up at info: that is debugging detail.
            "alembic.runtime.plugins": {"level": "WARNING"},
            # twilio-python logs whole request bodies at DEBUG; keep it at INFO.
            "twilio.http_client": {"level": "WARNING"},
        },
    }


def configure_logging(log_format: str = "console", level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure stdlib logging and structlog once for the process."""
    logging.config.dictConfig(logging_dict_config(log_format, level, secrets))
    structlog.configure(
        processors=[
            # A line below its logger's level is dropped here, before the rest of the chain works on it.
            structlog.stdlib.filter_by_level,
            *_shared_processors(SecretMasker(secrets))[:-1],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """The project's logger; bind facts, name events in snake_case."""
    return structlog.get_logger(name)
