"""Who asked for a step: the timeline's `by`. A small value handed down from the pages, the console and the
API to the domain, so the domain knows who acted without knowing how they signed in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ActorKind(StrEnum):
    """What kind of someone asked."""

    USER = "user"  # a signed-in user of the pages (a supervisor or an agent): their username
    TOKEN = "token"  # a JSON API client: its API token's name
    PHONE = "phone"  # an agent's phone keys: their extension
    SERVICE = "service"  # the service itself (a callback it places): what did it


@dataclass(frozen=True)
class Actor:
    """Who asked: a user by their username, an API token by its name, a phone by its extension
    (Actor(ActorKind.USER, "alice"))."""

    kind: ActorKind
    name: str

    @property
    def label(self) -> str:
        """How the timeline names them: the username as it is ("alice"), the others with their kind
        ("token:crm", "phone:101", "service:callback")."""
        return self.name if self.kind == ActorKind.USER else f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return self.label


def by_detail(by: Actor | None) -> dict[str, Any]:
    """The timeline detail that says who asked: {"by": label}, or nothing for the service's own steps."""
    return {"by": by.label} if by is not None else {}
