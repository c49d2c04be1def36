"""Many callers at once never double-book an agent (run on SQLite and on PostgreSQL)."""

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from app.agents.service import load_roster
from app.models import Agent, Call, Leg
from app.telephony import urls

CALLERS = 20
AGENTS = 6


@pytest.mark.load
def test_twenty_concurrent_callers_never_double_book_an_agent(centre, signed_post):
    with centre.db() as session:
        for agent in session.scalars(select(Agent)):
            agent.presence = "offline"
        load_roster(session, {"agents": [
            {"name": f"Agent {n}", "extension": f"5{n:02d}", "sip_uri": f"sip:agent{n}@demo.sip.twilio.com",
             "skills": ["billing"], "presence": "available"} for n in range(AGENTS)
        ]})
    callers = [centre.dial(f"+1555000{n:04d}") for n in range(CALLERS)]
    with centre.db() as session:
        call_ids = {call.call_sid: call.id for call in session.scalars(select(Call))}

    start = threading.Barrier(CALLERS)
    answers = {}

    def press_one(sid: str) -> None:
        path = f"{urls.IVR}?call={call_ids[sid]}&attempt=1"
        form = {"CallSid": sid, "Digits": "1", "CallStatus": "in-progress"}
        client = centre.app.test_client()
        start.wait()
        answers[sid] = signed_post(client, path, form).status_code

    threads = [threading.Thread(target=press_one, args=(caller.sid,)) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(answers.values()) == {200}, answers

    with centre.db() as session:
        legs = session.scalars(select(Leg).where(Leg.role == "agent")).all()
        per_agent = Counter(leg.agent_id for leg in legs)
        ringing = session.scalars(select(Agent).where(Agent.activity == "ringing")).all()
        statuses = Counter(session.scalars(select(Call.status)))
    assert len(legs) == AGENTS and set(per_agent.values()) == {1}
    assert len(ringing) == AGENTS
    assert statuses == {"ringing_agent": AGENTS, "queued": CALLERS - AGENTS}
    dialled = [r.form["To"] for r in centre.network.rest_log if r.path.endswith("/Calls.json")]
    assert len(dialled) == len(set(dialled)) == AGENTS
