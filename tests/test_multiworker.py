"""A whole warm transfer against gunicorn with several workers: no call state lives in process memory.

The service runs as it does in production (gunicorn, gthread workers) and
reaches Twilio's REST API, LiveKit and the LLM over loopback HTTP through its
base-URL settings; a call's webhooks land on whichever worker is free.
"""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agents.service import DEMO_ROSTER, load_roster, read_roster
from app.database import make_engine
from app.models import Call, Transfer
from app.sandbox.scenarios import warm_transfer_by_dtmf
from app.sandbox.served import NUMBER, gunicorn_service
from tests.conftest import LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.transfer_helpers import in_room


@pytest.fixture
def served(clean_database, livekit, llm):
    engine = make_engine(clean_database, pooled=False)
    with Session(engine) as session:
        load_roster(session, read_roster(DEMO_ROSTER))
        session.commit()
    with gunicorn_service(clean_database, livekit=livekit, llm=llm, livekit_key=LIVEKIT_API_KEY,
                          livekit_secret=LIVEKIT_API_SECRET, extra_env={"SUMMARY_DEADLINE_SECONDS": "3"}) as served:
        yield served, engine
    engine.dispose()
    assert "Traceback" not in served.output, served.output[-3000:]
    assert served.livekit_webhook_failures == []


@pytest.mark.load
def test_warm_transfer_across_three_gunicorn_workers(served, llm):
    served, engine = served
    network = served.network
    caller, alice, bob = warm_transfer_by_dtmf(network, NUMBER)
    assert "Transfer from Alice Moreno" in bob.heard_text
    with Session(engine) as session:
        call = session.scalar(select(Call))
        transfer = session.scalar(select(Transfer))
        assert call.status == "connected" and transfer.state == "completed"
        assert transfer.summary_source == "llm" and transfer.summary_provider == "groq"
        room = call.room_name.split("_", 1)[1]
    assert in_room(network.call(caller.sid), room) and in_room(network.call(bob.sid), room)
    assert llm.requests[0].headers["Authorization"] == "Bearer gsk-served-key-0123456789"
    caller.hangup()
    network.run_pending()
    with Session(engine) as session:
        assert session.scalar(select(Call.status)) == "completed"
    assert network.errors == []
