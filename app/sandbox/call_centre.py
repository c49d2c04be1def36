"""A whole contact centre on one machine: the app, a simulated Twilio, LiveKit and the LLM on loopback.

Tests and `flask demo` drive calls through it: a caller dials, agents'
phones ring and are answered, and every step goes through the service's
real webhooks, signed as Twilio signs them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from flask import Flask
from sqlalchemy.orm import Session

from app.db import session_scope
from app.sandbox.twilio_network import SimCall, TwilioNetwork, flask_client_transport
from app.telephony import urls


class CallCentre:
    """The service plus its simulated outside world."""

    def __init__(self, app: Flask, public_base_url: str, account_sid: str, auth_token: str,
                 *, livekit=None, llm=None, transport=None):
        self.app = app
        self.public_base_url = public_base_url.rstrip("/")
        self.livekit = livekit
        self.llm = llm
        self.client = app.test_client()
        self.network = TwilioNetwork(
            account_sid, auth_token, transport or flask_client_transport(self.client, self.public_base_url)
        )
        self.number = app.config["SETTINGS"].twilio_phone_number
        self.network.add_number(
            self.number,
            voice_url=self.public_base_url + urls.VOICE,
            status_callback=self.public_base_url + urls.STATUS,
            voice_fallback_url=self.public_base_url + urls.FALLBACK,
        )

    def load_roster(self, path=None) -> None:
        """Load a roster file (default: the demo roster) into the database."""
        from app.agents.service import load_roster
        from app.cli import DEMO_ROSTER, read_roster

        with self.db() as session:
            load_roster(session, read_roster(path or DEMO_ROSTER))

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A database session for looking at (or arranging) state; committed at the end."""
        with session_scope(self.app) as session:
            yield session

    def dial(self, from_number: str = "+15551230001") -> SimCall:
        """A caller dials the service's number."""
        return self.network.incoming_call(from_number, self.number)

    def agent_phone(self, sip_uri: str) -> SimCall:
        """The newest call Twilio placed to this agent's softphone."""
        return self.network.last_call(to=sip_uri)

    def ringing(self) -> list[SimCall]:
        """Agent legs Twilio is ringing right now."""
        return [call for call in self.network.calls.values() if call.status in ("queued", "ringing")]

    def timeline(self, call_sid: str) -> list[str]:
        """The names of a call's events, oldest first."""
        from sqlalchemy import select

        from app.models import Call, Event

        with self.db() as session:
            call = session.scalar(select(Call).where(Call.call_sid == call_sid))
            return list(session.scalars(select(Event.name).where(Event.call_id == call.id).order_by(Event.id)))
