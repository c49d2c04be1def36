"""The calls tests, the benchmark and the gunicorn harness place again and again, written once.

Each takes the simulated Twilio network and the service's number, and plays
the people on the demo roster (Alice 101 and Carmen 201 in billing, Bob 102
in technical) through the service's real webhooks.
"""

from __future__ import annotations

from app.sandbox.twilio_network import SimCall, TwilioNetwork

ALICE = "sip:alice@switchboard-demo.sip.twilio.com"
BOB = "sip:bob@switchboard-demo.sip.twilio.com"
CARMEN = "sip:carmen@switchboard-demo.sip.twilio.com"
CALLER = "+15551230001"
REASON = "I was charged twice for my internet bill"


def connected_call(network: TwilioNetwork, service_number: str, caller_number: str = CALLER,
                   reason: str = REASON) -> tuple[SimCall, SimCall]:
    """A caller connected to Alice (billing), with a little transcript; returns (caller, alice)."""
    caller = network.incoming_call(caller_number, service_number)
    caller.speak(reason)
    alice = network.last_call(to=ALICE)
    network.answer(alice.sid)
    alice.press("1")
    caller.transcribe("Hi, my bill shows two charges of 49 dollars this month", track="inbound_track")
    caller.transcribe("my card number is 4111 1111 1111 1111", track="inbound_track")
    alice.transcribe("I see the duplicate charge, let me get billing to refund it", track="inbound_track")
    return network.call(caller.sid), network.call(alice.sid)


def consulting(network: TwilioNetwork, service_number: str, caller_number: str = CALLER,
               target: str = "102") -> tuple[SimCall, SimCall, SimCall]:
    """The caller on hold while Alice consults the target (warm transfer by DTMF); returns (caller, alice, bob)."""
    caller, alice = connected_call(network, service_number, caller_number)
    alice.press_star()
    alice.press(f"2{target}#")
    bob = network.last_call(to=BOB)
    network.answer(bob.sid)
    bob.press("1")
    return caller, alice, network.call(bob.sid)


def warm_transfer_by_dtmf(network: TwilioNetwork, service_number: str,
                          caller_number: str = CALLER) -> tuple[SimCall, SimCall, SimCall]:
    """A whole warm transfer by phone keys, Alice to Bob, completed; returns (caller, alice, bob)."""
    caller, alice, bob = consulting(network, service_number, caller_number)
    alice.press_star()
    alice.press("2")
    network.run_pending()
    return caller, alice, bob
