"""Agents and queues: the roster, presence, and who may take a call."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor, ActorKind
from app.hours import HoursError, parse_holidays, parse_week, parse_zone
from app.models import QUEUE_SETTINGS, Activity, Agent, Overflow, Presence, Queue
from app.primitives.availability import end_wrap_up, lock_agent
from app.primitives.context import Telephony
from app.states import agents as states
from app.states.agents import new_agent
from app.text import ascii_digits, control_character
from config import PROJECT_ROOT

# The roster `make run` loads into an empty database, and the tests and the demo use.
DEMO_ROSTER = PROJECT_ROOT / "app" / "fixtures" / "demo_roster.toml"


class RosterError(ValueError):
    """A roster entry or agent command that cannot be applied, with the reason in words."""


@dataclass(frozen=True)
class AgentSpec:
    name: str
    extension: str
    sip_uri: str | None
    skills: tuple[str, ...]
    presence: str = Presence.OFFLINE


@dataclass(frozen=True)
class QueueSpec:
    name: str
    dtmf_code: str
    skill: str
    speech_hints: tuple[str, ...] = ()
    is_default: bool = False
    # QUEUE_SETTINGS the roster gives this queue; the others follow the service-wide settings.
    settings: tuple[tuple[str, int], ...] = ()
    # Business hours (app/hours.py): None, none given (CENTRE_TIMEZONE; open all week).
    timezone: str | None = None
    hours: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    holidays: tuple[str, ...] = ()
    # Past the longest wait: an Overflow or another queue's name; None: the options.
    overflow: str | None = None
    priority: int = 0


def _plain(what: str, field_name: str, value: str) -> str:
    """VALUE, or RosterError when it holds a control character: names are shown and spoken as given."""
    found = control_character(value)
    if found is not None:
        raise RosterError(f"{what}: {field_name} {value!r} holds a control character ({found}); "
                          "use letters, digits, spaces and punctuation only")
    return value


def _name(what: str, name: str) -> str:
    """NAME, or RosterError when there is none or it holds a control character."""
    if not name:
        raise RosterError(f"{what} without a name")
    return _plain(what, "name", name)


def parse_agent(entry: dict[str, Any]) -> AgentSpec:
    """Validate one roster entry for an agent."""
    name = _name("agent", str(entry.get("name", "")).strip())
    extension = str(entry.get("extension", "")).strip()
    if not ascii_digits(extension) or not 2 <= len(extension) <= 6:
        raise RosterError(f"agent {name!r}: extension must be 2 to 6 digits")
    sip_uri = (entry.get("sip_uri") or "").strip() or None
    if sip_uri and not sip_uri.startswith(("sip:", "sips:")):
        raise RosterError(f"agent {name!r}: sip_uri must start with sip:")
    _plain(f"agent {name!r}", "sip_uri", sip_uri or "")
    skills = entry.get("skills", [])
    if isinstance(skills, str):
        skills = [s for s in skills.split(",")]
    for skill in skills:
        _plain(f"agent {name!r}", "skill", str(skill).strip())
    presence = str(entry.get("presence", Presence.OFFLINE)).strip()
    if presence not in Presence.__members__.values():
        raise RosterError(f"agent {name!r}: presence must be one of {', '.join(Presence)}")
    return AgentSpec(name, extension, sip_uri, tuple(s.strip().lower() for s in skills if s.strip()), presence)


def parse_queue(entry: dict[str, Any]) -> QueueSpec:
    """Validate one roster entry for a queue."""
    name = _name("queue", str(entry.get("name", "")).strip().lower())
    code = str(entry.get("dtmf_code", "")).strip()
    if not ascii_digits(code) or not 1 <= len(code) <= 4:
        raise RosterError(f"queue {name!r}: dtmf_code must be 1 to 4 digits")
    skill = _plain(f"queue {name!r}", "skill", str(entry.get("skill", name)).strip().lower())
    hints = tuple(_plain(f"queue {name!r}", "speech hint", str(h).strip())
                  for h in entry.get("speech_hints", []) if str(h).strip())
    return QueueSpec(name, code, skill, hints, bool(entry.get("default", False)), _queue_settings(name, entry),
                     **_business_hours(name, entry), overflow=_overflow(name, entry.get("overflow")),
                     priority=_priority(name, entry.get("priority")))


def _given(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != ()


def _business_hours(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    try:
        zone = parse_zone(entry["timezone"]) if _given(entry.get("timezone")) else None
        week = parse_week(entry["hours"]) if entry.get("hours") is not None else None
        holidays = parse_holidays(entry["holidays"]) if _given(entry.get("holidays")) else []
    except HoursError as error:
        raise RosterError(f"queue {name!r}: {error}") from None
    return {
        "timezone": zone,
        "hours": None if week is None else tuple((day, tuple(ranges)) for day, ranges in week.items()),
        "holidays": tuple(holidays),
    }


def _overflow(name: str, value: Any) -> str | None:
    if not _given(value):
        return None
    overflow = _plain(f"queue {name!r}", "overflow", str(value).strip().lower())
    if overflow == name:
        raise RosterError(f"queue {name!r}: overflow {overflow!r} is the queue itself; name another queue, or "
                          f"{', '.join(Overflow)}")
    return overflow


def check_overflows(session: Session, specs: Iterable[QueueSpec]) -> None:
    """RosterError unless every queue SPECS overflow to exists, in SPECS or already in the database."""
    specs = list(specs)
    named = {spec.name for spec in specs}
    for spec in specs:
        if spec.overflow is None or spec.overflow in set(Overflow):
            continue
        if spec.overflow not in named and session.scalar(select(Queue.id).where(Queue.name == spec.overflow)) is None:
            raise RosterError(f"queue {spec.name!r}: overflow {spec.overflow!r} is neither a queue nor one of "
                              f"{', '.join(Overflow)}")


def add_queue(session: Session, spec: QueueSpec) -> Queue:
    """Create or update one queue (`flask queues add`), its overflow checked against the queues there are."""
    check_overflows(session, [spec])
    return upsert_queue(session, spec)


# What each of QUEUE_SETTINGS counts, and its least value.
_SETTING_UNITS = {"callback_attempts": ("attempts", 1)}


def _queue_settings(name: str, entry: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    given = []
    for setting in QUEUE_SETTINGS:
        value = entry.get(setting)
        if value is None or value == "":
            continue
        unit, least = _SETTING_UNITS.get(setting, ("seconds", 0))
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise RosterError(f"queue {name!r}: {setting} must be a whole number of {unit}") from None
        if number < least or isinstance(value, bool):
            raise RosterError(f"queue {name!r}: {setting} must be a whole number of {unit}, {least} or more")
        given.append((setting, number))
    return tuple(given)


# A queue's priority: the highest is offered first to an agent who serves several queues.
PRIORITY_RANGE = range(-100, 101)


def _priority(name: str, value: Any) -> int:
    if not _given(value):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RosterError(f"queue {name!r}: priority must be a whole number from -100 to 100") from None
    if number not in PRIORITY_RANGE or isinstance(value, bool):
        raise RosterError(f"queue {name!r}: priority must be a whole number from -100 to 100")
    return number


def upsert_agent(session: Session, spec: AgentSpec) -> Agent:
    """Create the agent with this extension, or update it."""
    agent = session.scalar(select(Agent).where(Agent.extension == spec.extension))
    if agent is None:
        agent = new_agent(session, spec.extension)
    agent.name = spec.name
    agent.sip_uri = spec.sip_uri
    agent.skills = list(spec.skills)
    session.flush()
    states.set_presence(session, agent, Presence(spec.presence))
    session.flush()
    return agent


def upsert_queue(session: Session, spec: QueueSpec) -> Queue:
    """Create the queue with this name, or update it; at most one queue is the default."""
    queue = session.scalar(select(Queue).where(Queue.name == spec.name))
    if queue is None:
        queue = Queue(name=spec.name)
        session.add(queue)
    queue.dtmf_code = spec.dtmf_code
    queue.skill = spec.skill
    queue.speech_hints = list(spec.speech_hints)
    own = dict(spec.settings)
    for setting in QUEUE_SETTINGS:
        setattr(queue, setting, own.get(setting))
    queue.timezone = spec.timezone
    queue.priority = spec.priority
    queue.hours = None if spec.hours is None else {day: list(ranges) for day, ranges in spec.hours}
    queue.holidays = list(spec.holidays) or None
    queue.overflow = spec.overflow
    if spec.is_default:
        for other in session.scalars(select(Queue).where(Queue.is_default.is_(True))):
            other.is_default = False
    queue.is_default = spec.is_default
    session.flush()
    return queue


def roster_exists(session: Session) -> bool:
    """Whether any queue or agent is defined."""
    return session.scalar(select(Queue.id).limit(1)) is not None or session.scalar(select(Agent.id).limit(1)) is not None


def load_roster(session: Session, roster: dict[str, Any]) -> tuple[list[Queue], list[Agent]]:
    """Apply a whole roster ({queues: [...], agents: [...]}); every entry is checked before any is written."""
    queue_specs = [parse_queue(entry) for entry in roster.get("queues", [])]
    agent_specs = [parse_agent(entry) for entry in roster.get("agents", [])]
    _no_duplicates("queue name", (q.name for q in queue_specs))
    _no_duplicates("queue dtmf_code", (q.dtmf_code for q in queue_specs))
    _no_duplicates("agent extension", (a.extension for a in agent_specs))
    if sum(q.is_default for q in queue_specs) > 1:
        raise RosterError("more than one queue is marked default")
    check_overflows(session, queue_specs)
    queues = [upsert_queue(session, spec) for spec in queue_specs]
    agents = [upsert_agent(session, spec) for spec in agent_specs]
    return queues, agents


def _no_duplicates(label: str, values: Iterable[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise RosterError(f"duplicate {label}: {value}")
        seen.add(value)


def find_agent(session: Session, extension: str) -> Agent:
    """The agent with this extension, or RosterError."""
    agent = session.scalar(select(Agent).where(Agent.extension == extension))
    if agent is None:
        raise RosterError(f"no agent with extension {extension}")
    return agent


def set_presence(session: Session, extension: str, presence: str, *, event: str | None = None,
                 **detail: Any) -> Agent:
    """Set an agent's presence (available, away, offline); coming back resets missed calls. EVENT, with DETAIL,
    goes on the timeline (no call's)."""
    if presence not in Presence.__members__.values():
        raise RosterError(f"presence must be one of {', '.join(Presence)}")
    agent = find_agent(session, extension)
    states.set_presence(session, agent, Presence(presence), event=event, **detail)
    session.flush()
    return agent


def set_presence_and_offer(t: Telephony, extension: str, presence: str, *, by: Actor | None = None) -> Agent:
    """Set an agent's presence as a step on calls: an agent who is now available and idle is offered the
    transfers and callers waiting for their skills once the step commits (jobs.steps.follow_up). An agent on
    a call stays on it: away, they are offered nothing more once it ends. Asked BY someone (the agent at their
    console, a supervisor on the board), the timeline keeps who (`presence_set`: by, to and the presence they
    had); the operator's command (BY None) leaves none."""
    was = find_agent(t.session, extension).presence
    detail = {"event": "presence_set", "by": by.label, "to": presence, "was": was} if by is not None else {}
    agent = set_presence(t.session, extension, presence, **detail)
    if agent.is_free:
        t.freed_agent_ids.add(agent.id)
    return agent


# What a supervisor may set an agent to from the board (offline is the agent's own to say).
SUPERVISOR_PRESENCES = (Presence.AVAILABLE, Presence.AWAY)


def set_presence_by_supervisor(t: Telephony, extension: str, presence: str, by: Actor) -> Agent:
    """A supervisor sets an agent available or away, as the console does."""
    if presence not in SUPERVISOR_PRESENCES:
        raise RosterError(f"a supervisor sets an agent {' or '.join(SUPERVISOR_PRESENCES)}")
    return set_presence_and_offer(t, extension, presence, by=by)


def end_wrap_up_early(t: Telephony, extension: str, by: Actor) -> bool:
    """A supervisor ends an agent's after-call work now; False if they were not in it."""
    return end_wrap_up(t, find_agent(t.session, extension), "supervisor", by=by)


def remove_agent(session: Session, extension: str) -> None:
    """Delete an agent; refused while they are on a call."""
    agent = find_agent(session, extension)
    # Their row locked and read again: a step reserving them meanwhile either came first (then they are not idle)
    # or passes over them, so no ringing leg is left without its agent.
    agent = lock_agent(session, agent.id)
    if agent is None:  # removed by someone else meanwhile
        raise RosterError(f"no agent with extension {extension}")
    if agent.activity != Activity.IDLE:
        raise RosterError(f"agent {extension} is {agent.activity}; try again when the call ends")
    session.delete(agent)
    session.flush()


def list_agents(session: Session) -> list[Agent]:
    """All agents by extension."""
    return list(session.scalars(select(Agent).order_by(Agent.extension)))


_QUEUES_BY_CODE = select(Queue).order_by(Queue.dtmf_code)  # the IVR asks for them at every choice: built once


def list_queues(session: Session) -> list[Queue]:
    """All queues by DTMF code (the order the IVR reads them in)."""
    return list(session.scalars(_QUEUES_BY_CODE))


# An agent's fields as the CLI and the JSON API print them, in order.
AGENT_FIELDS = ("name", "extension", "sip_uri", "skills", "presence", "activity", "missed_in_row")


def agent_as_dict(agent: Agent) -> dict[str, Any]:
    """An agent in the shape the CLI and the JSON API print."""
    return {field: getattr(agent, field) for field in AGENT_FIELDS}


def queue_as_dict(queue: Queue) -> dict[str, Any]:
    """A queue in the shape the CLI and the JSON API print."""
    return {
        "name": queue.name,
        "dtmf_code": queue.dtmf_code,
        "skill": queue.skill,
        "speech_hints": list(queue.speech_hints),
        "default": queue.is_default,
        **{setting: getattr(queue, setting) for setting in QUEUE_SETTINGS},
        "priority": queue.priority,
        "timezone": queue.timezone,
        "hours": queue.hours,
        "holidays": list(queue.holidays or []),
        "overflow": queue.overflow,
    }


def read_roster(path: Path) -> dict:
    """Read a roster file: TOML or JSON, by its suffix."""
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with path.open("rb") as handle:
        return tomllib.load(handle)


def disposition_keys(codes: tuple[str, ...]) -> str:
    """The disposition codes as a phone hears them: "press 1 for resolved, 2 for follow-up, ..." (at most 9)."""
    return ", ".join(f"{number} for {code}" for number, code in enumerate(codes[:9], start=1))


def wrap_up_by_key(t: Telephony, agent: Agent, key: str) -> str | None:
    """The agent pressed KEY for a disposition at the end of their call: their after-call work is done, with that
    disposition on the call's timeline; the disposition, or None for a key that names none."""
    codes = t.settings.disposition_codes[:9]
    if not (len(key) == 1 and ascii_digits(key) and 1 <= int(key) <= len(codes)):
        return None
    disposition = codes[int(key) - 1]
    return disposition if end_wrap_up(t, agent, "ready", disposition=disposition,
                                          by=Actor(ActorKind.PHONE, agent.extension)) else None
