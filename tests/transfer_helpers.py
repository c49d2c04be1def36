"""Shared steps for transfer scenarios."""

import math
import wave
from pathlib import Path

from sqlalchemy import select

from app.models import Agent, Call, Transfer
from app.sandbox import scenarios
from app.sandbox.scenarios import ALICE, BOB, CARMEN  # noqa: F401 - the roster's phones, for the tests

# How long one play of the own hold clip lasts, read from its WAV header as the simulated Twilio measures it: a
# held caller's hold loop comes back to the service (a hold turn) this often on the virtual clock.
with wave.open(str(Path(__file__).resolve().parents[1] / "app" / "static" / "audio" / "hold.wav")) as _clip:
    HOLD_TURN_SECONDS = _clip.getnframes() / _clip.getframerate()


def turn_at_or_past(seconds: float) -> float:
    """When the first hold turn at or past SECONDS comes, counted from when a caller was queued (their turns come
    HOLD_TURN_SECONDS apart from then): what waits for the hold loop (a longest wait, say) is seen only then."""
    return math.ceil(seconds / HOLD_TURN_SECONDS) * HOLD_TURN_SECONDS


def longest_wait_turn(centre) -> float:
    """When the hold turn that finds a caller past MAX_QUEUE_WAIT_SECONDS comes, counted from when they queued."""
    return turn_at_or_past(centre.app.config["SETTINGS"].max_queue_wait_seconds)


def connected_call(centre, number=scenarios.CALLER, reason=scenarios.REASON, conversation=scenarios.CONVERSATION):
    """A caller connected to Alice (billing), with a little transcript (CONVERSATION); returns (caller, alice)."""
    return scenarios.connected_call(centre.network, centre.number, number, reason, conversation=conversation)


def consulting(centre):
    """A caller on hold while Alice consults Bob (warm transfer by DTMF); returns (caller, alice, bob)."""
    return scenarios.consulting(centre.network, centre.number)


def transfer_row(centre):
    with centre.db() as session:
        transfer = session.scalar(select(Transfer).order_by(Transfer.id.desc()))
        session.expunge(transfer)
        return transfer


def call_row(centre, sid):
    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == sid))
        session.expunge(call)
        return call


def agent_activity(centre, extension):
    with centre.db() as session:
        return session.scalar(select(Agent.activity).where(Agent.extension == extension))


def in_room(leg, room_suffix: str) -> bool:
    """Whether a simulated leg is dialled into the room whose SIP user is ROOM_SUFFIX, and LiveKit answered it."""
    return leg.live and leg.bridged and bool(leg.dialed) and leg.dialed[0].target.startswith(f"sip:{room_suffix}@")


def calls_placed(centre) -> list:
    """The calls.create requests the simulated Twilio received, oldest first."""
    return [r for r in centre.network.rest_log if r.method == "POST" and r.path.endswith("/Calls.json")]


def hears_summary(centre, phone):
    """The answered target presses 1 after the greeting and waits out the turns until the summary is spoken."""
    return scenarios.hears_summary(centre.network, phone)


def accepts(centre, phone):
    """The answered target hears the summary and presses 1 to accept."""
    return scenarios.accepts(centre.network, phone)
