"""What a domain step needs to act on a call: the session, the settings, the gateways, the URLs."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from sqlalchemy.orm import Session

from app import clock
from app.gateways import IntegrationMissing
from app.gateways.deadline import at_most
from app.primitives.effects import PendingEffects
from app.telephony.urls import WebhookUrls
from config import Settings

# What a webhook keeps back from its budget for itself: the commit and the answer.
ANSWER_RESERVE_SECONDS = 1.0


@dataclass(frozen=True)
class Budget:
    """How long one webhook may spend on Twilio and LiveKit before its answer must leave (WEBHOOK_BUDGET_SECONDS):
    Twilio waits 15 s for an answer, then takes the fallback URL (error 11200/11205)."""

    deadline: float  # on clock.monotonic()

    @classmethod
    def starting_now(cls, seconds: float) -> "Budget":
        return cls(clock.monotonic() + seconds)

    def left(self) -> float:
        """Seconds a call to Twilio or LiveKit may still take, the answer's reserve kept back."""
        return self.deadline - clock.monotonic() - ANSWER_RESERVE_SECONDS


@dataclass
class Telephony:
    """The tools of one request (or one background job) acting on calls."""

    session: Session
    settings: Settings
    urls: WebhookUrls
    twilio_gateway: object | None
    livekit_gateway: object | None
    summarise_later: Callable[[int], None]
    # Agents made idle during this request: offered waiting calls before it ends.
    freed_agent_ids: set[int] = field(default_factory=set)
    # Calls put back in the queue during this request: offered to the next
    # agent by the request's edge once it has committed.
    requeued_call_ids: set[int] = field(default_factory=set)
    # A callback was put back in line, or a caller let an older callback go first, during this request: the
    # follow-up offers due callbacks to free agents (calls/callbacks.py).
    callbacks_due: bool = False
    # Twilio dials this request may still make: each can take the REST timeout
    # when Twilio is failing, and Twilio gives a webhook 15 s.
    dials_left: int = 2
    # Legs whose dial Twilio refused, with its words (effects.Dial): the
    # edge's follow-up reacts as to a failed call (reactions.dial_refused).
    refused_dials: list[tuple[int, str]] = field(default_factory=list)
    # Twilio requests this request may still repeat after a failure worth
    # retrying (app/primitives/effects.py), within the same 15 s.
    retries_left: int = 2
    # A webhook's time budget (None: a job or a page, with the gateways' own timeouts only): every call to
    # Twilio and LiveKit before the answer draws from it, and the effects it leaves are carried out after.
    budget: Budget | None = None
    # What must happen outside the database once the step is committed
    # (app/primitives/effects.py): the edge carries these out after its commit.
    effects: PendingEffects = field(init=False)

    def __post_init__(self) -> None:
        self.effects = PendingEffects(self.session)

    @property
    def out_of_time(self) -> bool:
        """Whether the webhook's budget is spent: what is left to do waits until its answer has gone."""
        return self.budget is not None and self.budget.left() <= 0

    def time_for(self, seconds: float) -> bool:
        """Whether SECONDS more (a retry's back-off and the retry) still fit in the budget."""
        return self.budget is None or self.budget.left() >= seconds

    @contextmanager
    def within_budget(self) -> Iterator[None]:
        """Calls to Twilio and LiveKit in this block wait no longer than the budget has left."""
        with at_most(self.budget.left() if self.budget is not None else None):
            yield

    @property
    def twilio(self):
        """The Twilio gateway, or IntegrationMissing naming the settings."""
        if self.twilio_gateway is None:
            raise IntegrationMissing("Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)")
        return self.twilio_gateway

    @property
    def livekit(self):
        """The LiveKit gateway, or IntegrationMissing naming the settings."""
        if self.livekit_gateway is None:
            raise IntegrationMissing("LiveKit is not configured (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)")
        return self.livekit_gateway
