"""Shared steps for transfer scenarios."""

from sqlalchemy import select

from app.models import Agent, Call, Transfer
from app.sandbox import scenarios
from app.sandbox.scenarios import ALICE, BOB, CARMEN  # noqa: F401 - the roster's phones, for the tests


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
