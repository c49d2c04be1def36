"""Shared steps for transfer scenarios."""

from sqlalchemy import select

from app.models import Agent, Call, Transfer

ALICE = "sip:alice@switchboard-demo.sip.twilio.com"
BOB = "sip:bob@switchboard-demo.sip.twilio.com"
CARMEN = "sip:carmen@switchboard-demo.sip.twilio.com"


def connected_call(centre, number="+15551230001", reason="I was charged twice for my internet bill"):
    """A caller connected to Alice (billing), with a little transcript; returns (caller, alice)."""
    caller = centre.dial(number)
    caller.speak(reason)
    alice = centre.agent_phone(ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    caller.transcribe("Hi, my bill shows two charges of 49 dollars this month", track="inbound_track")
    caller.transcribe("my card number is 4111 1111 1111 1111", track="inbound_track")
    alice.transcribe("I see the duplicate charge, let me get billing to refund it", track="inbound_track")
    return centre.network.call(caller.sid), centre.network.call(alice.sid)


def consulting(centre):
    """A caller on hold while Alice consults Bob (warm transfer by DTMF); returns (caller, alice, bob)."""
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    bob.press("1")
    return caller, alice, centre.network.call(bob.sid)


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
