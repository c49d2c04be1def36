"""TwilioDevEd's warm-transfer-flask, as tests/benchmarks/side_by_side.py runs it beside the service.

Run with the peer's own Python (a virtualenv with its requirements.txt), from
its checkout, never the service's: nothing of the peer is in this repository.

    PEER_TWILIO_API_BASE_URL=http://127.0.0.1:PORT DATABASE_URI=postgresql://... \\
        PYTHONPATH=PEER:REPO/tests/benchmarks PEER/.venv/bin/gunicorn side_by_side_peer:app
    PEER/.venv/bin/python REPO/tests/benchmarks/side_by_side_peer.py     (creates its table)

Its code runs unchanged; the only change is where twilio-python sends its
REST requests: api.twilio.com is swapped for PEER_TWILIO_API_BASE_URL, the
Twilio stand-in, as the service's own TWILIO_API_BASE_URL does.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient

_BASE = urlsplit(os.environ["PEER_TWILIO_API_BASE_URL"])
_request = TwilioHttpClient.request


def _to_stand_in(self, method, url, *args, **kwargs):
    parts = urlsplit(url)
    if (parts.hostname or "").endswith("twilio.com"):
        url = urlunsplit((_BASE.scheme, _BASE.netloc, _BASE.path + parts.path, parts.query, parts.fragment))
    return _request(self, method, url, *args, **kwargs)


TwilioHttpClient.request = _to_stand_in

from warm_transfer_flask import app, db, prepare_app  # noqa: E402 - after twilio's client is pointed

prepare_app()

if __name__ == "__main__":
    with app.app_context():
        db.create_all()
