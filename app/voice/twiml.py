"""TwiML rendered from twiml_templates/<flow>/<step>.xml, autoescaped, served as text/xml."""

from __future__ import annotations

from functools import lru_cache

from flask import Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.primitives.context import Telephony
from config import PROJECT_ROOT

TWIML_MEDIA_TYPE = "text/xml"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment for TwiML: autoescape on, undefined names are errors."""
    return Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "twiml_templates"),
        autoescape=select_autoescape(enabled_extensions=("xml",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_twiml_text(template: str, **context) -> str:
    """Render a TwiML template to text."""
    return environment().get_template(template).render(**context)


def twiml_response(template: str, **context) -> Response:
    """Render a TwiML template into a text/xml response."""
    return Response(render_twiml_text(template, **context), mimetype=TWIML_MEDIA_TYPE)


def empty_twiml() -> Response:
    """An empty <Response/>: for callbacks whose TwiML Twilio ignores."""
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n<Response/>', mimetype=TWIML_MEDIA_TYPE)


def hold_context(t: Telephony) -> dict:
    """What every caller-facing TwiML template needs from the settings."""
    return {
        "voice": t.settings.say_voice,
        "language": t.settings.say_language,
        "music_url": t.urls.hold_music(t.settings.hold_music_url),
    }
