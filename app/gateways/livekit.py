"""Synchronous gateway to the LiveKit server API, webhooks and join tokens."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol import models

from app.gateways.deadline import capped

T = TypeVar("T")

# Backstop on top of the in-loop deadline, should the loop itself be stuck.
_WAIT_GRACE_SECONDS = 1.0

# What a supervisor may do in a call's room, by mode. Listen: hear, say
# nothing, unseen. Whisper and barge: publish the microphone, and be seen, as
# a publisher must be: the SIP bridge subscribes to a track only when the room
# tells it the track was published (livekit/sip `pkg/sip/room.go`,
# OnTrackPublished, lksdk.WithAutoSubscribe(false)), which it never does for a
# hidden participant. Whisper and barge differ in who may subscribe to the
# supervisor's track, which its publisher sets (see set_supervisor_mode).
SUPERVISOR_GRANTS: dict[str, dict] = {
    "listen": {"can_subscribe": True, "can_publish": False, "can_publish_data": False, "hidden": True},
    "whisper": {"can_subscribe": True, "can_publish": True, "can_publish_data": False, "hidden": False,
                "can_publish_sources": ["microphone"]},
    "barge": {"can_subscribe": True, "can_publish": True, "can_publish_data": False, "hidden": False,
              "can_publish_sources": ["microphone"]},
}

_start_lock = threading.Lock()
# Loops and clients inherited from a parent process: their thread did not
# survive the fork, so they cannot be closed here; holding them keeps their
# finalisers from complaining about a session the parent still owns.
_inherited: list[Any] = []


def _reset_after_fork() -> None:
    global _start_lock
    _start_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class LiveKitError(Exception):
    """A LiveKit API call failed: Twirp error, timeout or connection failure."""

    def __init__(self, method: str, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"LiveKit {method} failed ({code}): {message}")
        self.method = method
        self.code = code
        self.message = message
        self.status = status


class InvalidLiveKitWebhook(Exception):
    """A webhook whose signature or body hash does not check out."""


@dataclass(frozen=True)
class RoomInfo:
    name: str
    sid: str
    empty_timeout_s: int
    departure_timeout_s: int
    metadata: str
    num_participants: int
    created_at: int


@dataclass(frozen=True)
class ParticipantInfo:
    identity: str
    name: str
    kind: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    state: str = "active"
    sid: str = ""
    # Why it left, in a participant_left webhook: livekit.DisconnectReason's name ("participant_removed"),
    # "" when LiveKit gives none.
    disconnect_reason: str = ""


@dataclass(frozen=True)
class InboundTrunk:
    trunk_id: str
    name: str
    auth_username: str
    allowed_addresses: tuple[str, ...]
    numbers: tuple[str, ...]
    allowed_numbers: tuple[str, ...] = ()
    ringing_timeout_s: int = 0  # 0: unset (livekit/sip rings for 3 minutes)


@dataclass(frozen=True)
class DispatchRule:
    rule_id: str
    name: str
    kind: str
    room_prefix: str
    trunk_ids: tuple[str, ...]
    empty_timeout_s: int
    departure_timeout_s: int


@dataclass(frozen=True)
class WebhookEvent:
    """What the service reads of a LiveKit webhook: the event, its id and time, its room and participant."""

    event: str
    event_id: str
    created_at: int
    room: RoomInfo | None
    participant: ParticipantInfo | None


def api_url(url: str) -> str:
    """HTTP(S) base URL of the server API for a ws(s):// or http(s):// LiveKit URL."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a LiveKit URL: {url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _room(room: models.Room) -> RoomInfo:
    return RoomInfo(
        name=room.name,
        sid=room.sid,
        empty_timeout_s=room.empty_timeout,
        departure_timeout_s=room.departure_timeout,
        metadata=room.metadata,
        num_participants=room.num_participants,
        created_at=room.creation_time,
    )


def _participant(info: models.ParticipantInfo) -> ParticipantInfo:
    return ParticipantInfo(
        identity=info.identity,
        name=info.name,
        kind=models.ParticipantInfo.Kind.Name(info.kind).lower(),
        attributes=dict(info.attributes),
        state=models.ParticipantInfo.State.Name(info.state).lower(),
        sid=info.sid,
        disconnect_reason=(models.DisconnectReason.Name(info.disconnect_reason).lower()
                           if info.disconnect_reason else ""),
    )


def _trunk(info: api.SIPInboundTrunkInfo) -> InboundTrunk:
    return InboundTrunk(
        trunk_id=info.sip_trunk_id,
        name=info.name,
        auth_username=info.auth_username,
        allowed_addresses=tuple(info.allowed_addresses),
        numbers=tuple(info.numbers),
        allowed_numbers=tuple(info.allowed_numbers),
        ringing_timeout_s=info.ringing_timeout.seconds if info.HasField("ringing_timeout") else 0,
    )


def _trunk_info(name: str, auth_username: str, auth_password: str, allowed_addresses: Iterable[str],
                ringing_timeout_s: int) -> api.SIPInboundTrunkInfo:
    info = api.SIPInboundTrunkInfo(name=name, auth_username=auth_username, auth_password=auth_password,
                                   allowed_addresses=list(allowed_addresses))
    if ringing_timeout_s:
        info.ringing_timeout.FromSeconds(ringing_timeout_s)
    return info


def _rule(info: api.SIPDispatchRuleInfo) -> DispatchRule:
    kind = info.rule.WhichOneof("rule") or ""
    prefix = getattr(info.rule, kind).room_prefix if kind else ""
    return DispatchRule(
        rule_id=info.sip_dispatch_rule_id,
        name=info.name,
        kind=kind.removeprefix("dispatch_rule_"),
        room_prefix=prefix,
        trunk_ids=tuple(info.trunk_ids),
        empty_timeout_s=info.room_config.empty_timeout,
        departure_timeout_s=info.room_config.departure_timeout,
    )


class LiveKitGateway:
    """Blocking facade over livekit-api, run on one private event loop thread."""

    def __init__(
        self, url: str, api_key: str, api_secret: str, timeout_seconds: float = 5.0
    ) -> None:
        self.url = api_url(url)
        self._api_key = api_key
        self._api_secret = api_secret
        self._timeout = timeout_seconds
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: api.LiveKitAPI | None = None

    def __repr__(self) -> str:
        return f"LiveKitGateway(url={self.url!r}, api_key={self._api_key!r})"

    def __enter__(self) -> "LiveKitGateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and stop the loop thread."""
        with _start_lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
            if loop is None or self._pid != os.getpid():
                return
        try:
            if client is not None:
                asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(self._timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(self._timeout)

    def _started(self) -> tuple[asyncio.AbstractEventLoop, api.LiveKitAPI]:
        with _start_lock:
            if self._loop is not None and self._pid == os.getpid():
                return self._loop, self._client
            if self._loop is not None:
                _inherited.append((self._loop, self._client))
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=_run_loop, args=(loop,), name="livekit-gateway", daemon=True
            )
            thread.start()
            try:
                made = asyncio.run_coroutine_threadsafe(self._make_client(), loop)
                client = made.result(self._timeout)
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(self._timeout)
                raise
            self._loop, self._thread, self._client, self._pid = loop, thread, client, os.getpid()
            return loop, client

    async def _make_client(self) -> api.LiveKitAPI:
        # LiveKitAPI opens its aiohttp session in the constructor, which needs the running loop.
        return api.LiveKitAPI(
            self.url,
            self._api_key,
            self._api_secret,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            failover=False,
        )

    def _call_unless(self, code: str, method: str, action: Callable[[api.LiveKitAPI], Awaitable[object]]) -> bool:
        """Run a call that may fail with CODE (e.g. not_found): True if it ran, False on that code."""
        try:
            self._call(method, action)
        except LiveKitError as exc:
            if exc.code == code:
                return False
            raise
        return True

    def _call(self, method: str, action: Callable[[api.LiveKitAPI], Awaitable[T]]) -> T:
        loop, client = self._started()
        timeout = capped(self._timeout)  # the caller's time budget may allow less (gateways.deadline)

        async def run() -> T:
            # livekit-api passes timeout=None per request, which switches off the
            # session's ClientTimeout, so the deadline is enforced here.
            return await asyncio.wait_for(action(client), timeout)

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result(timeout + _WAIT_GRACE_SECONDS)
        except api.ServerError as exc:
            message = exc.message or f"HTTP {exc.status}"
            raise LiveKitError(method, exc.code, message, exc.status) from None
        except TimeoutError:
            future.cancel()
            message = f"no answer within {timeout:g}s"
            raise LiveKitError(method, "deadline_exceeded", message) from None
        except aiohttp.ClientError as exc:
            raise LiveKitError(method, "unavailable", f"{type(exc).__name__}: {exc}") from None
        except DecodeError:
            message = "answer is not the expected protobuf message"
            raise LiveKitError(method, "malformed", message) from None

    def ensure_room(
        self, name: str, empty_timeout_s: int, departure_timeout_s: int, metadata: str = ""
    ) -> RoomInfo:
        """Create the room, or return it unchanged if it already exists."""
        request = api.CreateRoomRequest(
            name=name,
            empty_timeout=empty_timeout_s,
            departure_timeout=departure_timeout_s,
            metadata=metadata,
        )
        return _room(self._call("CreateRoom", lambda c: c.room.create_room(request)))

    def delete_room(self, name: str) -> bool:
        """Close a room and disconnect everyone; False if it was already gone."""
        request = api.DeleteRoomRequest(room=name)
        return self._call_unless("not_found", "DeleteRoom", lambda c: c.room.delete_room(request))

    def list_rooms(self, names: Iterable[str] | None = None) -> list[RoomInfo]:
        """Active rooms, optionally only those named."""
        request = api.ListRoomsRequest(names=list(names or []))
        response = self._call("ListRooms", lambda c: c.room.list_rooms(request))
        return [_room(r) for r in response.rooms]

    def list_participants(self, room: str) -> list[ParticipantInfo]:
        """Participants currently in a room."""
        request = api.ListParticipantsRequest(room=room)
        response = self._call("ListParticipants", lambda c: c.room.list_participants(request))
        return [_participant(p) for p in response.participants]

    def remove_participant(self, room: str, identity: str) -> bool:
        """Disconnect a participant; False if they had already left."""
        request = api.RoomParticipantIdentity(room=room, identity=identity)
        return self._call_unless("not_found", "RemoveParticipant", lambda c: c.room.remove_participant(request))

    def move_participant(self, room: str, identity: str, destination_room: str) -> bool:
        """Move a participant between rooms; False where the server does not support it."""
        request = api.MoveParticipantRequest(
            room=room, identity=identity, destination_room=destination_room
        )
        return self._call_unless("unimplemented", "MoveParticipant", lambda c: c.room.move_participant(request))

    def browser_token(self, identity: str, name: str, room: str, ttl_seconds: int) -> str:
        """Join token for one room with the least grants a voice console needs: publish its microphone, subscribe.

        No data messages (canPublishData defaults to true when unset), no
        camera or screen share (canPublishSources, when set, supersedes
        canPublish: only the sources named may be published), no metadata
        of its own, nothing about rooms but joining this one (livekit/node-sdks
        src/grants.ts, VideoGrant). A console token that leaks lets its
        holder speak and listen in one room for a minute, nothing more.
        """
        grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                                 can_publish_data=False, can_publish_sources=["microphone"],
                                 can_update_own_metadata=False)
        return self._join_token(identity, name, grants, ttl_seconds)

    def _join_token(self, identity: str, name: str, grants: api.VideoGrants, ttl_seconds: int) -> str:
        return (
            api.AccessToken(self._api_key, self._api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_grants(grants)
            .with_ttl(datetime.timedelta(seconds=ttl_seconds))
            .to_jwt()
        )

    def supervisor_token(self, identity: str, name: str, room: str, ttl_seconds: int) -> str:
        """Join token for a supervisor who listens to one room: subscribe only, hidden, nothing to publish.

        `hidden` keeps the supervisor out of what every other participant is
        told about the room (livekit-server `pkg/rtc/room.go`,
        broadcastParticipantState: a hidden participant's updates go to itself
        only; it is not counted in NumParticipants). Whisper and barge are
        granted later on the connected participant (set_supervisor_mode).
        """
        grants = api.VideoGrants(room_join=True, room=room, **SUPERVISOR_GRANTS["listen"])
        return self._join_token(identity, name, grants, ttl_seconds)

    def set_supervisor_mode(self, room: str, identity: str, mode: str) -> None:
        """Give a connected supervisor the permissions of MODE (listen, whisper or barge), in place.

        UpdateParticipant's `permission` replaces the participant's grants
        whole (livekit/protocol `auth/grants.go`, UpdateFromPermission;
        livekit-server `pkg/rtc/participant.go`, SetPermission, which also
        removes the tracks a revoked publish permission no longer allows).
        Who may hear a whisper is not a grant: the supervisor's page sets its
        track's subscription permissions (app/static/supervise.js).
        """
        grants = SUPERVISOR_GRANTS[mode]
        permission = api.ParticipantPermission(
            can_subscribe=grants["can_subscribe"], can_publish=grants["can_publish"],
            can_publish_data=grants["can_publish_data"], can_publish_sources=[
                models.TrackSource.Value(source.upper()) for source in grants.get("can_publish_sources", [])],
            hidden=grants["hidden"], can_update_metadata=False,
        )
        request = api.UpdateParticipantRequest(room=room, identity=identity, permission=permission)
        self._call("UpdateParticipant", lambda c: c.room.update_participant(request))

    def verify_webhook(self, body: str, authorization: str) -> WebhookEvent:
        """Check a LiveKit webhook's signature, body hash and expiry, and parse it.

        livekit-api's TokenVerifier allows a minute of leeway on both the
        token's nbf and its exp (DEFAULT_LEEWAY in livekit/api/access_token.py),
        so a captured webhook could be replayed for a minute past its expiry.
        The leeway stays for nbf (LiveKit's clock may run a little ahead of
        ours), and the expiry is then checked with none.
        """
        token = (authorization or "").removeprefix("Bearer ").strip()
        receiver = api.WebhookReceiver(api.TokenVerifier(self._api_key, self._api_secret))
        try:
            message = receiver.receive(body, token)
        except Exception as exc:
            # livekit-api raises bare Exception for a hash mismatch, jwt errors for the rest.
            raise InvalidLiveKitWebhook(f"{type(exc).__name__}: {exc}") from None
        expires = _expiry(token)
        if expires is None or expires <= time.time():
            raise InvalidLiveKitWebhook(f"ExpiredSignatureError: the token expired at {expires}")
        return WebhookEvent(
            event=message.event,
            event_id=message.id,
            created_at=message.created_at,
            room=_room(message.room) if message.HasField("room") else None,
            participant=(
                _participant(message.participant) if message.HasField("participant") else None
            ),
        )

    def list_inbound_trunks(self) -> list[InboundTrunk]:
        """All SIP inbound trunks."""
        request = api.ListSIPInboundTrunkRequest()
        response = self._call("ListSIPInboundTrunk", lambda c: c.sip.list_inbound_trunk(request))
        return [_trunk(t) for t in response.items]

    def create_inbound_trunk(
        self, name: str, auth_username: str, auth_password: str, allowed_addresses: Iterable[str],
        ringing_timeout_s: int = 0,
    ) -> InboundTrunk:
        """Create an inbound trunk with no numbers, locked by digest auth and source addresses."""
        request = api.CreateSIPInboundTrunkRequest(
            trunk=_trunk_info(name, auth_username, auth_password, allowed_addresses, ringing_timeout_s))
        created = self._call("CreateSIPInboundTrunk", lambda c: c.sip.create_inbound_trunk(request))
        return _trunk(created)

    def update_inbound_trunk(
        self,
        trunk_id: str,
        *,
        name: str | None = None,
        auth_username: str | None = None,
        auth_password: str | None = None,
        allowed_addresses: Iterable[str] | None = None,
        ringing_timeout_s: int | None = None,
    ) -> InboundTrunk:
        """Change only the given fields of an inbound trunk.

        An empty ALLOWED_ADDRESSES cannot go as a field update: livekit-api's
        update_inbound_trunk_fields sends an empty list update, which LiveKit
        refuses ("unsupported list update operation"; clearing needs
        ListUpdate.clear, which that helper drops). The ringing timeout is no
        field of SIPInboundTrunkUpdate at all. So either replaces the trunk
        whole, and needs NAME, AUTH_USERNAME, AUTH_PASSWORD and ALLOWED_ADDRESSES
        to rebuild it.
        """
        addresses = list(allowed_addresses) if allowed_addresses is not None else None
        if addresses == [] or ringing_timeout_s is not None:
            if name is None or auth_username is None or auth_password is None or addresses is None:
                raise ValueError("replacing the trunk (empty addresses, a ringing timeout): give name, username, "
                                 "password and addresses")
            replacement = _trunk_info(name, auth_username, auth_password, addresses, ringing_timeout_s or 0)
            return _trunk(self._call("UpdateSIPInboundTrunk",
                                     lambda c: c.sip.update_inbound_trunk(trunk_id, replacement)))
        return _trunk(
            self._call(
                "UpdateSIPInboundTrunk",
                lambda c: c.sip.update_inbound_trunk_fields(
                    trunk_id,
                    name=name,
                    auth_username=auth_username,
                    auth_password=auth_password,
                    allowed_addresses=addresses,
                ),
            )
        )

    def delete_inbound_trunk(self, trunk_id: str) -> bool:
        """Delete a trunk; False if it did not exist."""
        request = api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id)
        return self._call_unless("not_found", "DeleteSIPTrunk", lambda c: c.sip.delete_trunk(request))

    def list_dispatch_rules(self) -> list[DispatchRule]:
        """All SIP dispatch rules."""
        request = api.ListSIPDispatchRuleRequest()
        response = self._call("ListSIPDispatchRule", lambda c: c.sip.list_dispatch_rule(request))
        return [_rule(r) for r in response.items]

    def create_callee_dispatch_rule(
        self,
        name: str,
        room_prefix: str,
        trunk_ids: Iterable[str],
        empty_timeout_s: int = 0,
        departure_timeout_s: int = 0,
    ) -> DispatchRule:
        """Rule sending each call to room `<room_prefix>_<called URI user>`."""
        info = api.SIPDispatchRuleInfo(
            name=name,
            trunk_ids=list(trunk_ids),
            rule=api.SIPDispatchRule(
                dispatch_rule_callee=api.SIPDispatchRuleCallee(room_prefix=room_prefix)
            ),
        )
        if empty_timeout_s or departure_timeout_s:
            info.room_config.CopyFrom(
                api.RoomConfiguration(
                    empty_timeout=empty_timeout_s, departure_timeout=departure_timeout_s
                )
            )
        request = api.CreateSIPDispatchRuleRequest(dispatch_rule=info)
        created = self._call("CreateSIPDispatchRule", lambda c: c.sip.create_dispatch_rule(request))
        return _rule(created)

    def delete_dispatch_rule(self, rule_id: str) -> bool:
        """Delete a dispatch rule; False if it did not exist."""
        request = api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule_id)
        return self._call_unless("not_found", "DeleteSIPDispatchRule", lambda c: c.sip.delete_dispatch_rule(request))


def _expiry(token: str) -> float | None:
    """The exp claim of a JWT whose signature was checked already; None if it has none."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        expires = claims.get("exp")
    except (IndexError, ValueError, binascii.Error, AttributeError):
        return None
    return float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else None


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
