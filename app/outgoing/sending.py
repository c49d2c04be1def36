"""Sending a subscriber's deliveries of one call, in order; retrying on a schedule; replaying one.

A (subscriber, call) pair is a *line*: its deliveries go out one at a
time, oldest first, and one that failed holds the ones behind it until it
is delivered or given up, so a subscriber never hears of a call's end
before its answer. The `deliver_events` job sends one line (procrastinate's
lock on the line keeps two jobs of one line from running at once); the
`deliver_due_events` timer queues the lines whose next attempt fell due.

Each attempt is claimed first (a compare-and-set on `claimed_until`,
committed), then sent with no transaction open (a subscriber's slow answer
never holds SQLite's write lock or a PostgreSQL row), then recorded
(committed): two workers never send one delivery at once, and a delivery
answered with a 2xx is never sent again by the service's own retries. A
worker that dies after the subscriber answered and before the record is
committed leaves the delivery to be sent again once its claim is over: the
subscriber sees the same webhook-id twice (Standard Webhooks' receivers
drop a webhook-id already seen).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator
from urllib.parse import urlsplit

import requests
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clock import utcnow
from app.logs import get_logger
from app.models import DeliveryAttempt, DeliveryState, EventDelivery, EventSubscriber
from app.outgoing.signing import SecretUnreadable, signed_headers, unseal

log = get_logger("switchboard.outgoing")

# How long after each failed attempt the next is made (Standard Webhooks' suggested schedule, after the first
# attempt at once): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h; the seventh failed attempt gives the delivery up.
RETRY_AFTER_SECONDS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)
# How long a claimed delivery is left to the worker sending it (longer than any attempt: the timeout is at
# most 30 s); a worker that died is replaced once it is over.
CLAIM_SECONDS = 60
# How much of an error is kept in the delivery log.
ERROR_CHARS = 255


# The moves a delivery's state may make (this module is its one writer): a replay may deliver one given up.
DELIVERY_MOVES = {
    DeliveryState.PENDING: {DeliveryState.DELIVERED, DeliveryState.GIVEN_UP},
    DeliveryState.GIVEN_UP: {DeliveryState.DELIVERED},
    DeliveryState.DELIVERED: set(),
}


def _move(delivery: EventDelivery, to: DeliveryState) -> bool:
    """Move DELIVERY to TO when DELIVERY_MOVES allows it (a delivered one replayed stays delivered)."""
    if to not in DELIVERY_MOVES[DeliveryState(delivery.delivery_state)]:
        return False
    delivery.delivery_state = to
    return True


@dataclass(frozen=True)
class Sender:
    """What sending needs: sessions, the key the secrets are sealed under, the wait for an answer."""

    make_session: sessionmaker
    secret_key: str
    timeout_seconds: float


@dataclass(frozen=True)
class Outcome:
    """One attempt's answer: the HTTP status (None: no answer) and the error in words (None: delivered)."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    message_id: str
    url: str
    secret: str
    body: str


@contextmanager
def _written(sender: Sender) -> Iterator[Session]:
    """A short transaction of its own, committed at once (a claim, an attempt's record)."""
    with sender.make_session() as session:
        yield session
        # The exception to "a step commits once, at its edge": a delivery is not a step on a call (no call's
        # lock is taken), and no transaction may stay open while a subscriber answers, so the claim before a
        # send and the attempt's record after it each commit here (tests/test_architecture.py counts it).
        session.commit()


def _line(subscriber_id: int, call_id: int | None):
    same_call = EventDelivery.call_id.is_(None) if call_id is None else EventDelivery.call_id == call_id
    return (EventDelivery.subscriber_id == subscriber_id) & same_call


def send_line(sender: Sender, subscriber_id: int, call_id: int | None) -> int:
    """Send the line's due deliveries in order until one fails (and will be tried again) or the next is not due;
    how many were delivered. One given up lets the next go."""
    delivered = 0
    while True:
        claimed = _claim_next(sender, subscriber_id, call_id)
        if claimed is None:
            return delivered
        outcome = attempt(claimed.url, claimed.secret, claimed.message_id, claimed.body, sender.timeout_seconds)
        recorded = _record(sender, claimed.delivery_id, outcome, replay=False)
        if outcome.delivered:
            delivered += 1
        elif recorded is None or recorded.delivery_state != DeliveryState.GIVEN_UP:
            return delivered  # to be tried again: the deliveries behind it wait


def _claim_next(sender: Sender, subscriber_id: int, call_id: int | None) -> _Claimed | None:
    now = utcnow()
    with _written(sender) as session:
        head = session.scalar(select(EventDelivery).where(_line(subscriber_id, call_id),
                                                          EventDelivery.delivery_state == DeliveryState.PENDING)
                              .order_by(EventDelivery.id).limit(1))
        if head is None or head.next_attempt_at > now:
            return None  # nothing left, or the head waits for its next attempt (and the line behind it)
        taken = session.execute(
            update(EventDelivery)
            .where(EventDelivery.id == head.id, EventDelivery.delivery_state == DeliveryState.PENDING,
                   or_(EventDelivery.claimed_until.is_(None), EventDelivery.claimed_until <= now))
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)).rowcount
        if taken != 1:
            return None  # another worker is sending it
        subscriber = session.get(EventSubscriber, subscriber_id)
        try:
            secret = unseal(subscriber.sealed_secret, sender.secret_key)
        except SecretUnreadable as error:
            session.add(DeliveryAttempt(delivery_id=head.id, attempted_at=now, error=str(error)))
            head.claimed_until = None
            head.next_attempt_at = now + timedelta(seconds=RETRY_AFTER_SECONDS[-1])
            log.error("event_secret_unreadable", subscriber=subscriber.name, delivery_id=head.id)
            return None
        return _Claimed(head.id, head.message_id, subscriber.url, secret, _body(head))


def _body(delivery: EventDelivery) -> str:
    return json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)


def attempt(url: str, secret: str, message_id: str, body: str, timeout_seconds: float) -> Outcome:
    """POST BODY to URL, signed now; a 2xx is delivered, anything else (a status, a timeout, no connection) fails."""
    headers = signed_headers(secret, message_id, utcnow(), body)
    try:
        response = requests.post(url, data=body.encode(), headers=headers, timeout=timeout_seconds,
                                 allow_redirects=False)
    except requests.Timeout:
        return Outcome(None, f"no answer within {timeout_seconds:g} s")
    except requests.RequestException as error:
        return Outcome(None, _error_words(error, url))
    with response:
        if 200 <= response.status_code < 300:
            return Outcome(response.status_code, None)
        return Outcome(response.status_code, f"HTTP {response.status_code}")


# Where requests names the URL in an error: "… with url: /path?query (Caused by …)".
_NAMED_URL = re.compile(r"(with url: )\S+")


def _error_words(error: requests.RequestException, url: str) -> str:
    """What failed, for the delivery log and the log line, without the subscriber URL's path or query: requests
    names the URL in its errors ("Max retries exceeded with url: /hook?token=…"), and a catch-hook's path or a
    query may carry the subscriber's own secret. The scheme and host stay: they say where it failed."""
    words = f"{type(error).__name__}: {error}"
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query:
        words = words.replace(url, f"{parts.scheme}://{parts.netloc}/…")
    words = _NAMED_URL.sub(r"\1/…", words)
    if parts.query:
        words = words.replace("?" + parts.query, "?…")
    return words[:ERROR_CHARS]


def _record(sender: Sender, delivery_id: int, outcome: Outcome, *, replay: bool) -> EventDelivery | None:
    now = utcnow()
    with _written(sender) as session:
        delivery = session.get(EventDelivery, delivery_id)
        if delivery is None:
            return None  # its subscriber was removed meanwhile
        session.add(DeliveryAttempt(delivery_id=delivery.id, attempted_at=now, status_code=outcome.status_code,
                                    error=outcome.error, replay=replay))
        if not replay:
            delivery.attempts += 1
            delivery.claimed_until = None
        if outcome.delivered:
            if _move(delivery, DeliveryState.DELIVERED):
                delivery.delivered_at = now
            log.info("event_delivered", delivery_id=delivery.id, type=delivery.event_type, replay=replay,
                     status=outcome.status_code)
        elif not replay and delivery.delivery_state == DeliveryState.PENDING:
            if delivery.attempts > len(RETRY_AFTER_SECONDS):
                _move(delivery, DeliveryState.GIVEN_UP)
                log.warning("event_delivery_given_up", delivery_id=delivery.id, attempts=delivery.attempts,
                            error=outcome.error)
            else:
                wait = RETRY_AFTER_SECONDS[delivery.attempts - 1]
                delivery.next_attempt_at = now + timedelta(seconds=wait)
                log.warning("event_delivery_failed", delivery_id=delivery.id, attempts=delivery.attempts,
                            error=outcome.error, retry_in_seconds=wait)
        else:
            log.warning("event_replay_failed", delivery_id=delivery.id, error=outcome.error)
        session.flush()
        session.expunge(delivery)
        return delivery


def replay(sender: Sender, delivery_id: int) -> Outcome:
    """Send one delivery again now, as a new attempt with the same webhook-id (and a fresh timestamp and
    signature); a delivery not delivered yet that is answered with a 2xx is delivered (its line goes on).
    LookupError when there is no such delivery."""
    with sender.make_session() as session:
        delivery = session.get(EventDelivery, delivery_id)
        if delivery is None:
            raise LookupError(f"no delivery {delivery_id}")
        subscriber = session.get(EventSubscriber, delivery.subscriber_id)
        secret = unseal(subscriber.sealed_secret, sender.secret_key)
        claimed = _Claimed(delivery.id, delivery.message_id, subscriber.url, secret, _body(delivery))
    outcome = attempt(claimed.url, claimed.secret, claimed.message_id, claimed.body, sender.timeout_seconds)
    _record(sender, claimed.delivery_id, outcome, replay=True)
    return outcome


def due_lines(session: Session) -> list[tuple[int, int | None]]:
    """The lines whose head delivery is due (a retry whose time came, a job never queued) and claimed by none."""
    now = utcnow()
    heads = (select(func.min(EventDelivery.id)).where(EventDelivery.delivery_state == DeliveryState.PENDING)
             .group_by(EventDelivery.subscriber_id, EventDelivery.call_id))
    rows = session.execute(
        select(EventDelivery.subscriber_id, EventDelivery.call_id)
        .where(EventDelivery.id.in_(heads), EventDelivery.next_attempt_at <= now,
               or_(EventDelivery.claimed_until.is_(None), EventDelivery.claimed_until <= now))
        .order_by(EventDelivery.id))
    return [(subscriber_id, call_id) for subscriber_id, call_id in rows]
