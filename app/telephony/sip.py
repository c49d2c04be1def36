"""How a Twilio leg reaches a LiveKit room: the SIP URI user chooses the room.

The provisioned callee dispatch rule names the room `<prefix>_<URI user>`
(LiveKit inserts the `_`), so choosing the URI user chooses the room.
"""

from __future__ import annotations

from dataclasses import dataclass

from config import Settings


@dataclass(frozen=True)
class SipTarget:
    """What goes in a <Dial><Sip>: the URI and the LiveKit trunk's credentials."""

    uri: str
    username: str
    password: str


def call_room_user(call_id: int) -> str:
    """The SIP URI user (and room suffix) of a call's main room."""
    return str(call_id)


def consult_room_user(call_id: int, transfer_id: int) -> str:
    """The SIP URI user (and room suffix) of a transfer's consult room."""
    return f"{call_id}-consult-{transfer_id}"


def room_name(settings: Settings, room_user: str) -> str:
    """The LiveKit room the dispatch rule creates for this URI user."""
    return f"{settings.livekit_room_prefix}_{room_user}"


def room_user_of(settings: Settings, room: str) -> str:
    """The SIP URI user that leads to ROOM (the inverse of room_name)."""
    prefix = f"{settings.livekit_room_prefix}_"
    if not room.startswith(prefix):
        raise ValueError(f"room {room!r} does not start with {prefix!r}")
    return room[len(prefix):]


def sip_target(settings: Settings, room_user: str) -> SipTarget:
    """The <Sip> noun that puts a Twilio leg into the room of ROOM_USER."""
    if not settings.livekit_sip_host:
        from app.telephony.context import IntegrationMissing

        raise IntegrationMissing("LiveKit SIP is not configured (LIVEKIT_SIP_HOST)")
    return SipTarget(
        uri=f"sip:{room_user}@{settings.livekit_sip_host};transport=tcp",
        username=settings.livekit_sip_username,
        password=settings.livekit_sip_password,
    )
