"""The calls tests, the benchmark, the gunicorn harness and `flask demo` place again and again, written once.

Each takes the simulated Twilio network and the service's number, and plays
the people through the service's real webhooks: by default the demo roster
(Alice 101 in billing, Bob 102 in billing and technical, Carmen 201 in technical).

A Narrator watches: `before(step)` is called before each step and
`expect(role, leg, verb, what)` where the step should have left a leg
waiting on a TwiML verb. Tests pass none (they assert for themselves); the demo's
narrator tells each step and checks each expectation.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol, Union

from app.sandbox.twilio_network import SimCall, TwilioNetwork

ALICE = "sip:alice@switchboard-demo.sip.twilio.com"
BOB = "sip:bob@switchboard-demo.sip.twilio.com"
CARMEN = "sip:carmen@switchboard-demo.sip.twilio.com"
CALLER = "+15551230001"
REASON = "I was charged twice for my internet bill"
# (speaker, words): each is transcribed on the inbound track of their own leg.
CONVERSATION = (
    ("caller", "Hi, my bill shows two charges of 49 dollars this month"),
    ("caller", "my card number is 4111 1111 1111 1111"),
    ("agent", "I see the duplicate charge, let me get billing to refund it"),
)


class ScenarioFailed(AssertionError):
    """A step found the world other than the scenario needs (a phone that did not ring)."""


class Narrator(Protocol):
    def before(self, step: str, **about: object) -> None: ...

    def expect(self, role: str, leg: SimCall, verb: str, what: str) -> None: ...


class Silent:
    """The narrator of tests: says nothing, checks nothing."""

    def before(self, step: str, **about: object) -> None:
        pass

    def expect(self, role: str, leg: SimCall, verb: str, what: str) -> None:
        pass


SILENT = Silent()


def _ringing(network: TwilioNetwork, to: str | None) -> SimCall:
    """The newest outbound call Twilio is ringing (to TO, if given)."""
    ringing = [c for c in network.calls.values()
               if c.direction == "outbound-api" and c.status in ("queued", "ringing") and (to is None or c.to == to)]
    if not ringing:
        raise ScenarioFailed(f"no phone rang{f' at {to}' if to else ''}")
    return ringing[-1]


def _answered(network: TwilioNetwork, narrator: Narrator, role: str, to: str | None, offer: str) -> SimCall:
    """The phone the service rings (at TO, if given) rings and is answered, told as ROLE's; ROLE then expects
    a <Gather>: OFFER."""
    leg = network.call(_ringing(network, to).sid)
    narrator.before(f"{role}_rings", **{role: leg})
    narrator.before(f"{role}_answers")
    network.answer(leg.sid)
    narrator.expect(role, leg, "Gather", offer)
    return leg


def connected_call(network: TwilioNetwork, service_number: str, caller_number: str = CALLER,
                   reason: str = REASON, *, conversation=CONVERSATION,
                   narrator: Narrator = SILENT) -> tuple[SimCall, SimCall]:
    """A caller connected to the first agent rung (Alice on the demo roster), after a little conversation.

    Returns (caller, agent).
    """
    narrator.before("dial", caller=caller_number, number=service_number)
    caller = network.incoming_call(caller_number, service_number)
    narrator.expect("caller", caller, "Gather", "the IVR to ask why they are calling")
    narrator.before("say_reason", reason=reason)
    caller.speak(reason)
    agent = _answered(network, narrator, "agent", None, "the agent to be offered the call")
    narrator.before("agent_accepts")
    agent.press("1")
    narrator.expect("agent", agent, "Dial", "the agent to be connected to the caller")
    narrator.expect("caller", caller, "Dial", "the caller to be connected")
    narrator.before("talk")
    for speaker, words in conversation:
        narrator.before("said", speaker=speaker, words=words)
        (caller if speaker == "caller" else agent).transcribe(words, track="inbound_track")
    return network.call(caller.sid), network.call(agent.sid)


Target = Union[tuple[str, str], Callable[[SimCall], tuple[str, str]]]


def on_a_wait_turn(target: SimCall) -> bool:
    """Whether TARGET waits out one of the service's short turns while the summary is written.

    A wait turn is a <Gather> that falls through to a look again when no key
    comes (no actionOnEmptyResult); the greeting and the whisper post their
    silence to the service instead.
    """
    verb = target.waiting_on
    return verb is not None and verb.tag == "Gather" and verb.get("actionOnEmptyResult") != "true"


def summary_reaches(network: TwilioNetwork, target: SimCall, most_turns: int = 30) -> None:
    """A target who asked for the summary waits out the service's short turns until it (or its fallback) is spoken."""
    for _ in range(most_turns):
        if not on_a_wait_turn(target):
            return
        seconds = float(target.waiting_on.get("timeout", "1"))
        if network.pauses_in_real_time:
            time.sleep(seconds)
        network.advance(seconds)


def hears_summary(network: TwilioNetwork, target: SimCall) -> SimCall:
    """The answered target presses 1 after the greeting and waits for the summary; returns the target's leg."""
    target.press("1")
    summary_reaches(network, target)
    return network.call(target.sid)


def accepts(network: TwilioNetwork, target: SimCall) -> SimCall:
    """The answered target hears the summary and presses 1 to accept."""
    hears_summary(network, target).press("1")
    return network.call(target.sid)


def consulting(network: TwilioNetwork, service_number: str, caller_number: str = CALLER,
               target: Target = ("102", BOB), *, reason: str = REASON,
               narrator: Narrator = SILENT) -> tuple[SimCall, SimCall, SimCall]:
    """The caller (saying REASON to the IVR) on hold while the agent consults TARGET (warm transfer by DTMF);
    returns (caller, a, b).

    TARGET is (extension, phone), or a function of the agent's leg giving it.
    """
    caller, a = connected_call(network, service_number, caller_number, reason, narrator=narrator)
    extension, target_phone = target(a) if callable(target) else target
    narrator.before("transfer_menu")
    a.press_star()
    narrator.expect("agent", a, "Gather", "the transfer menu")
    narrator.expect("caller", caller, "Dial", "the caller to stay in the room until a target is keyed")
    narrator.before("key_target", target=extension)
    a.press(f"2{extension}#")
    narrator.expect("caller", caller, "Play", "the caller to hear hold music")
    b = _answered(network, narrator, "target", target_phone,
                  "the target to hear who transfers and the offer of the summary")
    narrator.before("target_asks_summary")
    hears_summary(network, b)
    narrator.expect("target", b, "Gather", "the target to hear the summary and the accept menu")
    narrator.before("target_accepts")
    b.press("1")
    narrator.expect("target", b, "Dial", "the target to join the consult room")
    return caller, a, network.call(b.sid)


def warm_transfer_by_dtmf(network: TwilioNetwork, service_number: str, caller_number: str = CALLER,
                          target: Target = ("102", BOB), *, reason: str = REASON,
                          narrator: Narrator = SILENT) -> tuple[SimCall, SimCall, SimCall]:
    """A whole warm transfer by phone keys, the first agent to TARGET, completed; returns (caller, a, b)."""
    caller, a, b = consulting(network, service_number, caller_number, target, reason=reason, narrator=narrator)
    narrator.before("consult_menu")
    a.press_star()
    narrator.expect("agent", a, "Gather", "the consult menu")
    narrator.before("complete")
    a.press("2")
    network.run_pending()
    narrator.expect("caller", caller, "Dial", "the caller to be connected to the target")
    narrator.expect("target", b, "Dial", "the target to be connected to the caller")
    return caller, a, b


def hang_up_everyone(network: TwilioNetwork) -> None:
    """End every leg still up (a phone still ringing rings out), so no agent is left busy in the database."""
    for call in list(network.calls.values()):
        if call.live:
            try:
                if call.status in ("queued", "ringing"):
                    network.ring_out(call.sid)
                else:
                    call.hangup()
            except Exception:  # noqa: BLE001 - best effort: the call may be half torn down
                pass
    try:
        network.run_pending()
    except Exception:  # noqa: BLE001 - best effort: the call may be half torn down
        pass
