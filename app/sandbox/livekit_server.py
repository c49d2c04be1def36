"""A loopback stand-in for the LiveKit server API, speaking its real wire format.

Twirp over HTTP (`POST /twirp/livekit.<Service>/<Method>`), protobuf or JSON
bodies decoded with livekit-protocol's own messages, and the Bearer JWT checked
the way livekit-server checks it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import jwt
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.api.access_token import AccessToken, Claims, TokenVerifier
from livekit.protocol import models
from livekit.protocol import room as proto_room
from livekit.protocol import rtc as proto_rtc
from livekit.protocol import sip as proto_sip
from livekit.protocol import webhook as proto_webhook

from app.sandbox.clock import VirtualClock
from app.sandbox.livekit_sip import (
    SipCall,
    SipInvite,
    authenticate,
    conflicting_trunk,
    match_dispatch_rule,
    match_trunk,
    participant_attributes,
    participant_identity,
    room_for,
)
from app.sandbox.loopback import LoopbackServing

# livekit-server's defaults when CreateRoom leaves the timeouts at zero
# (livekit/livekit `pkg/config/config.go`, RoomConfig: EmptyTimeout 300 s,
# DepartureTimeout 20 s).
DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20
# How long livekit/sip keeps an inbound call ringing while it waits to
# subscribe to a track in the room, when the trunk sets no ringing_timeout
# (livekit/sip `pkg/sip/participant.go`, defaultRingingTimeout: 3 minutes).
DEFAULT_SIP_RINGING_TIMEOUT = 180
REASON = models.DisconnectReason

_TWIRP_STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}


class TwirpFailure(Exception):
    """A Twirp error answered to the client."""

    def __init__(self, code: str, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status or _TWIRP_STATUS.get(code, 500)


@dataclass(frozen=True)
class RecordedRequest:
    service: str
    method: str
    body: dict
    claims: dict
    status: int
    content_type: str
    request_id: str


@dataclass
class _Fault:
    code: str
    status: int
    times: int


@dataclass
class _Route:
    request_class: type[Message]
    handler: Callable[[Message], Message]
    permission: Callable[[Message, Claims], bool]


def _room_admin(room_of: Callable[[Message], str]) -> Callable[[Message, Claims], bool]:
    def check(req: Message, claims: Claims) -> bool:
        video = claims.video
        return bool(video and video.room_admin and video.room == room_of(req))

    return check


def _room_create(req: Message, claims: Claims) -> bool:
    return bool(claims.video and claims.video.room_create)


def _room_list(req: Message, claims: Claims) -> bool:
    return bool(claims.video and claims.video.room_list)


def _sip_admin(req: Message, claims: Claims) -> bool:
    return bool(claims.sip and claims.sip.admin)


def _move_permission(req: Message, claims: Claims) -> bool:
    video = claims.video
    return bool(
        video
        and video.room_admin
        and video.room == req.room
        and video.destination_room == req.destination_room
    )


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")


def _apply_list_update(target: Any, update: models.ListUpdate) -> None:
    # livekit/protocol `livekit/types.go` (ListUpdate.Validate, applyListUpdate).
    changes = bool(update.add or update.remove)
    if not (update.clear or update.set or changes):
        raise TwirpFailure("invalid_argument", "unsupported list update operation")
    if update.clear and (update.set or changes):
        raise TwirpFailure("invalid_argument", "cannot clear and change the list at the same time")
    if update.set and changes:
        raise TwirpFailure("invalid_argument", "cannot set and change the list at the same time")
    values = list(target)
    if update.clear:
        values = []
    if update.set:
        values = list(update.set)
    values = [v for v in values if v not in set(update.remove)]
    values += [v for v in update.add if v not in values]
    del target[:]
    target.extend(values)


class LiveKitStandIn:
    """In-memory LiveKit RoomService and SIP service on 127.0.0.1."""

    def __init__(self, api_key: str, api_secret: str, clock: VirtualClock | None = None) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.clock = clock or VirtualClock()
        self.support_move = False
        # Where LiveKit sends its webhooks, and how: the sandbox sets a sink
        # that queues each delivery (body, Authorization header).
        self.webhook_url: str | None = None
        self.webhook_sink: Callable[[str, str, dict], None] | None = None
        self.webhooks: list[dict] = []
        self.sip_calls: dict[tuple[str, str], SipCall] = {}
        self._room_timers: dict[str, Any] = {}
        self.requests: list[RecordedRequest] = []
        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, dict[str, models.ParticipantInfo]] = {}
        # Subscriptions, as livekit-server keeps them (`pkg/rtc/subscriptionmanager.go`): what each subscriber
        # asked for, (room, subscriber, publisher, track sid), kept while the permission is missing and served
        # once it is given; every pair that was ever served, so a test can say "never"; and each publisher's
        # track subscription permissions (None: everyone may subscribe).
        self.wanted: set[tuple[str, str, str, str]] = set()
        self.ever_subscribed: set[tuple[str, str, str, str]] = set()
        self.track_permissions: dict[tuple[str, str], dict[str, proto_rtc.TrackPermission] | None] = {}
        self.trunks: dict[str, proto_sip.SIPInboundTrunkInfo] = {}
        self.dispatch_rules: dict[str, proto_sip.SIPDispatchRuleInfo] = {}
        self._lock = threading.RLock()
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, list[float]] = {}
        self._serving = LoopbackServing("livekit-stand-in")
        self._stopping = self._serving.stopping
        self._connections: set[socket.socket] = set()
        self._routes = self._build_routes()

    @property
    def url(self) -> str:
        """Base URL of the running stand-in."""
        return self._serving.address

    def start(self) -> "LiveKitStandIn":
        """Listen on an ephemeral loopback port in a daemon thread."""
        if self._serving.server is not None:
            return self
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._serving.start(server)
        return self

    def stop(self) -> None:
        """Stop serving and drop every open client connection."""
        self._serving.stop(wake=self._drop_connections)

    def _drop_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        # Keep-alive handlers block reading the next request; a shutdown wakes
        # them so they close their own sockets.
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "LiveKitStandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(
        self, method: str, code: str = "internal", status: int = 500, times: int = 1
    ) -> None:
        """Answer the next `times` calls of `method` with a Twirp error."""
        with self._lock:
            self._faults.setdefault(method, []).append(_Fault(code, status, times))

    def delay_next(self, method: str, seconds: float) -> None:
        """Hold the next call of `method` for `seconds` before answering it."""
        with self._lock:
            self._delays.setdefault(method, []).append(seconds)

    def abort_connection(self, room: str, identity: str) -> None:
        """A participant (a browser whose media never connects) signals to join ROOM but never becomes active.

        livekit-server sends `participant_joined` only once a participant is
        active, and on its departure `participant_left` only if it was
        (`pkg/telemetry/events.go`: ParticipantActive, ParticipantLeft);
        later releases send `participant_connection_aborted` for one that
        never was, which is what this sends. The participant is never listed
        in the room.
        """
        with self._lock:
            info = models.ParticipantInfo(sid=_new_id("PA_"), identity=identity,
                                          state=models.ParticipantInfo.DISCONNECTED,
                                          disconnect_reason=REASON.CONNECTION_TIMEOUT)
            self._emit("participant_connection_aborted", room, info)

    def add_participant(
        self,
        room: str,
        identity: str,
        kind: str = "standard",
        attributes: dict[str, str] | None = None,
        name: str = "",
        metadata: str = "",
        publish: bool = True,
    ) -> models.ParticipantInfo:
        """A participant joins ROOM (a browser, say), creating the room if needed, and publishes audio."""
        with self._lock:
            info = self._join(room, identity, kind=kind, attributes=attributes, name=name, metadata=metadata)
            if publish:
                self._publish(room, identity)
            return info

    def close_room(self, room: str) -> None:
        """LiveKit ends a room on its own (a node restart, someone in the dashboard): every SIP call in it ends."""
        with self._lock:
            if room in self.rooms:
                self._close_room(room)

    def drop_participant(self, room: str, identity: str, reason: str = "PARTICIPANT_REMOVED") -> None:
        """LiveKit ends a participant on its own: RemoveParticipant from the dashboard or another tool, a node
        stopping (SERVER_SHUTDOWN), a lost connection (CONNECTION_TIMEOUT). A SIP participant's call is hung
        up; `participant_left` carries REASON (a livekit.DisconnectReason name)."""
        with self._lock:
            self._leave(room, identity, REASON.Value(reason))

    def leave(self, room: str, identity: str) -> None:
        """A participant leaves ROOM by itself (a browser tab closed)."""
        with self._lock:
            self._leave(room, identity, REASON.CLIENT_INITIATED)

    def join_with_token(self, token: str) -> models.ParticipantInfo:
        """A browser connects with TOKEN (one the service issued) and publishes nothing yet.

        The token is checked as livekit-server checks a join (`pkg/service/auth.go`; `roomJoin` for the room it
        names), and the participant's permissions are its grants (`pkg/rtc/participant.go`: ClaimGrants), the
        `hidden` grant included.
        """
        claims = TokenVerifier(self.api_key, self.api_secret).verify(token)
        video = claims.video
        if not (video and video.room_join and video.room):
            raise PermissionError("the token does not grant joining a room")
        sources = [models.TrackSource.Value(s.upper()) for s in (video.can_publish_sources or [])]
        permission = models.ParticipantPermission(
            can_subscribe=video.can_subscribe, can_publish=video.can_publish, can_publish_data=video.can_publish_data,
            can_publish_sources=sources, hidden=bool(video.hidden),
            can_update_metadata=bool(video.can_update_own_metadata))
        with self._lock:
            return self._join(video.room, claims.identity, name=claims.name or "", attributes=claims.attributes,
                              permission=permission)

    def publish(self, room: str, identity: str) -> models.TrackInfo:
        """A participant publishes its microphone; PermissionError when its grants do not allow it.

        livekit-server refuses a track whose source the participant may not publish (`pkg/rtc/participant.go`,
        AddTrack: CanPublishSource).
        """
        with self._lock:
            info = self._participant(room, identity)
            if not _may_publish(info, models.TrackSource.MICROPHONE):
                raise PermissionError(f"{identity} may not publish its microphone")
            self._publish(room, identity)
            return info.tracks[0]

    def set_subscription_permissions(self, room: str, identity: str, all_participants: bool,
                                     allowed: list[str] = ()) -> None:
        """The publisher IDENTITY says who may subscribe to its tracks, as livekit-client's
        setTrackSubscriptionPermissions(allParticipants, [{participantIdentity, allowAll: true}]) does.

        livekit-server (`pkg/rtc/uptrackmanager.go`, UpdateSubscriptionPermission, hasPermissionLocked):
        every update replaces the last; all_participants lifts every restriction; otherwise only the
        identities listed may subscribe, and subscribers no longer allowed are cut off at once
        (maybeRevokeSubscriptions). Only the publisher's own connection can send this: RoomService has no
        method that sets it for another participant.
        """
        with self._lock:
            self._participant(room, identity)
            self.track_permissions[(room, identity)] = None if all_participants else {
                who: proto_rtc.TrackPermission(participant_identity=who, all_tracks=True) for who in allowed}
            self._settle(room)

    def subscribed(self, room: str, subscriber: str, publisher: str) -> bool:
        """Whether SUBSCRIBER receives a track of PUBLISHER in ROOM now."""
        with self._lock:
            return any(self._served(room, s, p, sid) for (r, s, p, sid) in self.wanted
                       if (r, s, p) == (room, subscriber, publisher))

    def ever_subscribed_to(self, room: str, subscriber: str, publisher: str) -> bool:
        """Whether SUBSCRIBER has received a track of PUBLISHER in ROOM at any moment."""
        with self._lock:
            return any((r, s, p) == (room, subscriber, publisher) for (r, s, p, _) in self.ever_subscribed)

    # --- rooms and participants, as livekit-server runs them --------------------------

    def _join(self, room: str, identity: str, *, kind: str = "standard", attributes: dict[str, str] | None = None,
              name: str = "", metadata: str = "",
              permission: models.ParticipantPermission | None = None) -> models.ParticipantInfo:
        self._create_room(proto_room.CreateRoomRequest(name=room))
        present = self.participants.setdefault(room, {})
        if identity in present:
            # livekit-server (`pkg/rtc/room.go`, Join): a participant joining
            # with an identity already in the room replaces the one there,
            # which is closed with DUPLICATE_IDENTITY.
            self._leave(room, identity, REASON.DUPLICATE_IDENTITY)
        now = self.clock.now().timestamp()
        info = models.ParticipantInfo(
            sid=_new_id("PA_"),
            identity=identity,
            name=name,
            metadata=metadata,
            state=models.ParticipantInfo.ACTIVE,
            kind=models.ParticipantInfo.Kind.Value(kind.upper()),
            attributes=attributes or {},
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
        )
        if permission is not None:
            info.permission.CopyFrom(permission)
        present[identity] = info
        self._count(room)
        self._cancel_room_timer(room)
        self._emit("participant_joined", room, info)
        self._settle(room)
        return info

    def _count(self, room: str) -> None:
        # A hidden participant is not counted (livekit-server `pkg/rtc/room.go`: NumParticipants moves only
        # for participants that are not Hidden()).
        present = self.participants.get(room, {})
        self.rooms[room].num_participants = sum(1 for p in present.values() if not _hidden(p))
        self.rooms[room].num_publishers = sum(1 for p in present.values() if p.tracks)

    def _publish(self, room: str, identity: str) -> None:
        info = self.participants.get(room, {}).get(identity)
        if info is None or info.tracks:
            return
        track = models.TrackInfo(sid=_new_id("TR_"), type=models.TrackType.AUDIO, name="audio",
                                 source=models.TrackSource.MICROPHONE)
        info.tracks.append(track)
        self._count(room)
        self._emit("track_published", room, info, track=track)
        self._settle(room)

    def _settle(self, room: str) -> None:
        """Subscribe who asks to what they may receive, as livekit-server and the SIP bridge do.

        A browser (livekit-client, autoSubscribe on) is subscribed by the server to every track published
        in the room (`pkg/rtc/room.go`, onTrackPublished and the join's subscribeToExistingTracks). The SIP
        bridge subscribes to every audio track the room tells it of (livekit/sip `pkg/sip/room.go`:
        WithAutoSubscribe(false), then subscribeTo on OnTrackPublished), and the room tells nobody of a
        hidden participant (`pkg/rtc/room.go`, broadcastParticipantState). A subscription asked for is
        served while the publisher's permissions allow it (`pkg/rtc/room.go`, ResolveMediaTrackForSubscriber:
        HasPermission) and the subscriber may subscribe (`pkg/rtc/participant.go`, SetPermission: a revoked
        canSubscribe drops every subscription).
        """
        present = self.participants.get(room, {})
        for sub_id, sub in present.items():
            for pub_id, pub in present.items():
                if pub_id == sub_id or (sub.kind == models.ParticipantInfo.SIP and _hidden(pub)):
                    continue
                for track in pub.tracks:
                    if track.type == models.TrackType.AUDIO or sub.kind != models.ParticipantInfo.SIP:
                        self.wanted.add((room, sub_id, pub_id, track.sid))
        for key in self.wanted:
            if key[0] == room and self._served(*key):
                self.ever_subscribed.add(key)
        self._answer_ringing(room)

    def _served(self, room: str, subscriber: str, publisher: str, track_sid: str) -> bool:
        present = self.participants.get(room, {})
        sub, pub = present.get(subscriber), present.get(publisher)
        if sub is None or pub is None or not any(t.sid == track_sid for t in pub.tracks):
            return False
        if sub.HasField("permission") and not sub.permission.can_subscribe:
            return False
        allowed = self.track_permissions.get((room, publisher))
        if allowed is None:
            return True
        perms = allowed.get(subscriber)
        return perms is not None and (perms.all_tracks or track_sid in perms.track_sids)

    def _answer_ringing(self, room: str) -> None:
        # livekit/sip `pkg/sip/inbound.go`: the INVITE is answered (200 OK)
        # once the SIP participant is subscribed to a track of someone else.
        for (where, identity), call in list(self.sip_calls.items()):
            if where != room or call.state != "ringing":
                continue
            if not any(self._served(*key) for key in self.wanted if key[0] == room and key[1] == identity):
                continue
            call.state = "active"
            if call.ringing_timer is not None:
                call.ringing_timer.cancel()
            info = self.participants[room][identity]
            info.attributes["sip.callStatus"] = "active"
            call.on_answer()

    def _leave(self, room: str, identity: str, reason: int) -> None:
        present = self.participants.get(room, {})
        info = present.pop(identity, None)
        if info is None:
            return
        info.state = models.ParticipantInfo.DISCONNECTED
        info.disconnect_reason = reason
        self.track_permissions.pop((room, identity), None)
        self.wanted = {key for key in self.wanted if key[0] != room or identity not in key[1:3]}
        if room in self.rooms:
            self._count(room)
        if reason != REASON.CLIENT_INITIATED:
            # LiveKit ended the participant itself: the server reports it, and
            # the SIP bridge learns of it from its room connection and only
            # then sends its BYE (livekit/sip `pkg/sip/inbound.go`, the
            # lkRoom.Closed() case of waitForCallEnd). A SIP call that ends by
            # its own BYE (a `*` through Twilio) is reported after it, below.
            self._emit("participant_left", room, info)
        call = self.sip_calls.pop((room, identity), None)
        if call is not None and call.live:
            # The SIP side of a participant that leaves is hung up: a BYE to
            # an answered call, 486 to a ringing one (livekit/sip
            # `pkg/sip/inbound.go`, waitForCallEnd and closeWithHangup).
            call.state = "ended"
            if call.ringing_timer is not None:
                call.ringing_timer.cancel()
            call.on_bye(REASON.Name(reason))
        if reason == REASON.CLIENT_INITIATED:
            self._emit("participant_left", room, info)
        if not present and room in self.rooms:
            # livekit-server closes a room departure_timeout after the last
            # participant left (`pkg/rtc/room.go`, CloseIfEmpty); a SIP
            # participant alone keeps it open.
            timeout = self.rooms[room].departure_timeout or DEFAULT_DEPARTURE_TIMEOUT
            self._set_room_timer(room, timeout)

    def _set_room_timer(self, room: str, seconds: int) -> None:
        self._cancel_room_timer(room)

        def close() -> None:
            with self._lock:
                if room in self.rooms and not self.participants.get(room):
                    self._close_room(room)

        self._room_timers[room] = self.clock.call_later(seconds, close, f"livekit room {room} closes when empty")

    def _cancel_room_timer(self, room: str) -> None:
        timer = self._room_timers.pop(room, None)
        if timer is not None:
            timer.cancel()

    def _close_room(self, room: str) -> None:
        for identity in list(self.participants.get(room, {})):
            self._leave(room, identity, REASON.ROOM_DELETED)
        self._cancel_room_timer(room)
        found = self.rooms.pop(room, None)
        self.participants.pop(room, None)
        if found is not None:
            self._emit("room_finished", room, None, room_info=found)

    # --- SIP ------------------------------------------------------------------------------

    def sip_invite(self, invite: SipInvite, on_answer: Callable[[], None], on_bye: Callable[[str], None]) -> SipCall:
        """An INVITE reaches LiveKit's SIP service: the call rings in its room, or SipRejected.

        ON_ANSWER runs when LiveKit answers (200 OK); ON_BYE when LiveKit ends
        the call (the participant was replaced or removed, the room closed,
        nobody published a track before the ringing timeout).
        """
        with self._lock:
            trunk = match_trunk(list(self.trunks.values()), invite)
            if trunk is not None:
                authenticate(trunk, invite)
            rule = match_dispatch_rule(list(self.dispatch_rules.values()), trunk, invite)
            room = room_for(rule, invite)
            identity = participant_identity(invite)
            attributes = dict(rule.attributes)
            attributes.update(participant_attributes(invite, trunk, rule))
            self._create_room(proto_room.CreateRoomRequest(
                name=room,
                empty_timeout=rule.room_config.empty_timeout if rule.HasField("room_config") else 0,
                departure_timeout=rule.room_config.departure_timeout if rule.HasField("room_config") else 0,
            ))
            self._join(room, identity, kind="sip", attributes=attributes, name=f"Phone {invite.from_user}")
            call = SipCall(invite, room, identity, on_answer, on_bye)
            self.sip_calls[(room, identity)] = call
            ringing = trunk.ringing_timeout.seconds if trunk is not None and trunk.HasField("ringing_timeout") else 0

            def give_up() -> None:
                with self._lock:
                    if call.state == "ringing" and self.sip_calls.get((room, identity)) is call:
                        self._leave(room, identity, REASON.USER_UNAVAILABLE)

            call.ringing_timer = self.clock.call_later(
                ringing or DEFAULT_SIP_RINGING_TIMEOUT, give_up, f"livekit sip ringing {identity}")
            # The SIP participant publishes its own audio on joining, so two
            # ringing calls in one room answer each other.
            self._publish(room, identity)
            return call

    def sip_hangup(self, call: SipCall) -> None:
        """The far end (Twilio) hangs up or cancels the SIP call: its participant leaves."""
        with self._lock:
            if not call.live:
                return
            call.state = "ended"
            if call.ringing_timer is not None:
                call.ringing_timer.cancel()
            self.sip_calls.pop((call.room, call.identity), None)
            self._leave(call.room, call.identity, REASON.CLIENT_INITIATED)

    def sip_participants(self, room: str) -> list[models.ParticipantInfo]:
        """The SIP participants in ROOM now."""
        with self._lock:
            return [p for p in self.participants.get(room, {}).values() if p.kind == models.ParticipantInfo.SIP]

    # --- webhooks -----------------------------------------------------------------------

    def _emit(self, event: str, room: str, participant: models.ParticipantInfo | None, *,
              track: models.TrackInfo | None = None, room_info: models.Room | None = None) -> None:
        """Queue the signed webhook livekit-server sends for EVENT (`pkg/service/webhook`, `pkg/telemetry`)."""
        message = proto_webhook.WebhookEvent(
            event=event, id=_new_id("EV_"), created_at=int(self.clock.now().timestamp()),
        )
        found = room_info or self.rooms.get(room)
        if found is not None:
            message.room.CopyFrom(found)
        else:
            message.room.CopyFrom(models.Room(name=room))
        if participant is not None:
            message.participant.CopyFrom(participant)
        if track is not None:
            message.track.CopyFrom(track)
        body = json_format.MessageToJson(message, indent=None)
        self.webhooks.append({"event": event, "room": room,
                              "identity": participant.identity if participant else None, "body": body})
        if self.webhook_url and self.webhook_sink is not None:
            # protocol `webhook/resource_url_notifier.go`: the raw JWT (no
            # "Bearer"), with the body's sha256 as a claim.
            headers = {"Authorization": sign_webhook(body, self.api_key, self.api_secret),
                       "Content-Type": "application/webhook+json", "User-Agent": "LiveKit"}
            self.webhook_sink(self.webhook_url, body, headers)

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded requests of one method, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def _build_routes(self) -> dict[tuple[str, str], _Route]:
        r, s = proto_room, proto_sip
        by_room, sip = _room_admin(lambda req: req.room), _sip_admin
        table = [
            ("RoomService", "CreateRoom", r.CreateRoomRequest, self._create_room_handler, _room_create),
            ("RoomService", "ListRooms", r.ListRoomsRequest, self._list_rooms, _room_list),
            ("RoomService", "DeleteRoom", r.DeleteRoomRequest, self._delete_room, _room_create),
            ("RoomService", "ListParticipants", r.ListParticipantsRequest, self._list, by_room),
            ("RoomService", "GetParticipant", r.RoomParticipantIdentity, self._get, by_room),
            ("RoomService", "RemoveParticipant", r.RoomParticipantIdentity, self._remove, by_room),
            ("RoomService", "MoveParticipant", r.MoveParticipantRequest, self._move, _move_permission),
            ("RoomService", "UpdateParticipant", r.UpdateParticipantRequest, self._update, by_room),
            ("RoomService", "UpdateRoomMetadata", r.UpdateRoomMetadataRequest, self._metadata, by_room),
            ("SIP", "ListSIPInboundTrunk", s.ListSIPInboundTrunkRequest, self._list_trunks, sip),
            ("SIP", "CreateSIPInboundTrunk", s.CreateSIPInboundTrunkRequest, self._create_trunk, sip),
            ("SIP", "UpdateSIPInboundTrunk", s.UpdateSIPInboundTrunkRequest, self._update_trunk, sip),
            ("SIP", "DeleteSIPTrunk", s.DeleteSIPTrunkRequest, self._delete_trunk, sip),
            ("SIP", "ListSIPDispatchRule", s.ListSIPDispatchRuleRequest, self._list_rules, sip),
            ("SIP", "CreateSIPDispatchRule", s.CreateSIPDispatchRuleRequest, self._create_rule, sip),
            ("SIP", "UpdateSIPDispatchRule", s.UpdateSIPDispatchRuleRequest, self._update_rule, sip),
            ("SIP", "DeleteSIPDispatchRule", s.DeleteSIPDispatchRuleRequest, self._delete_rule, sip),
        ]
        return {(svc, name): _Route(cls, handler, check) for svc, name, cls, handler, check in table}

    def _serve(self, path: str, headers: Any, raw: bytes) -> tuple[int, str, bytes]:
        """Answer one Twirp call: (status, content type, body)."""
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        prefix = "/twirp/livekit."
        service, method = "", ""
        if path.startswith(prefix):
            service, _, method = path[len(prefix):].partition("/")
        route = self._routes.get((service, method))
        if route is None:
            return _twirp_error(TwirpFailure("bad_route", f"no handler for path {path!r}"))
        if content_type not in ("application/protobuf", "application/json"):
            failure = TwirpFailure("bad_route", f"unexpected Content-Type: {content_type!r}")
            return _twirp_error(failure)

        request: Message = route.request_class()
        payload: dict = {}
        status, answer = 200, b""
        try:
            claims, payload, auth_error = self._authenticate(headers.get("Authorization"))
            if auth_error is not None:
                # livekit-server's auth middleware answers a bad token in plain
                # text, not in Twirp's JSON shape.
                status, content_type = 401, "text/plain; charset=utf-8"
                answer = (auth_error + "\n").encode()
                return status, content_type, answer
            try:
                if content_type == "application/json":
                    json_format.Parse(raw.decode() or "{}", request, ignore_unknown_fields=True)
                else:
                    request.ParseFromString(raw)
            except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
                raise TwirpFailure("malformed", f"failed to parse request: {exc}") from None
            if not route.permission(request, claims):
                # livekit-server wraps grant failures as unauthenticated, not permission_denied.
                raise TwirpFailure("unauthenticated", "permissions denied")
            self._maybe_delay(method)
            self._maybe_fail(method)
            with self._lock:
                response = route.handler(request)
            if content_type == "application/json":
                answer = json_format.MessageToJson(response).encode()
            else:
                answer = response.SerializeToString()
        except TwirpFailure as failure:
            status, content_type, answer = _twirp_error(failure)
        finally:
            with self._lock:
                self.requests.append(
                    RecordedRequest(
                        service=service,
                        method=method,
                        body=json_format.MessageToDict(request, preserving_proto_field_name=True),
                        claims=payload,
                        status=status,
                        content_type=headers.get("Content-Type") or "",
                        request_id=headers.get("X-Livekit-Request-Id") or "",
                    )
                )
        return status, content_type, answer

    def _authenticate(self, header: str | None) -> tuple[Claims, dict, str | None]:
        if not header:
            # No token at all reaches the service with no grants, as on the real server.
            return Claims(), {}, None
        if not header.startswith("Bearer "):
            return Claims(), {}, "permissions denied: missing authorization"
        token = header[len("Bearer "):]
        try:
            claims = TokenVerifier(self.api_key, self.api_secret).verify(token)
            payload = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            return Claims(), {}, f"invalid token: {exc}"
        return claims, payload, None

    def _maybe_delay(self, method: str) -> None:
        with self._lock:
            pending = self._delays.get(method)
            seconds = pending.pop(0) if pending else 0.0
        if seconds:
            self._stopping.wait(seconds)

    def _maybe_fail(self, method: str) -> None:
        with self._lock:
            pending = self._faults.get(method)
            if not pending:
                return
            fault = pending[0]
            fault.times -= 1
            if fault.times <= 0:
                pending.pop(0)
        raise TwirpFailure(fault.code, f"injected {fault.code}", fault.status)

    def _create_room(self, req: proto_room.CreateRoomRequest) -> models.Room:
        existing = self.rooms.get(req.name)
        if existing is not None:
            return existing
        now = self.clock.now().timestamp()
        created = models.Room(
            sid=_new_id("RM_"),
            name=req.name,
            empty_timeout=req.empty_timeout or DEFAULT_EMPTY_TIMEOUT,
            departure_timeout=req.departure_timeout or DEFAULT_DEPARTURE_TIMEOUT,
            max_participants=req.max_participants,
            metadata=req.metadata,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
        )
        self.rooms[req.name] = created
        self.participants.setdefault(req.name, {})
        self._emit("room_started", req.name, None)
        # A room nobody joins closes after its empty timeout.
        self._set_room_timer(req.name, created.empty_timeout)
        return created

    def _create_room_handler(self, req: proto_room.CreateRoomRequest) -> models.Room:
        if not req.name:
            raise TwirpFailure("invalid_argument", "room name cannot be empty")
        return self._create_room(req)

    def _list_rooms(self, req: proto_room.ListRoomsRequest) -> Message:
        names = set(req.names)
        rooms = [r for n, r in self.rooms.items() if not names or n in names]
        return proto_room.ListRoomsResponse(rooms=rooms)

    def _delete_room(self, req: proto_room.DeleteRoomRequest) -> Message:
        if req.room not in self.rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        # Every participant is disconnected, SIP calls included (their callers
        # hear a BYE), and room_finished is sent.
        self._close_room(req.room)
        return proto_room.DeleteRoomResponse()

    def _participant(self, room: str, identity: str) -> models.ParticipantInfo:
        info = self.participants.get(room, {}).get(identity)
        if info is None:
            raise TwirpFailure("not_found", "participant does not exist")
        return info

    def _list(self, req: proto_room.ListParticipantsRequest) -> Message:
        # livekit-server `pkg/service/roomservice.go`: a room that does not
        # exist (closed, deleted) is not_found, not an empty list.
        if req.room not in self.rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        present = self.participants.get(req.room, {})
        return proto_room.ListParticipantsResponse(participants=list(present.values()))

    def _get(self, req: proto_room.RoomParticipantIdentity) -> Message:
        return self._participant(req.room, req.identity)

    def _remove(self, req: proto_room.RoomParticipantIdentity) -> Message:
        self._participant(req.room, req.identity)
        self._leave(req.room, req.identity, REASON.PARTICIPANT_REMOVED)
        return proto_room.RemoveParticipantResponse()

    def _move(self, req: proto_room.MoveParticipantRequest) -> Message:
        if not self.support_move:
            raise TwirpFailure("unimplemented", "not implemented")
        info = self._participant(req.room, req.identity)
        if req.destination_room not in self.rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        del self.participants[req.room][req.identity]
        self.participants[req.destination_room][req.identity] = info
        for name in (req.room, req.destination_room):
            self._count(name)
        return proto_room.MoveParticipantResponse()

    def _update(self, req: proto_room.UpdateParticipantRequest) -> Message:
        info = self._participant(req.room, req.identity)
        if req.metadata:
            info.metadata = req.metadata
        if req.name:
            info.name = req.name
        for key, value in req.attributes.items():
            # An empty value deletes the attribute, as on the real server.
            if value:
                info.attributes[key] = value
            else:
                info.attributes.pop(key, None)
        if req.HasField("permission"):
            # The permission replaces the participant's grants whole (livekit/protocol `auth/grants.go`,
            # UpdateFromPermission); tracks it may no longer publish are removed, and subscriptions follow
            # canSubscribe (livekit-server `pkg/rtc/participant.go`, SetPermission).
            info.permission.CopyFrom(req.permission)
            for track in list(info.tracks):
                if not _may_publish(info, track.source):
                    info.tracks.remove(track)
                    self._emit("track_unpublished", req.room, info, track=track)
            self._count(req.room)
            self._settle(req.room)
        return info

    def _metadata(self, req: proto_room.UpdateRoomMetadataRequest) -> Message:
        found = _requested(self.rooms, req.room, "room")
        found.metadata = req.metadata
        return found

    def _list_trunks(self, req: proto_sip.ListSIPInboundTrunkRequest) -> Message:
        wanted = set(req.trunk_ids)
        items = [t for i, t in self.trunks.items() if not wanted or i in wanted]
        return proto_sip.ListSIPInboundTrunkResponse(items=items)

    def _create_trunk(self, req: proto_sip.CreateSIPInboundTrunkRequest) -> Message:
        if req.trunk.sip_trunk_id:
            raise TwirpFailure("invalid_argument", "trunk ID must not be set")
        trunk = proto_sip.SIPInboundTrunkInfo()
        trunk.CopyFrom(req.trunk)
        trunk.sip_trunk_id = _new_id("ST_")
        self._refuse_conflict(trunk)
        trunk.created_at.GetCurrentTime()
        self.trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _update_trunk(self, req: proto_sip.UpdateSIPInboundTrunkRequest) -> Message:
        trunk = _requested(self.trunks, req.sip_trunk_id, "sip trunk")
        changed = proto_sip.SIPInboundTrunkInfo()
        changed.CopyFrom(trunk)
        if req.HasField("replace"):
            changed.CopyFrom(req.replace)
            changed.sip_trunk_id = req.sip_trunk_id
            changed.created_at.CopyFrom(trunk.created_at)
        else:
            update = req.update
            for name in ("numbers", "allowed_addresses", "allowed_numbers"):
                if update.HasField(name):
                    _apply_list_update(getattr(changed, name), getattr(update, name))
            for name in ("auth_username", "auth_password", "auth_realm", "name", "metadata"):
                if update.HasField(name):
                    setattr(changed, name, getattr(update, name))
        self._refuse_conflict(changed)
        trunk.CopyFrom(changed)
        trunk.updated_at.GetCurrentTime()
        return trunk

    def _refuse_conflict(self, candidate: proto_sip.SIPInboundTrunkInfo) -> None:
        other = conflicting_trunk(list(self.trunks.values()), candidate)
        if other is not None:
            numbers = ", ".join(candidate.numbers) or "<none>"
            raise TwirpFailure("invalid_argument", f"Conflicting inbound SIP Trunks: {candidate.sip_trunk_id!r} and "
                               f"{other.sip_trunk_id!r}, using the same number(s) {numbers} without AllowedNumbers set")

    def _delete_trunk(self, req: proto_sip.DeleteSIPTrunkRequest) -> Message:
        trunk = _requested(self.trunks, req.sip_trunk_id, "sip trunk", take=True)
        return proto_sip.SIPTrunkInfo(
            sip_trunk_id=trunk.sip_trunk_id, name=trunk.name, metadata=trunk.metadata
        )

    def _list_rules(self, req: proto_sip.ListSIPDispatchRuleRequest) -> Message:
        ids, trunks = set(req.dispatch_rule_ids), set(req.trunk_ids)
        items = [
            r
            for i, r in self.dispatch_rules.items()
            if (not ids or i in ids) and (not trunks or trunks & set(r.trunk_ids))
        ]
        return proto_sip.ListSIPDispatchRuleResponse(items=items)

    def _create_rule(self, req: proto_sip.CreateSIPDispatchRuleRequest) -> Message:
        rule = proto_sip.SIPDispatchRuleInfo()
        if req.HasField("dispatch_rule"):
            rule.CopyFrom(req.dispatch_rule)
        else:
            # Older clients send the rule as loose top-level fields.
            rule.rule.CopyFrom(req.rule)
            rule.trunk_ids.extend(req.trunk_ids)
            rule.hide_phone_number = req.hide_phone_number
            rule.inbound_numbers.extend(req.inbound_numbers)
            rule.name = req.name
            rule.metadata = req.metadata
            rule.attributes.update(req.attributes)
            rule.room_preset = req.room_preset
            if req.HasField("room_config"):
                rule.room_config.CopyFrom(req.room_config)
        if rule.sip_dispatch_rule_id:
            raise TwirpFailure("invalid_argument", "rule ID must not be set")
        if rule.rule.WhichOneof("rule") is None:
            raise TwirpFailure("invalid_argument", "missing dispatch rule")
        for trunk_id in rule.trunk_ids:
            if trunk_id not in self.trunks:
                raise TwirpFailure("not_found", f"requested sip trunk does not exist: {trunk_id}")
        rule.sip_dispatch_rule_id = _new_id("SDR_")
        rule.created_at.GetCurrentTime()
        self.dispatch_rules[rule.sip_dispatch_rule_id] = rule
        return rule

    def _update_rule(self, req: proto_sip.UpdateSIPDispatchRuleRequest) -> Message:
        rule = _requested(self.dispatch_rules, req.sip_dispatch_rule_id, "sip dispatch rule")
        if req.HasField("replace"):
            created_at = rule.created_at
            rule.CopyFrom(req.replace)
            rule.sip_dispatch_rule_id = req.sip_dispatch_rule_id
            rule.created_at.CopyFrom(created_at)
        else:
            update = req.update
            if update.HasField("trunk_ids"):
                _apply_list_update(rule.trunk_ids, update.trunk_ids)
            if update.HasField("rule"):
                rule.rule.CopyFrom(update.rule)
            for name in ("name", "metadata"):
                if update.HasField(name):
                    setattr(rule, name, getattr(update, name))
            if update.attributes:
                rule.attributes.clear()
                rule.attributes.update(update.attributes)
        rule.updated_at.GetCurrentTime()
        return rule

    def _delete_rule(self, req: proto_sip.DeleteSIPDispatchRuleRequest) -> Message:
        return _requested(self.dispatch_rules, req.sip_dispatch_rule_id, "sip dispatch rule", take=True)


def _requested(items: dict[str, Any], key: str, what: str, *, take: bool = False) -> Any:
    """The room, trunk or rule KEY names in ITEMS (taken out of them, with TAKE); LiveKit's not_found, naming
    WHAT, when there is none."""
    found = items.pop(key, None) if take else items.get(key)
    if found is None:
        raise TwirpFailure("not_found", f"requested {what} does not exist")
    return found


def _hidden(info: models.ParticipantInfo) -> bool:
    return info.HasField("permission") and info.permission.hidden


def _may_publish(info: models.ParticipantInfo, source: int) -> bool:
    # livekit/protocol `auth/grants.go`, GetCanPublishSource: canPublish, and the source among
    # canPublishSources when those are named. A participant joined without grants (a SIP leg, a test's
    # browser) has the defaults: everything.
    if not info.HasField("permission"):
        return True
    permission = info.permission
    return permission.can_publish and (not permission.can_publish_sources or source in permission.can_publish_sources)


def _twirp_error(failure: TwirpFailure) -> tuple[int, str, bytes]:
    body = json.dumps({"code": failure.code, "msg": failure.msg}).encode()
    return failure.status, "application/json", body


def _make_handler(stand_in: LiveKitStandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle and
            # delayed ACKs add ~40 ms to every kept-alive call.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with stand_in._lock:
                stand_in._connections.add(self.connection)

        def finish(self) -> None:
            with stand_in._lock:
                stand_in._connections.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, content_type, body = stand_in._serve(self.path, self.headers, raw)
            self._answer(status, content_type, body)

        def do_GET(self) -> None:
            failure = TwirpFailure("bad_route", "unsupported method GET")
            status, content_type, body = _twirp_error(failure)
            self._answer(status, content_type, body)

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                # The client gave up (timeout) before the answer was ready.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def sign_webhook(body: str, api_key: str, api_secret: str) -> str:
    """Authorization header value LiveKit sends with a webhook carrying `body`."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = AccessToken(api_key, api_secret).with_sha256(digest)
    return token.with_ttl(datetime.timedelta(minutes=5)).to_jwt()


def webhook_body(
    event: str,
    room_name: str,
    participant_identity: str | None = None,
    attributes: dict[str, str] | None = None,
    *,
    participant_kind: str = "standard",
    participant_name: str = "",
    room_sid: str = "",
    event_id: str = "",
    created_at: int | None = None,
) -> str:
    """JSON body of a LiveKit WebhookEvent, serialised as livekit-server does."""
    message = proto_webhook.WebhookEvent(
        event=event,
        id=event_id or _new_id("EV_"),
        created_at=int(time.time()) if created_at is None else created_at,
        room=models.Room(sid=room_sid or _new_id("RM_"), name=room_name),
    )
    if participant_identity is not None:
        message.participant.CopyFrom(
            models.ParticipantInfo(
                sid=_new_id("PA_"),
                identity=participant_identity,
                name=participant_name,
                kind=models.ParticipantInfo.Kind.Value(participant_kind.upper()),
                state=(
                    models.ParticipantInfo.DISCONNECTED
                    if event == "participant_left"
                    else models.ParticipantInfo.ACTIVE
                ),
                attributes=attributes or {},
            )
        )
    return json_format.MessageToJson(message, indent=None)
