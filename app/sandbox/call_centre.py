"""A whole contact centre on one machine: the app, a simulated Twilio, LiveKit and the LLM on loopback.

Tests and `flask demo` drive calls through it: a caller dials, agents'
phones ring and are answered, and every step goes through the service's
real webhooks, signed as Twilio signs them.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

from flask import Flask
from sqlalchemy.orm import Session

from app import clock as service_clock
from app.db import session_scope
from app.sandbox.clock import VirtualClock
from app.sandbox.twilio_network import SimCall, TwilioNetwork, flask_client_transport
from app.sandbox.wiring import provision_livekit, unwire_livekit, wire_livekit
from app.telephony import urls

# How long, in real time, a phone's answer waits for the service's summaries
# being written: a person takes a second or two to pick up, and a summary
# from the LLM stand-in takes milliseconds. One slower than this (the
# stand-in's "slow" mode) is still being written when the target answers.
SETTLE_SECONDS = 2.0


class CallCentre:
    """The service plus its simulated outside world."""

    def __init__(self, app: Flask, public_base_url: str, account_sid: str, auth_token: str,
                 *, livekit=None, llm=None, transport=None, seed: int | None = None):
        self.app = app
        self.public_base_url = public_base_url.rstrip("/")
        self.livekit = livekit
        self.llm = llm
        self.client = app.test_client()
        # One virtual clock for Twilio, LiveKit and the service in this process.
        self.clock = livekit.clock if livekit is not None else VirtualClock()
        service_clock.use_clock(self.clock.now)
        # A retry's back-off is recorded, not slept through (the virtual clock keeps still in a webhook).
        self.slept: list[float] = []
        service_clock.use_sleeper(self.slept.append)
        # A webhook's time budget runs on its own counter: real time spent by the stand-ins is not counted,
        # only what a test says a slow answer took (`spend`).
        self.elapsed = 0.0
        service_clock.use_monotonic(lambda: self.elapsed)
        self.network = TwilioNetwork(
            account_sid, auth_token, transport or flask_client_transport(self.client, self.public_base_url),
            clock=self.clock, media_fetcher=self._fetch_media,
        )
        self.livekit_deliveries: list[tuple[str, int]] = []
        self.network.before_answer = self.settle_summaries
        # With a seed, callbacks that Twilio and LiveKit fire side by side
        # arrive in an order that varies from seed to seed, as on the real
        # services; the same seed gives the same order again.
        self.seed = seed
        if seed is not None:
            self.network.shuffle = random.Random(seed)
        settings = app.config["SETTINGS"]
        self.number = settings.twilio_phone_number
        if livekit is not None and settings.livekit_sip_host:
            wire_livekit(self.network, livekit, sip_host=settings.livekit_sip_host,
                         public_base_url=self.public_base_url, post=self._post_livekit_webhook)
            provision_livekit(app)
        self.network.add_number(
            self.number,
            voice_url=self.public_base_url + urls.VOICE,
            status_callback=self.public_base_url + urls.STATUS,
            voice_fallback_url=self.public_base_url + urls.FALLBACK,
        )

    def settle_summaries(self, seconds: float = SETTLE_SECONDS) -> None:
        """Let the service's summaries being written in the background finish, for at most SECONDS in all."""
        self.app.extensions["jobs"].wait_idle(seconds)

    def spend(self, seconds: float) -> None:
        """SECONDS pass for a webhook's time budget (a slow answer from Twilio or LiveKit), not on the clock."""
        self.elapsed += seconds

    def close(self) -> None:
        """Give the service its system clock back and stop LiveKit's webhooks."""
        service_clock.use_clock(None)
        service_clock.use_sleeper(None)
        service_clock.use_monotonic(None)
        if self.livekit is not None:
            unwire_livekit(self.livekit)

    def _post_livekit_webhook(self, url: str, body: str, headers: dict) -> int:
        path = url[len(self.public_base_url):]
        response = self.client.post(path, data=body, headers=headers, base_url=self.public_base_url)
        self.livekit_deliveries.append((body, response.status_code))
        response.close()
        return response.status_code

    def _fetch_media(self, url: str):
        # What Twilio would download for a <Play>: the service's own files.
        if not url.startswith(self.public_base_url):
            return None
        response = self.client.get(url[len(self.public_base_url):], base_url=self.public_base_url)
        try:
            return response.get_data() if response.status_code == 200 else None
        finally:
            response.close()

    def load_roster(self, path=None) -> None:
        """Load a roster file (default: the demo roster) into the database."""
        from app.agents.service import DEMO_ROSTER, load_roster, read_roster

        with self.db() as session:
            load_roster(session, read_roster(path or DEMO_ROSTER))

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A database session for looking at (or arranging) state; committed at the end."""
        with session_scope(self.app) as session:
            yield session

    def dial(self, from_number: str = "+15551230001", stir_verstat: str | None = None) -> SimCall:
        """A caller dials the service's number (STIR_VERSTAT: Twilio's StirVerstat for it, if any)."""
        return self.network.incoming_call(from_number, self.number, stir_verstat=stir_verstat)

    def enable_web_calls(self, origins: tuple[str, ...] = ()) -> None:
        """Calling from the website on: an API key and a TwiML App (Voice URL /twilio/voice) at the Twilio
        stand-in, as `flask provision` makes them, and the service told their SIDs and the key's secret."""
        key_sid, secret = self.network.add_api_key()
        app_sid = self.network.add_application("switchboard-web-callers", self.public_base_url + urls.VOICE,
                                               status_callback=self.public_base_url + urls.STATUS,
                                               voice_fallback_url=self.public_base_url + urls.FALLBACK)
        self.app.config["SETTINGS"] = replace(self.app.config["SETTINGS"], twilio_api_key_sid=key_sid,
                                              twilio_api_key_secret=secret, twilio_twiml_app_sid=app_sid,
                                              web_call_origins=origins)

    def web_token(self, name: str = "", reason: str = "", origin: str | None = None, address: str = "203.0.113.7"):
        """A visitor's page asks for a call token (POST /call/token); returns the response."""
        return self.client.post("/call/token", json={"name": name, "reason": reason}, base_url=self.public_base_url,
                                headers={"Origin": origin or self.public_base_url},
                                environ_base={"REMOTE_ADDR": address})

    def web_call(self, name: str = "", reason: str = "") -> SimCall:
        """A visitor on the call page presses Call: a token from the service, then the browser's connect."""
        response = self.web_token(name, reason)
        if response.status_code != 200:
            raise AssertionError(f"no call token: {response.status_code} {response.get_data(as_text=True)}")
        return self.network.client_call(response.get_json()["token"])

    def agent_phone(self, sip_uri: str) -> SimCall:
        """The newest call Twilio placed to this agent's softphone."""
        return self.network.last_call(to=sip_uri)

    def browser_joins(self, room: str, identity: str) -> None:
        """A browser (the agent console) connects to ROOM and publishes its microphone."""
        previous = next((name for name, people in self.livekit.participants.items() if identity in people), None)
        if previous is not None and previous != room:
            self.livekit.leave(previous, identity)
        self.livekit.add_participant(room, identity)
        self.network.run_pending()

    def ringing(self) -> list[SimCall]:
        """Agent legs Twilio is ringing right now."""
        return [call for call in self.network.calls.values() if call.status in ("queued", "ringing")]

    def timeline(self, call_sid: str, livekit: bool = False) -> list[str]:
        """The names of a call's events, oldest first; LiveKit's room events only with LIVEKIT.

        LiveKit's webhooks interleave with Twilio's as they would for real, so
        a test of the call's own steps leaves them out.
        """
        from sqlalchemy import select

        from app.models import Call, Event

        with self.db() as session:
            call = session.scalar(select(Call).where(Call.call_sid == call_sid))
            names = session.scalars(select(Event.name).where(Event.call_id == call.id).order_by(Event.id))
            return [name for name in names if livekit or not name.startswith("livekit_")]
