"""Text a person or a program sends to the pages and the JSON API: a NUL character is refused, in words.

PostgreSQL's text columns cannot hold NUL (0x00), and no name, number or
note needs one: a request carrying one in its query, form or JSON body is
answered 400 before any view runs, instead of failing at the database.
Twilio's and LiveKit's webhooks are read at their own edges (the voice
forms, the LiveKit event) and are not checked here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from app.web.errors import error_page

WEBHOOK_PREFIXES = ("/twilio/", "/livekit/")
REFUSAL = "text may not contain NUL characters"


def init_text_input_check(app: Flask) -> None:
    """Refuse NUL characters in what pages and the API are sent."""

    @app.before_request
    def refuse_nul_characters():
        if request.path.startswith(WEBHOOK_PREFIXES) or not _carries_nul():
            return None
        if request.path.startswith("/api/"):
            return jsonify(error=REFUSAL), 400
        return error_page(400, "Not accepted", f"The form was not accepted: {REFUSAL}.")


def _carries_nul() -> bool:
    for values in (request.args, request.form):
        if any("\x00" in key or "\x00" in value for key, value in values.items(multi=True)):
            return True
    if request.is_json:
        return _holds_nul(request.get_json(silent=True))
    return False


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
