"""An error in words, as a page for browsers or as JSON for programs."""

from __future__ import annotations

from flask import jsonify, render_template, request


def wants_json() -> bool:
    """Whether the client asked for JSON rather than a page."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_page(status: int, title: str, message: str):
    """An error in words: a page for browsers, {"error": message} for JSON clients."""
    if wants_json():
        return jsonify(error=message), status
    return render_template("error.html", status=status, title=title, message=message), status
