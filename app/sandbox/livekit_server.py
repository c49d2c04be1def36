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
from livekit.protocol import models, room as proto_room, sip as proto_sip, webhook as proto_webhook

# livekit-server's defaults when CreateRoom leaves the timeouts at zero.
DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20

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

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.support_move = False
        self.requests: list[RecordedRequest] = []
        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, dict[str, models.ParticipantInfo]] = {}
        self.trunks: dict[str, proto_sip.SIPInboundTrunkInfo] = {}
        self.dispatch_rules: dict[str, proto_sip.SIPDispatchRuleInfo] = {}
        self._lock = threading.RLock()
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, list[float]] = {}
        self._stopping = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._routes = self._build_routes()

    @property
    def url(self) -> str:
        """Base URL of the running stand-in."""
        if self._server is None:
            raise RuntimeError("stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LiveKitStandIn":
        """Listen on an ephemeral loopback port in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="livekit-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open client connection."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        # Keep-alive handlers block reading the next request; a shutdown wakes
        # them so they close their own sockets.
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

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

    def add_participant(
        self,
        room: str,
        identity: str,
        kind: str = "standard",
        attributes: dict[str, str] | None = None,
        name: str = "",
        metadata: str = "",
    ) -> models.ParticipantInfo:
        """Simulate a participant joining `room`, creating the room if needed."""
        with self._lock:
            self._create_room(proto_room.CreateRoomRequest(name=room))
            now = time.time()
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
            self.participants.setdefault(room, {})[identity] = info
            self.rooms[room].num_participants = len(self.participants[room])
            return info

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
        now = time.time()
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
        del self.rooms[req.room]
        self.participants.pop(req.room, None)
        return proto_room.DeleteRoomResponse()

    def _participant(self, room: str, identity: str) -> models.ParticipantInfo:
        info = self.participants.get(room, {}).get(identity)
        if info is None:
            raise TwirpFailure("not_found", "participant does not exist")
        return info

    def _list(self, req: proto_room.ListParticipantsRequest) -> Message:
        present = self.participants.get(req.room, {})
        return proto_room.ListParticipantsResponse(participants=list(present.values()))

    def _get(self, req: proto_room.RoomParticipantIdentity) -> Message:
        return self._participant(req.room, req.identity)

    def _remove(self, req: proto_room.RoomParticipantIdentity) -> Message:
        self._participant(req.room, req.identity)
        del self.participants[req.room][req.identity]
        self.rooms[req.room].num_participants = len(self.participants[req.room])
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
            self.rooms[name].num_participants = len(self.participants[name])
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
        return info

    def _metadata(self, req: proto_room.UpdateRoomMetadataRequest) -> Message:
        found = self.rooms.get(req.room)
        if found is None:
            raise TwirpFailure("not_found", "requested room does not exist")
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
        trunk.created_at.GetCurrentTime()
        self.trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _update_trunk(self, req: proto_sip.UpdateSIPInboundTrunkRequest) -> Message:
        trunk = self.trunks.get(req.sip_trunk_id)
        if trunk is None:
            raise TwirpFailure("not_found", "requested sip trunk does not exist")
        if req.HasField("replace"):
            created_at = trunk.created_at
            trunk.CopyFrom(req.replace)
            trunk.sip_trunk_id = req.sip_trunk_id
            trunk.created_at.CopyFrom(created_at)
        else:
            update = req.update
            for name in ("numbers", "allowed_addresses", "allowed_numbers"):
                if update.HasField(name):
                    _apply_list_update(getattr(trunk, name), getattr(update, name))
            for name in ("auth_username", "auth_password", "auth_realm", "name", "metadata"):
                if update.HasField(name):
                    setattr(trunk, name, getattr(update, name))
        trunk.updated_at.GetCurrentTime()
        return trunk

    def _delete_trunk(self, req: proto_sip.DeleteSIPTrunkRequest) -> Message:
        trunk = self.trunks.pop(req.sip_trunk_id, None)
        if trunk is None:
            raise TwirpFailure("not_found", "requested sip trunk does not exist")
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
        rule = self.dispatch_rules.get(req.sip_dispatch_rule_id)
        if rule is None:
            raise TwirpFailure("not_found", "requested sip dispatch rule does not exist")
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
        rule = self.dispatch_rules.pop(req.sip_dispatch_rule_id, None)
        if rule is None:
            raise TwirpFailure("not_found", "requested sip dispatch rule does not exist")
        return rule


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
