"""How a Twilio leg reaches a LiveKit room: the SIP URI user chooses the room, the caller ID the identity.

The provisioned callee dispatch rule names the room `<prefix>_<URI user>`
(LiveKit inserts the `_`), so choosing the URI user chooses the room.

LiveKit names a SIP participant `sip_` + the INVITE's From user and replaces
a participant whose identity is already in the room (livekit/protocol
`sip/sip.go`, EvaluateDispatchRule; livekit-server `roommanager.go`). A
<Dial> carries the parent call's caller ID unless callerId says otherwise,
and every agent leg is placed from the company number: so every leg dials
with a caller ID of its own (`leg-<id>`), which Twilio accepts for <Sip>
("any alphanumeric string ... +, -, _ and ."), and the leg knows its
LiveKit identity before it joins.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.gateways import IntegrationMissing
from config import Settings

# How long a leg's <Dial> into a room may ring: LiveKit answers a SIP call
# only once it can subscribe to a track there (livekit/sip inbound.go,
# waitSubscribe), so a leg that arrives first rings until the other party
# joins, a second or two for a redirect. Twilio's default is 30 s; this says
# it, with room to spare, within Twilio's 5-600 s.
ROOM_DIAL_TIMEOUT_SECONDS = 60
# How long LiveKit keeps such a call ringing, set on the inbound trunk by
# `flask provision` (its ringing_timeout; livekit/sip's default is 3 minutes,
# `pkg/sip/participant.go`): below the <Dial>'s timeout, so LiveKit refuses a
# call nobody answers in the room with a SIP response of its own (the leg's
# Dial action then says `no-answer` at once), before Twilio gives up and
# cancels it.
TRUNK_RINGING_TIMEOUT_SECONDS = ROOM_DIAL_TIMEOUT_SECONDS - 5


@dataclass(frozen=True)
class SipTarget:
    """What goes in a <Dial><Sip>: the URI and the LiveKit trunk's credentials."""

    uri: str
    username: str
    password: str
    caller_id: str
    dial_timeout: int = ROOM_DIAL_TIMEOUT_SECONDS


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


def leg_caller_id(leg_id: int) -> str:
    """The caller ID a leg's <Dial> into LiveKit carries: the From user LiveKit names it by."""
    return f"leg-{leg_id}"


def leg_identity(leg_id: int) -> str:
    """The LiveKit identity of a leg's SIP participant."""
    return "sip_" + leg_caller_id(leg_id)


def sip_target(settings: Settings, room_user: str, leg_id: int) -> SipTarget:
    """The <Dial><Sip> that puts leg LEG_ID into the room of ROOM_USER."""
    if not settings.livekit_sip_host:
        raise IntegrationMissing("LiveKit SIP is not configured (LIVEKIT_SIP_HOST)")
    return SipTarget(
        uri=f"sip:{room_user}@{settings.livekit_sip_host};transport=tcp",
        username=settings.livekit_sip_username,
        password=settings.livekit_sip_password,
        caller_id=leg_caller_id(leg_id),
    )
