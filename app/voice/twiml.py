"""TwiML rendered from twiml_templates/<flow>/<step>.xml, autoescaped, served as text/xml.

Every value put into a template is escaped and loses the characters XML 1.0
forbids even escaped (app/text.py): Twilio does not carry out TwiML it cannot
parse (error 12100), so whatever reached a value, the document stays well-formed.
"""

from __future__ import annotations

from functools import lru_cache

from flask import Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from app.primitives.context import Telephony
from app.text import xml_safe
from config import PROJECT_ROOT

TWIML_MEDIA_TYPE = "text/xml"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment for TwiML: autoescape on, undefined names are errors. Templates are read once per
    process (no auto_reload: no stat of the file on every answer); a changed template needs a restart."""
    return Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "twiml_templates"),
        auto_reload=False,
        autoescape=select_autoescape(enabled_extensions=("xml",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_xml_safe_value,
    )


def _xml_safe_value(value):
    # Applied to each {{ value }} before it is escaped; markup stays markup.
    if isinstance(value, Markup):
        return Markup(xml_safe(str(value)))
    return xml_safe(value) if isinstance(value, str) else value


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
