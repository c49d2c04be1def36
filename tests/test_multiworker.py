"""A whole warm transfer against gunicorn with several workers: no call state lives in process memory.

The service runs as it does in production (gunicorn, gthread workers) and
reaches Twilio's REST API, LiveKit and the LLM over loopback HTTP through its
base-URL settings; a call's webhooks land on whichever worker is free.
"""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agents.service import load_roster
from app.cli import DEMO_ROSTER, read_roster
from app.db import make_engine
from app.models import Call, Transfer
from app.sandbox.twilio_network import TwilioNetwork, http_transport
from app.sandbox.twilio_server import TwilioStandIn
from tests.conftest import LIVEKIT_API_KEY, LIVEKIT_API_SECRET, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
from tests.test_gunicorn import _free_port
from tests.transfer_helpers import ALICE, BOB, in_room

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "+15550100000"


@pytest.fixture
def served(clean_database, livekit, llm):
    engine = make_engine(clean_database, pooled=False)
    with Session(engine) as session:
        load_roster(session, read_roster(DEMO_ROSTER))
        session.commit()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    network = TwilioNetwork(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, http_transport(timeout=20))
    network.add_number(NUMBER, voice_url=base + "/twilio/voice", status_callback=base + "/twilio/status")
    with TwilioStandIn(network) as twilio:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "APP_ENV": "test", "LOG_FORMAT": "json", "SECRET_KEY": "multiworker-secret",
            "DATABASE_URL": clean_database, "PORT": str(port), "PUBLIC_BASE_URL": base,
            "WEB_CONCURRENCY": "3", "WEB_THREADS": "4",
            "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": NUMBER, "TWILIO_API_BASE_URL": twilio.url,
            "LIVEKIT_URL": livekit.url, "LIVEKIT_API_KEY": LIVEKIT_API_KEY, "LIVEKIT_API_SECRET": LIVEKIT_API_SECRET,
            "LIVEKIT_SIP_HOST": "switchboard-test.sip.livekit.cloud", "LIVEKIT_SIP_USERNAME": "switchboard",
            "LIVEKIT_SIP_PASSWORD": "sip-trunk-password-123",
            "LLM_PROVIDER": "groq", "GROQ_API_KEY": "gsk-test-key-0123456789", "LLM_BASE_URL": llm.base_url,
            "SUMMARY_DEADLINE_SECONDS": "3",
        }
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "wsgi:app"],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(base + "/health", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                pytest.fail("gunicorn did not start")
            yield network, engine, process
        finally:
            process.terminate()
            output = process.communicate(timeout=20)[0]
            engine.dispose()
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.load
def test_warm_transfer_across_three_gunicorn_workers(served, llm):
    network, engine, process = served
    caller = network.incoming_call("+15551230001", NUMBER)
    caller.speak("my internet bill is wrong")
    alice = network.last_call(to=ALICE)
    network.answer(alice.sid)
    alice.press("1")
    caller.transcribe("I was charged twice this month", track="inbound_track")
    alice.press_star()
    alice.press("2102#")
    bob = network.last_call(to=BOB)
    network.answer(bob.sid)
    assert "Transfer from Alice Moreno" in bob.heard_text
    bob.press("1")
    alice.press_star()
    alice.press("2")
    network.run_pending()
    with Session(engine) as session:
        call = session.scalar(select(Call))
        transfer = session.scalar(select(Transfer))
        assert call.status == "connected" and transfer.state == "completed"
        assert transfer.summary_source == "llm" and transfer.summary_provider == "groq"
        room = call.room_name.split("_", 1)[1]
    assert in_room(network.call(caller.sid), room) and in_room(network.call(bob.sid), room)
    assert llm.requests[0].headers["Authorization"] == "Bearer gsk-test-key-0123456789"
    caller.hangup()
    network.run_pending()
    with Session(engine) as session:
        assert session.scalar(select(Call.status)) == "completed"
    assert network.errors == []
