"""Subscribers: made, listed and removed by the operator (`flask events …`), each with its own signing secret."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import DeliveryAttempt, EventDelivery, EventSubscriber
from app.outgoing.catalogue import EVENT_TYPES
from app.outgoing.signing import new_secret, seal
from app.text import control_character

# Plain http only to this machine (tests, development): anything else must be https, so that the payloads (callers'
# numbers, summaries) are not read on the way.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SubscriberError(Exception):
    """A subscriber that cannot be made or found, in words."""


def check_url(url: str) -> str:
    """URL, when events may be sent there: https, or http to this machine only."""
    parts = urlsplit(url.strip())
    if not parts.hostname:
        raise SubscriberError(f"{url!r} is not a URL with a host")
    if parts.scheme == "https":
        return url.strip()
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url.strip()
    raise SubscriberError("the URL must be https (plain http only to 127.0.0.1 or localhost, for tests "
                          "and development)")


def check_event_types(types: list[str]) -> list[str]:
    """TYPES in the catalogue's order, each known; at least one."""
    wanted = {t.strip() for t in types if t.strip()}
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise SubscriberError(f"unknown event type {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    if not wanted:
        raise SubscriberError("name at least one event type")
    return [t for t in EVENT_TYPES if t in wanted]


def subscribe(session: Session, name: str, url: str, event_types: list[str], secret_key: str) -> str:
    """Make a subscriber; returns its signing secret (kept sealed, never shown again)."""
    name = name.strip()
    if not name:
        raise SubscriberError("name: a name is needed")
    if control_character(name) or control_character(url):
        raise SubscriberError(f"a control character ({control_character(name) or control_character(url)}) "
                              "is not allowed in a name or a URL")
    if len(name) > 64:
        raise SubscriberError("name: at most 64 characters")
    if session.scalar(select(EventSubscriber).where(EventSubscriber.name == name)) is not None:
        raise SubscriberError(f"a subscriber named {name} exists already")
    if len(url) > 512:
        raise SubscriberError("the URL is longer than 512 characters")
    secret = new_secret()
    session.add(EventSubscriber(name=name, url=check_url(url), event_types=check_event_types(event_types),
                                sealed_secret=seal(secret, secret_key)))
    session.flush()
    return secret


def subscribers(session: Session) -> list[EventSubscriber]:
    """Every subscriber, by name."""
    return list(session.scalars(select(EventSubscriber).order_by(EventSubscriber.name)))


def find_subscriber(session: Session, name: str) -> EventSubscriber:
    """The subscriber named NAME; SubscriberError when there is none."""
    subscriber = session.scalar(select(EventSubscriber).where(EventSubscriber.name == name))
    if subscriber is None:
        raise SubscriberError(f"no subscriber named {name}")
    return subscriber


def remove(session: Session, name: str) -> None:
    """Remove a subscriber, its deliveries not sent yet and its delivery log."""
    subscriber = find_subscriber(session, name)
    ids = select(EventDelivery.id).where(EventDelivery.subscriber_id == subscriber.id)
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
    session.execute(delete(EventDelivery).where(EventDelivery.subscriber_id == subscriber.id))
    session.delete(subscriber)
    session.flush()


def delivery_log(session: Session, name: str, limit: int = 50) -> list[tuple[EventDelivery, list[DeliveryAttempt]]]:
    """A subscriber's latest LIMIT deliveries, newest first, each with its attempts in order."""
    subscriber = find_subscriber(session, name)
    deliveries = list(session.scalars(select(EventDelivery).where(EventDelivery.subscriber_id == subscriber.id)
                                      .order_by(EventDelivery.id.desc()).limit(limit)))
    attempts: dict[int, list[DeliveryAttempt]] = {d.id: [] for d in deliveries}
    for attempt in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(attempts))
                                   .order_by(DeliveryAttempt.id)):
        attempts[attempt.delivery_id].append(attempt)
    return [(delivery, attempts[delivery.id]) for delivery in deliveries]
