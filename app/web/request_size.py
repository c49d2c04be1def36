"""A request body larger than MAX_REQUEST_BYTES is answered 413 before anything reads it.

Flask refuses to read more than MAX_CONTENT_LENGTH of a body
(https://flask.palletsprojects.com/en/stable/config/#MAX_CONTENT_LENGTH);
the check here runs first of all the request's hooks, on the declared
Content-Length, so a 20 MiB body is refused before the CSRF check, the text
check or a webhook's signature check reads a byte of it. A body sent
without a length (chunked, which the WSGI server marks
`wsgi.input_terminated`) is read here up to one byte past the limit: over
it, it is answered the same way; within it, it is kept and handed on as a
body of known length. (Werkzeug alone would cut such a body off at the
limit without a word, and the view would see a truncated form.)

The answer is in the shape of the place asked: JSON under /api/ and
/livekit/, well-formed TwiML (an empty <Response/>) under /twilio/ (Twilio's
own bodies are a few kilobytes, so only someone else sends one this
large), and the error page elsewhere.
"""

from __future__ import annotations

from io import BytesIO

from flask import Flask, Response, abort, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.logs import get_logger
from app.web.errors import error_page

log = get_logger("switchboard.web")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?>\n<Response/>'


def init_request_size_limit(app: Flask) -> None:
    """Refuse bodies over MAX_REQUEST_BYTES, first of all hooks, in the shape of the place asked."""
    limit = app.config["SETTINGS"].max_request_bytes
    app.config["MAX_CONTENT_LENGTH"] = limit

    @app.before_request
    def refuse_large_bodies():
        if request.content_length is not None and request.content_length > limit:
            abort(413)
        if request.content_length is None and request.environ.get("wsgi.input_terminated"):
            _read_unknown_length(request.environ, limit)
        return None

    app.register_error_handler(RequestEntityTooLarge, _too_large)


def _read_unknown_length(environ: dict, limit: int) -> None:
    """A body of no declared length: 413 past LIMIT (read no further than one byte past it), else kept whole."""
    stream, body = environ["wsgi.input"], bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(65536, limit + 1 - len(body)))
        if not chunk:
            break
        body.extend(chunk)
    if len(body) > limit:
        abort(413)
    environ["wsgi.input"] = BytesIO(bytes(body))
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)


def _too_large(_error: RequestEntityTooLarge):
    limit = request.max_content_length
    log.warning("request_too_large", path=request.path, content_length=request.content_length, limit=limit)
    words = f"the request body is larger than {limit} bytes"
    if request.path.startswith(("/api/", "/livekit/")):
        return jsonify(error=words), 413
    if request.path.startswith("/twilio/"):
        return Response(EMPTY_TWIML, status=413, mimetype="text/xml")
    return error_page(413, "Too large", f"Not accepted: {words}.")
