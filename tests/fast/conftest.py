"""The fast tier: the routing and transfer state machines on a real database, each test in a savepoint.

Each test runs inside one outer transaction that is rolled back at its end
(as pypi/warehouse does), so nothing is truncated and no test sees another's
rows. The steps commit as they do in the service: with
join_transaction_mode="create_savepoint" a commit releases a savepoint.

Nothing leaves the process: agents are browser agents (ringing one writes
its leg, no Twilio dial), and what a step would ask of Twilio and LiveKit is
read from the effects it records (app/primitives/effects.py), which nobody
carries out here. The whole-call tier (tests/test_*.py) plays the same
machines through Twilio's and LiveKit's stand-ins.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.agents.service import load_roster
from app.database import make_engine
from app.models import Agent, Call, CallStatus, Leg, LegRole, LegStatus, Presence, Queue
from app.primitives.context import Telephony
from app.telephony.urls import WebhookUrls
from config import Settings
from tests.conftest import PUBLIC_BASE_URL

ROSTER = {
    "queues": [
        {"name": "billing", "dtmf_code": "1", "skill": "billing", "default": True},
        {"name": "technical", "dtmf_code": "2", "skill": "technical"},
    ],
    "agents": [
        {"name": "Alice", "extension": "101", "skills": ["billing"], "presence": "available"},
        {"name": "Bob", "extension": "102", "skills": ["billing", "technical"], "presence": "available"},
        {"name": "Carmen", "extension": "201", "skills": ["billing"], "presence": "available"},
    ],
}


@pytest.fixture(scope="session")
def fast_engine(database_url):
    engine = make_engine(database_url, pooled=False)
    yield engine
    engine.dispose()


@pytest.fixture
def session(fast_engine):
    """A session whose every commit is a savepoint of one transaction rolled back after the test."""
    connection = fast_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()
    outer.rollback()
    connection.close()


@pytest.fixture
def t(session) -> Telephony:
    """A step's tools with no outside integration: effects are recorded, never carried out."""
    load_roster(session, ROSTER)
    session.flush()
    started = []
    settings = Settings(app_env="test", secret_key="fast-tier-secret-key-not-for-production",
                        database_url=str(session.get_bind().engine.url), public_base_url=PUBLIC_BASE_URL,
                        missed_calls_before_away=2)
    telephony = Telephony(session=session, settings=settings, urls=WebhookUrls(PUBLIC_BASE_URL),
                          twilio_gateway=None, livekit_gateway=None,
                          summarise_later=started.append)
    return telephony


def agent(t: Telephony, extension: str) -> Agent:
    return t.session.query(Agent).filter_by(extension=extension).one()


def waiting_call(t: Telephony, queue: str = "billing", sid: str = "CAfast0001") -> Call:
    """A caller in QUEUE with their Twilio leg, nobody rung yet."""
    call = Call(call_sid=sid, from_number="+15551230001", to_number="+15550100000",
                queue_id=t.session.query(Queue).filter_by(name=queue).one().id, status=CallStatus.QUEUED,
                room_name=f"call_{sid}")
    t.session.add(call)
    t.session.flush()
    t.session.add(Leg(call_id=call.id, role=LegRole.CALLER, status=LegStatus.CONNECTED, twilio_call_sid=sid,
                      livekit_identity=f"sip_{sid}"))
    t.session.flush()
    t.session.refresh(call)
    return call


def set_presence(t: Telephony, extension: str, presence: Presence) -> None:
    agent(t, extension).presence = presence
    t.session.flush()


def connected(t: Telephony, phone_sid: str = "CAalice") -> tuple[Call, Leg]:
    """A call connected to Alice, whose leg is a phone (so it can be moved); returns (call, Alice's leg)."""
    from app.routing import service as routing

    call = waiting_call(t)
    leg = routing.offer_call(t, call)
    leg.twilio_call_sid = phone_sid
    routing.agent_accepted(t, leg)
    t.effects.take()  # the room's creation and the caller's move into it: not this test's business
    t.session.refresh(call)
    return call, leg


def moved_to(url: str, leg: Leg) -> str:
    """The URL a redirect of LEG was recorded with: URL and the placement the move gave the leg (v=)."""
    return f"{url}{'&' if '?' in url else '?'}v={leg.placement}"
