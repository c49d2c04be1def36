"""The database goes away during calls: every Twilio webhook still answers TwiML that keeps the caller on the line.

The outage is real: on SQLite the database file is moved away (the service
then finds an empty database with no tables), on PostgreSQL the test's own
database refuses connections (ALLOW_CONNECTIONS false, its sessions ended).
The machine's server and other databases are never touched.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.telephony import urls

FORM = {"CallSid": "CA" + "b" * 32, "From": "+15551230042", "To": "+15550100000", "CallStatus": "ringing"}


@contextmanager
def database_down(centre):
    engine = centre.app.extensions["db_engine"]
    url = make_url(centre.app.config["SETTINGS"].database_url)
    engine.dispose()
    if url.get_backend_name() == "sqlite":
        # The database with its write-ahead log and shared memory, moved together.
        files = [url.database + suffix for suffix in ("", "-wal", "-shm", "-journal")]
        moved = [name for name in files if os.path.exists(name)]
        for name in moved:
            os.rename(name, name + ".away")
        try:
            yield
        finally:
            engine.dispose()
            for name in files:  # what SQLite created meanwhile: an empty database
                if os.path.exists(name):
                    os.remove(name)
            for name in moved:
                os.rename(name + ".away", name)
        return
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = url.database
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        engine.dispose()


def _twiml(response):
    assert response.status_code == 200 and response.mimetype == "text/xml", response.get_data(as_text=True)[:300]
    return ET.fromstring(response.data)


def test_with_the_database_gone_every_voice_webhook_answers_twiml_that_speaks(centre, signed_post):
    caller = centre.dial()
    caller.press("1")  # queued for billing, Alice ringing
    with database_down(centre):
        for path in (urls.VOICE, f"{urls.IVR}?call=1&attempt=1", f"{urls.CALLER_WAIT}?call=1", urls.FALLBACK,
                     f"{urls.AGENT_ANSWER}?leg=2", f"{urls.TRANSFER_ANSWER}?leg=2"):
            root = _twiml(signed_post(centre.client, path, FORM))
            assert "something went wrong" in root.find("Say").text and root.find("Redirect") is not None, path
            assert root.find("Hangup") is None
        recorded = _twiml(signed_post(centre.client, urls.FALLBACK_RECORDED,
                                      {**FORM, "RecordingUrl": "https://api.twilio.com/rec/RE9"}))
        assert "We have your message" in recorded.find("Say").text
        status = signed_post(centre.client, urls.STATUS, {**FORM, "CallStatus": "completed"})
        assert status.status_code == 503 and "not stored" in status.get_data(as_text=True)
        caller.music_ends()  # the waiting caller's hold loop meets the outage
        assert caller.live and "something went wrong" in caller.heard_text
    caller.music_ends()  # the database is back: the retried step goes on
    last = [d for d in centre.network.sent() if urls.CALLER_WAIT in d.url][-1]
    assert "retry=" in last.url  # the step the outage interrupted, tried again
    assert caller.live and last.status == 200 and "something went wrong" not in last.body


def test_with_the_database_gone_pages_answer_503_not_a_traceback(centre):
    with database_down(centre):
        response = centre.client.get("/ready")
        assert response.status_code == 503
        login = centre.client.post("/login", data={"username": "x", "password": "y"})
        assert login.status_code in (400, 503)
