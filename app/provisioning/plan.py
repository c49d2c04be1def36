"""Desired Twilio and LiveKit state from the settings, compared with what exists, and applied."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Optional, Protocol
from urllib.parse import urlsplit

from app.telephony.sip import TRUNK_RINGING_TIMEOUT_SECONDS
from config import Settings

# "web": the TwiML App browsers call (docs/web-callers.md), provisioned when a web-call setting is given or asked
# for by name (--only web).
SYSTEMS = ("twilio", "livekit", "web")
TRUNK_NAME = "switchboard"
APP_NAME = "switchboard-web-callers"
API_KEY_NAME = "switchboard-web-callers"
RULE_NAME = "switchboard-callee"
VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
FALLBACK_PATH = "/twilio/fallback"

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


class ProvisioningError(Exception):
    """Provisioning cannot go on: settings missing, or the accounts not as expected."""


class TwilioNumbers(Protocol):
    """The part of the Twilio gateway provisioning uses."""

    def find_number(self, phone_number: str): ...

    def update_number(self, sid: str, voice_url: str, status_callback: str,
                      voice_fallback_url: Optional[str]): ...


class TwilioApps(Protocol):
    """The part of the Twilio gateway that provisions calling from the website."""

    def find_applications(self, friendly_name: str) -> list: ...

    def create_application(self, friendly_name: str, voice_url: str, status_callback: str,
                           voice_fallback_url: str): ...

    def update_application(self, sid: str, voice_url: str, status_callback: str, voice_fallback_url: str): ...

    def api_key_exists(self, sid: str) -> bool: ...

    def create_api_key(self, friendly_name: str) -> tuple[str, str]: ...


class LiveKitSip(Protocol):
    """The part of the LiveKit gateway provisioning uses."""

    def list_inbound_trunks(self) -> list: ...

    def create_inbound_trunk(self, name: str, auth_username: str, auth_password: str,
                             allowed_addresses: Iterable[str], ringing_timeout_s: int = 0): ...

    def update_inbound_trunk(self, trunk_id: str, **fields): ...

    def delete_inbound_trunk(self, trunk_id: str) -> bool: ...

    def list_dispatch_rules(self) -> list: ...

    def create_callee_dispatch_rule(self, name: str, room_prefix: str, trunk_ids: Iterable[str],
                                    empty_timeout_s: int = 0, departure_timeout_s: int = 0): ...

    def delete_dispatch_rule(self, rule_id: str) -> bool: ...


@dataclass(frozen=True)
class NumberSpec:
    """How the Twilio number's voice webhooks should be set (every method POST)."""

    phone_number: str
    voice_url: str
    status_callback: str
    voice_fallback_url: str


@dataclass(frozen=True)
class AppSpec:
    """The TwiML App a visitor's browser calls: its Voice URL is the number's, so a web caller is any caller.

    API_KEY_SID: the key TWILIO_API_KEY_SID names ('' while unset: none is made unless asked, since Twilio
    shows a new key's secret once, in the answer that creates it). APP_SID: TWILIO_TWIML_APP_SID.
    """

    friendly_name: str
    voice_url: str
    status_callback: str
    voice_fallback_url: str
    app_sid: str = ""
    api_key_sid: str = ""


@dataclass(frozen=True)
class TrunkSpec:
    """The LiveKit inbound trunk Twilio's <Dial><Sip> legs arrive on."""

    name: str
    auth_username: str  # the credentials Twilio's <Sip> sends (LIVEKIT_SIP_USERNAME, LIVEKIT_SIP_PASSWORD)
    auth_password: str
    allowed_addresses: tuple[str, ...]  # where Twilio signals from (LIVEKIT_ALLOWED_ADDRESSES)
    ringing_timeout_s: int = TRUNK_RINGING_TIMEOUT_SECONDS


@dataclass(frozen=True)
class RuleSpec:
    """The callee dispatch rule naming each room `<room_prefix>_<SIP URI user>`."""

    name: str
    room_prefix: str
    empty_timeout_s: int  # how long a new room waits for its first participant
    departure_timeout_s: int  # how long a room stays open once its last participant left


@dataclass(frozen=True)
class DesiredState:
    """What the settings ask for; None for a system left out of this run."""

    number: Optional[NumberSpec] = None
    trunk: Optional[TrunkSpec] = None
    rule: Optional[RuleSpec] = None
    app: Optional[AppSpec] = None


@dataclass(frozen=True)
class Change:
    """One step that brings an account in line, with the sentence an operator reads."""

    system: str  # "twilio" or "livekit"
    action: str  # what is done there: create_trunk, update_number, ...
    summary: str
    drift: tuple[str, ...] = ()
    target_ids: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    trunk_id: str = ""

    @property
    def sentence(self) -> str:
        """The summary and every difference found, as one line."""
        return self.summary + (": " + "; ".join(self.drift) if self.drift else ".")


@dataclass(frozen=True)
class Plan:
    """The desired state and the changes that reach it, in the order they are applied."""

    desired: DesiredState
    changes: tuple[Change, ...]

    @property
    def up_to_date(self) -> bool:
        """Whether nothing needs changing."""
        return not self.changes


def wants_web(settings: Settings, systems: Sequence[str]) -> bool:
    """Whether this run provisions calling from the website: asked for alone, or some web-call setting given."""
    return "web" in systems and (tuple(systems) == ("web",) or settings.web_calls_wanted)


def missing_settings(settings: Settings, systems: Sequence[str] = SYSTEMS) -> list[str]:
    """Problems that stop provisioning the given systems, each naming its variable."""
    problems: list[str] = []
    if "twilio" in systems or wants_web(settings, systems):
        required = {
            "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
        }
        if "twilio" in systems:
            required["TWILIO_PHONE_NUMBER"] = settings.twilio_phone_number
        problems += [f"{name}: required to provision Twilio" for name, value in required.items()
                     if not value]
        host = (urlsplit(settings.public_base_url).hostname or "").lower()
        if not settings.public_base_url or host in _LOCAL_HOSTS:
            problems.append(
                f"PUBLIC_BASE_URL: {settings.public_base_url or 'unset'} cannot be reached by "
                "Twilio; set the public https address (for example the ngrok one)"
            )
    if "livekit" in systems:
        required = {
            "LIVEKIT_URL": settings.livekit_url,
            "LIVEKIT_API_KEY": settings.livekit_api_key,
            "LIVEKIT_API_SECRET": settings.livekit_api_secret,
            "LIVEKIT_SIP_USERNAME": settings.livekit_sip_username,
            "LIVEKIT_SIP_PASSWORD": settings.livekit_sip_password,
            "LIVEKIT_ROOM_PREFIX": settings.livekit_room_prefix,
        }
        problems += [f"{name}: required to provision LiveKit" for name, value in required.items()
                     if not value]
        if settings.livekit_room_prefix.endswith("_"):
            problems.append("LIVEKIT_ROOM_PREFIX: leave off the trailing '_'; LiveKit adds it")
    return problems


def warnings_for(settings: Settings, systems: Sequence[str] = SYSTEMS) -> list[str]:
    """Settings that work but leave something weaker than it should be."""
    found = []
    if wants_web(settings, systems) and not settings.twilio_api_key_sid:
        found.append(
            "TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET are unset: browsers' tokens cannot be signed. Run "
            "`flask provision --create-api-key` once (Twilio shows the new key's secret only then) and set both"
        )
    if "livekit" in systems and not settings.livekit_allowed_addresses:
        found.append(
            "LIVEKIT_ALLOWED_ADDRESSES is empty: the trunk will accept INVITEs from any address "
            "that knows the SIP username and password; list Twilio's signalling ranges"
        )
    return found


def desired_state(settings: Settings, systems: Sequence[str] = SYSTEMS) -> DesiredState:
    """What the settings ask for, or ProvisioningError naming every missing setting."""
    problems = missing_settings(settings, systems)
    if problems:
        raise ProvisioningError("cannot provision:\n  " + "\n  ".join(problems))
    number = trunk = rule = app = None
    base = settings.public_base_url.rstrip("/")
    if wants_web(settings, systems):
        app = AppSpec(APP_NAME, voice_url=base + VOICE_PATH, status_callback=base + STATUS_PATH,
                      voice_fallback_url=base + FALLBACK_PATH, app_sid=settings.twilio_twiml_app_sid,
                      api_key_sid=settings.twilio_api_key_sid)
    if "twilio" in systems:
        number = NumberSpec(
            phone_number=settings.twilio_phone_number,
            voice_url=base + VOICE_PATH,
            status_callback=base + STATUS_PATH,
            voice_fallback_url=base + FALLBACK_PATH,
        )
    if "livekit" in systems:
        trunk = TrunkSpec(
            name=TRUNK_NAME,
            auth_username=settings.livekit_sip_username,
            auth_password=settings.livekit_sip_password,
            allowed_addresses=tuple(settings.livekit_allowed_addresses),
        )
        # A held caller's leg leaves the room, so the room must survive being
        # empty (departure) as long as it survives never being joined (empty).
        rule = RuleSpec(
            name=RULE_NAME,
            room_prefix=settings.livekit_room_prefix,
            empty_timeout_s=settings.room_empty_timeout_seconds,
            departure_timeout_s=settings.room_empty_timeout_seconds,
        )
    return DesiredState(number=number, trunk=trunk, rule=rule, app=app)


def make_plan(desired: DesiredState, twilio: Optional[TwilioNumbers] = None,
              livekit: Optional[LiveKitSip] = None, *,
              rotate_sip_password: bool = False, create_api_key: bool = False) -> Plan:
    """Read the accounts and list the changes that bring them to `desired`."""
    changes: list[Change] = []
    if (desired.number is not None or desired.app is not None) and twilio is None:
        raise ProvisioningError("Twilio is not configured")
    if desired.number is not None:
        changes += _number_changes(desired.number, twilio)
    if desired.app is not None:
        changes += _app_changes(desired.app, twilio, create_api_key)
    if desired.trunk is not None and desired.rule is not None:
        if livekit is None:
            raise ProvisioningError("LiveKit is not configured")
        trunk_changes, trunk_id = _trunk_changes(desired.trunk, livekit, rotate_sip_password)
        changes += trunk_changes
        changes += _rule_changes(desired.rule, livekit, trunk_id)
    return Plan(desired=desired, changes=tuple(changes))


def _number_changes(spec: NumberSpec, twilio: TwilioNumbers) -> list[Change]:
    found = twilio.find_number(spec.phone_number)
    if found is None:
        raise ProvisioningError(
            f"TWILIO_PHONE_NUMBER: {spec.phone_number} is not a phone number of this Twilio "
            "account; buy or port it in the Twilio console, or correct the setting"
        )
    drift = [
        _differs(name, actual, wanted)
        for name, actual, wanted in (
            ("VoiceUrl", found.voice_url, spec.voice_url),
            ("VoiceMethod", (found.voice_method or "").upper() or None, "POST"),
            ("StatusCallback", found.status_callback, spec.status_callback),
            ("VoiceFallbackUrl", found.voice_fallback_url, spec.voice_fallback_url),
        )
        if (actual or None) != wanted
    ]
    if not drift:
        return []
    return [Change("twilio", "update_number", f"update Twilio number {spec.phone_number}",
                   tuple(drift), target_ids=(found.sid,))]


def _app_changes(spec: AppSpec, twilio: TwilioApps, create_api_key: bool) -> list[Change]:
    """The TwiML App found by name, created or pointed here; the API key checked, or made when asked."""
    changes: list[Change] = []
    apps = twilio.find_applications(spec.friendly_name)
    if len(apps) > 1:
        raise ProvisioningError(f"Twilio has {len(apps)} TwiML Apps named {spec.friendly_name!r} "
                                f"({', '.join(a.sid for a in apps)}); delete all but one and run again")
    wanted = f"Voice URL {spec.voice_url}, status callback {spec.status_callback}"
    if not apps:
        changes.append(Change("twilio", "create_app", f"create TwiML App {spec.friendly_name!r} ({wanted})"))
    else:
        app = apps[0]
        drift = [_differs(name, actual, should) for name, actual, should in (
            ("VoiceUrl", app.voice_url, spec.voice_url),
            ("VoiceMethod", (app.voice_method or "").upper() or None, "POST"),
            ("StatusCallback", app.status_callback, spec.status_callback),
            ("VoiceFallbackUrl", app.voice_fallback_url, spec.voice_fallback_url),
        ) if (actual or None) != should]
        if spec.app_sid != app.sid:
            drift.append(_differs("TWILIO_TWIML_APP_SID", spec.app_sid, app.sid) + " (change the setting)")
        if drift:
            changes.append(Change("twilio", "update_app", f"update TwiML App {spec.friendly_name!r} ({app.sid})",
                                  tuple(drift), target_ids=(app.sid,)))
    if spec.api_key_sid:
        if not twilio.api_key_exists(spec.api_key_sid):
            raise ProvisioningError(f"TWILIO_API_KEY_SID: {spec.api_key_sid} is not an API key of this account; "
                                    "unset it and run `flask provision --create-api-key`")
        if create_api_key:
            raise ProvisioningError("--create-api-key: TWILIO_API_KEY_SID is already set; a new key is made only "
                                    "while it is unset")
    elif create_api_key:
        changes.append(Change("twilio", "create_api_key", f"create API key {API_KEY_NAME!r} (its secret is shown "
                                                          "once, below: store it as TWILIO_API_KEY_SECRET)"))
    return changes


def _trunk_changes(spec: TrunkSpec, livekit: LiveKitSip,
                   rotate_password: bool) -> tuple[list[Change], str]:
    """Changes to the trunk, and the id of the trunk the rule can bind to now ('' if new)."""
    trunks = livekit.list_inbound_trunks()
    named = [t for t in trunks if t.name == spec.name]
    others = [t for t in trunks if t.name != spec.name and not t.numbers and not t.allowed_numbers]
    if others:
        # Ours has no numbers either: LiveKit refuses a second such trunk at
        # create ("Conflicting inbound SIP Trunks"), and where one exists all
        # the same every call fails ("Multiple default SIP Trunks matched";
        # livekit/protocol sip/sip.go, MatchTrunkDetailed).
        listed = ", ".join(f"{t.trunk_id} ({t.name or 'no name'})" for t in others)
        raise ProvisioningError(
            f"LiveKit already has an inbound trunk with no numbers: {listed}. Two such trunks make LiveKit "
            "refuse every call; delete it, or give it numbers or allowed numbers, then run again"
        )
    if len(named) > 1:
        ids = ", ".join(t.trunk_id for t in named)
        raise ProvisioningError(
            f"LiveKit has {len(named)} inbound trunks named {spec.name!r} ({ids}); "
            "delete all but one and run again"
        )
    wanted = _describe_trunk(spec)
    if not named:
        return [Change("livekit", "create_trunk",
                       f"create LiveKit inbound trunk {spec.name!r} ({wanted})")], ""
    trunk = named[0]
    if trunk.numbers:
        # Numbers turn it into a per-number trunk and update offers no way to clear them.
        drift = (_differs("numbers", ", ".join(trunk.numbers), None),)
        return [Change("livekit", "replace_trunk",
                       f"replace LiveKit inbound trunk {spec.name!r} ({wanted})",
                       drift, target_ids=(trunk.trunk_id,))], ""
    drift, fields = [], []
    if trunk.auth_username != spec.auth_username:
        drift.append(_differs("auth username", trunk.auth_username, spec.auth_username))
        fields.append("auth_username")
    if sorted(trunk.allowed_addresses) != sorted(spec.allowed_addresses):
        drift.append(_differs("allowed address list", ", ".join(trunk.allowed_addresses),
                              ", ".join(spec.allowed_addresses)))
        fields.append("allowed_addresses")
        if not spec.allowed_addresses:
            # Emptying the list rebuilds the trunk (see LiveKitGateway.update_inbound_trunk).
            fields.extend(f for f in ("name", "auth_username", "auth_password", "ringing_timeout_s") if f not in fields)
    if rotate_password:
        # LiveKit never returns the password, so it is only ever set on request.
        drift.append("auth password set from LIVEKIT_SIP_PASSWORD (--rotate-sip-password)")
        fields.append("auth_password")
    if trunk.ringing_timeout_s != spec.ringing_timeout_s:
        drift.append(_differs("ringing timeout", f"{trunk.ringing_timeout_s}s" if trunk.ringing_timeout_s else None,
                              f"{spec.ringing_timeout_s}s"))
        # No field update can set it: the trunk is rebuilt (see LiveKitGateway.update_inbound_trunk).
        fields.append("ringing_timeout_s")
        fields.extend(f for f in ("name", "auth_username", "auth_password", "allowed_addresses") if f not in fields)
    if not drift:
        return [], trunk.trunk_id
    return [Change("livekit", "update_trunk", f"update LiveKit inbound trunk {spec.name!r}",
                   tuple(drift), target_ids=(trunk.trunk_id,), fields=tuple(fields))], \
        trunk.trunk_id


def _rule_changes(spec: RuleSpec, livekit: LiveKitSip, trunk_id: str) -> list[Change]:
    named = [r for r in livekit.list_dispatch_rules() if r.name == spec.name]
    wanted = _describe_rule(spec)
    if not named:
        return [Change("livekit", "create_rule",
                       f"create LiveKit dispatch rule {spec.name!r} ({wanted})",
                       trunk_id=trunk_id)]
    old_ids = tuple(r.rule_id for r in named)
    drift: list[str] = []
    if len(named) > 1:
        drift.append(f"{len(named)} rules share the name, one is wanted")
    rule = named[0]
    if rule.kind != "callee":
        drift.append(_differs("kind", rule.kind, "callee"))
    if rule.room_prefix != spec.room_prefix:
        drift.append(_differs("room prefix", rule.room_prefix, spec.room_prefix))
    if not trunk_id:
        drift.append(f"bound to trunk {', '.join(rule.trunk_ids) or 'none'}, "
                     "not to the trunk this run creates")
    elif tuple(rule.trunk_ids) != (trunk_id,):
        drift.append(_differs("trunks", ", ".join(rule.trunk_ids), trunk_id))
    if rule.empty_timeout_s != spec.empty_timeout_s:
        drift.append(_differs("room empty timeout", f"{rule.empty_timeout_s}s",
                              f"{spec.empty_timeout_s}s"))
    if rule.departure_timeout_s != spec.departure_timeout_s:
        drift.append(_differs("room departure timeout", f"{rule.departure_timeout_s}s",
                              f"{spec.departure_timeout_s}s"))
    if not drift:
        return []
    # The gateway has no update for rules; delete first so two callee rules never overlap.
    return [Change("livekit", "replace_rule",
                   f"replace LiveKit dispatch rule {spec.name!r} ({wanted})",
                   tuple(drift), target_ids=old_ids, trunk_id=trunk_id)]


def apply_plan(plan: Plan, twilio: Optional[TwilioNumbers | TwilioApps] = None,
               livekit: Optional[LiveKitSip] = None,
               on_applied: Optional[Callable[[Change], None]] = None) -> list[Change]:
    """Make every change of the plan, in order; return the ones made."""
    desired, done = plan.desired, []

    def finished(change: Change) -> None:
        done.append(change)
        if on_applied is not None:
            on_applied(change)

    for change in plan.changes:
        if change.action == "update_number":
            number = desired.number
            twilio.update_number(change.target_ids[0], voice_url=number.voice_url,
                                 status_callback=number.status_callback,
                                 voice_fallback_url=number.voice_fallback_url)
            finished(change)
        elif change.action in ("create_app", "update_app"):
            app = desired.app
            if change.action == "create_app":
                made = twilio.create_application(app.friendly_name, app.voice_url, app.status_callback,
                                                 app.voice_fallback_url)
            else:
                made = twilio.update_application(change.target_ids[0], app.voice_url, app.status_callback,
                                                 app.voice_fallback_url)
            told = "" if made.sid == app.app_sid else f"; set TWILIO_TWIML_APP_SID={made.sid}"
            finished(replace(change, summary=f"{change.summary}: {made.sid}{told}", drift=()))
        elif change.action == "create_api_key":
            sid, secret = twilio.create_api_key(API_KEY_NAME)
            # Twilio shows the secret in this answer only: the operator stores it now (it is never logged).
            finished(replace(change, summary=f"created API key {sid}: set TWILIO_API_KEY_SID={sid} "
                                             f"TWILIO_API_KEY_SECRET={secret} (Twilio will not show the secret "
                                             "again)"))
    rules = [c for c in plan.changes if c.action in ("create_rule", "replace_rule")]
    old_rule_ids = [rule_id for change in rules for rule_id in change.target_ids]

    def drop_old_rules() -> None:
        while old_rule_ids:
            livekit.delete_dispatch_rule(old_rule_ids.pop(0))

    created_trunk_id = ""
    for change in plan.changes:
        trunk = desired.trunk
        if change.action in ("create_trunk", "replace_trunk"):
            # Rules go before the trunk they name, so none points at a deleted trunk.
            drop_old_rules()
            for trunk_id in change.target_ids:
                livekit.delete_inbound_trunk(trunk_id)
            created = livekit.create_inbound_trunk(trunk.name, trunk.auth_username, trunk.auth_password,
                                                   trunk.allowed_addresses, trunk.ringing_timeout_s)
            created_trunk_id = created.trunk_id
            finished(change)
        elif change.action == "update_trunk":
            values = {
                "name": trunk.name,
                "auth_username": trunk.auth_username,
                "auth_password": trunk.auth_password,
                "allowed_addresses": trunk.allowed_addresses,
                "ringing_timeout_s": trunk.ringing_timeout_s,
            }
            livekit.update_inbound_trunk(change.target_ids[0],
                                         **{name: values[name] for name in change.fields})
            finished(change)
    for change in rules:
        rule = desired.rule
        drop_old_rules()
        livekit.create_callee_dispatch_rule(
            rule.name, rule.room_prefix, [change.trunk_id or created_trunk_id],
            empty_timeout_s=rule.empty_timeout_s, departure_timeout_s=rule.departure_timeout_s,
        )
        finished(change)
    return done


def _differs(what: str, actual: Optional[str], wanted: Optional[str]) -> str:
    return f"{what} is {actual or 'unset'}, should be {wanted or 'unset'}"


def _describe_trunk(spec: TrunkSpec) -> str:
    addresses = ", ".join(spec.allowed_addresses) or "any address"
    return (f"no numbers, auth username {spec.auth_username}, allowed addresses {addresses}, "
            f"ringing timeout {spec.ringing_timeout_s}s")


def _describe_rule(spec: RuleSpec) -> str:
    return (f"callee, rooms {spec.room_prefix}_<SIP user>, empty timeout {spec.empty_timeout_s}s, "
            f"departure timeout {spec.departure_timeout_s}s")
