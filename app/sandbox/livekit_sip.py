"""How LiveKit's SIP service takes an inbound call: trunk, auth, dispatch rule, room and identity.

Modelled on the open-source livekit/sip and livekit/protocol; each rule below
names the file it follows. Pure functions over livekit-protocol's own trunk
and rule messages, so the LiveKit stand-in decides as the real service does.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Callable, Optional

from livekit.protocol import sip as proto_sip

# livekit/sip drops an INVITE no trunk or rule matches without answering at
# all (`cc.Drop()`, "Rejecting inbound flood"): the status of a SipRejected
# that never reaches the caller.
NO_RESPONSE = 0


class SipRejected(Exception):
    """LiveKit refused the INVITE with a SIP status (NO_RESPONSE: dropped without an answer)."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"SIP {status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SipInvite:
    """One INVITE as it reaches LiveKit's SIP service."""

    from_user: str
    to_user: str
    host: str
    source_ip: str
    username: Optional[str] = None
    password: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)
    call_id: str = field(default_factory=lambda: "SCL_" + secrets.token_hex(6))


@dataclass
class SipCall:
    """One inbound SIP call LiveKit holds: ringing until it can subscribe to a track, then active."""

    invite: SipInvite
    room: str
    identity: str
    on_answer: Callable[[], None]
    on_bye: Callable[[str], None]
    state: str = "ringing"
    ringing_timer: object = None

    @property
    def live(self) -> bool:
        return self.state in ("ringing", "active")


def match_trunk(trunks: list[proto_sip.SIPInboundTrunkInfo],
                invite: SipInvite) -> Optional[proto_sip.SIPInboundTrunkInfo]:
    """The inbound trunk an INVITE lands on; None when none does; SipRejected on a conflict.

    livekit/protocol `sip/sip.go` (MatchTrunkDetailed): a trunk is a candidate
    only if the caller passes its allowed_addresses and allowed_numbers; one
    whose `numbers` hold the called number beats a trunk with no numbers (the
    default); two of either kind is an error, which livekit/sip answers with
    503 (`processInvite`).
    """
    called = invite.to_user
    specific, defaults = [], []
    for trunk in trunks:
        if not _source_allowed(trunk, invite) or not _caller_allowed(trunk, invite):
            continue
        if trunk.numbers:
            if _normal(called) in {_normal(n) for n in trunk.numbers}:
                specific.append(trunk)
        else:
            defaults.append(trunk)
    if len(specific) > 1:
        raise SipRejected(503, f"Multiple SIP Trunks matched for {called!r}")
    if specific:
        return specific[0]
    if len(defaults) > 1:
        raise SipRejected(503, f"Multiple default SIP Trunks matched for {called!r}")
    return defaults[0] if defaults else None


def conflicting_trunk(trunks: list[proto_sip.SIPInboundTrunkInfo],
                      candidate: proto_sip.SIPInboundTrunkInfo) -> Optional[proto_sip.SIPInboundTrunkInfo]:
    """A trunk CANDIDATE may not sit beside (livekit-server `pkg/service/sip.go`, validateTrunkInbound).

    Two inbound trunks that serve the same numbers (no numbers counts as the
    same, empty, set) with no allowed_numbers to tell their callers apart are
    refused at create and update.
    """
    mine = {_normal(n) for n in candidate.numbers}
    for trunk in trunks:
        if trunk.sip_trunk_id == candidate.sip_trunk_id:
            continue
        theirs = {_normal(n) for n in trunk.numbers}
        same_numbers = (mine & theirs) or (not mine and not theirs)
        if same_numbers and not candidate.allowed_numbers and not trunk.allowed_numbers:
            return trunk
    return None


def authenticate(trunk: proto_sip.SIPInboundTrunkInfo, invite: SipInvite) -> None:
    """Digest auth against the trunk's username and password (livekit/sip `pkg/sip/inbound.go`, handleInviteAuth)."""
    if not (trunk.auth_username and trunk.auth_password):
        return
    if invite.username is None:
        # LiveKit challenges with 407; Twilio answers it with the <Sip>
        # noun's username and password, and without them the call fails.
        raise SipRejected(407, "Unauthorized")
    if invite.username != trunk.auth_username or invite.password != trunk.auth_password:
        raise SipRejected(401, "Unauthorized")


def match_dispatch_rule(rules: list[proto_sip.SIPDispatchRuleInfo],
                        trunk: Optional[proto_sip.SIPInboundTrunkInfo],
                        invite: SipInvite) -> proto_sip.SIPDispatchRuleInfo:
    """The dispatch rule for a call on TRUNK (livekit/protocol `sip/sip.go`, MatchDispatchRuleIter).

    Rules naming the trunk win over rules for every trunk (no trunk_ids); with
    no trunk matched only the latter apply, without auth. A rule limited to
    inbound_numbers applies only to callers among them; two rules at the same
    level are a conflict (503). No rule: the INVITE is dropped unanswered.
    Priorities among rules of different kinds are not modelled.
    """
    for_trunk, for_all = [], []
    for rule in rules:
        if rule.inbound_numbers and invite.from_user not in rule.inbound_numbers:
            continue
        if not rule.trunk_ids:
            for_all.append(rule)
        elif trunk is not None and trunk.sip_trunk_id in rule.trunk_ids:
            for_trunk.append(rule)
    for group in (for_trunk, for_all):
        if len(group) > 1:
            raise SipRejected(503, "Dispatch rule for the same trunk, inbound number, number, and PIN "
                                   "combination already exists")
        if group:
            return group[0]
    raise SipRejected(NO_RESPONSE, f"No SIP Dispatch Rules matched for {invite.to_user!r}")


def room_for(rule: proto_sip.SIPDispatchRuleInfo, invite: SipInvite) -> str:
    """The room a dispatch rule puts the call in (livekit/protocol `sip/sip.go`, EvaluateDispatchRule)."""
    kind = rule.rule.WhichOneof("rule")
    if kind == "dispatch_rule_direct":
        return rule.rule.dispatch_rule_direct.room_name
    if kind == "dispatch_rule_individual":
        individual = rule.rule.dispatch_rule_individual
        return f"{individual.room_prefix}_{invite.from_user}_{secrets.token_urlsafe(8)}"
    if kind == "dispatch_rule_callee":
        callee = rule.rule.dispatch_rule_callee
        name = f"{callee.room_prefix}_{invite.to_user}" if callee.room_prefix else invite.to_user
        if callee.randomize:
            name += "_" + secrets.token_urlsafe(8)
        return name
    raise SipRejected(500, f"dispatch rule kind {kind!r} is not modelled")


def participant_identity(invite: SipInvite) -> str:
    """A SIP participant's identity: `sip_` + the caller (livekit/protocol `sip/sip.go`, EvaluateDispatchRule)."""
    return "sip_" + invite.from_user


def participant_attributes(invite: SipInvite, trunk: Optional[proto_sip.SIPInboundTrunkInfo],
                           rule: proto_sip.SIPDispatchRuleInfo) -> dict[str, str]:
    """The attributes LiveKit sets on an inbound SIP participant (livekit/protocol `livekit/attrs.go`, livekit/sip)."""
    attributes = {
        "sip.callID": invite.call_id,
        "sip.callStatus": "ringing",
        "sip.phoneNumber": invite.from_user,
        "sip.trunkPhoneNumber": invite.to_user,
        "sip.trunkID": trunk.sip_trunk_id if trunk is not None else "",
        "sip.ruleID": rule.sip_dispatch_rule_id,
    }
    # livekit/sip `pkg/sip/participant.go` (headerToAttr) always maps
    # Twilio's own INVITE headers to sip.twilio.* attributes.
    for header, name in (("X-Twilio-CallSid", "sip.twilio.callSid"), ("X-Twilio-AccountSid", "sip.twilio.accountSid")):
        if header in invite.headers:
            attributes[name] = invite.headers[header]
    for header, name in (trunk.headers_to_attributes.items() if trunk is not None else ()):
        for sent, value in invite.headers.items():
            if sent.lower() == header.lower():
                attributes[name] = value
    return attributes


def _source_allowed(trunk: proto_sip.SIPInboundTrunkInfo, invite: SipInvite) -> bool:
    if not trunk.allowed_addresses:
        return True
    source = ipaddress.ip_address(invite.source_ip)
    for allowed in trunk.allowed_addresses:
        try:
            if source in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            continue
    return False


def _caller_allowed(trunk: proto_sip.SIPInboundTrunkInfo, invite: SipInvite) -> bool:
    return not trunk.allowed_numbers or _normal(invite.from_user) in {_normal(n) for n in trunk.allowed_numbers}


def _normal(number: str) -> str:
    return number.lstrip("+")
