"""A phone leg's status callback: the guard finds the leg, its reaction to the status runs, the answer is empty.

The agent's, the transfer target's and an outbound call's customer's legs
each have one (agent.py, target.py, caller.py); they differ only in who
they serve and which reaction reads the status.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from flask import Blueprint, Response

from app.models import Leg
from app.primitives.context import Telephony
from app.telephony.outcomes import CallProgress
from app.voice.forms import TwilioForm
from app.voice.guard import ServesLeg, twilio_webhook
from app.voice.twiml import empty_twiml
from app.web.unit_of_work import telephony


def ends_the_leg(form: TwilioForm) -> bool:
    """Whether a status callback says the leg's call is over: what every leg's reaction acts on
    (reactions.agent_leg_status, target_leg_status, outbound.customer_status). The others (initiated, ringing,
    in-progress) change nothing of a leg whose CallSid is known: answered without locking its call
    (ServesLeg.acts_on)."""
    return form.call_status.is_final


def leg_status_callback(blueprint: Blueprint, url: str, name: str, serves: ServesLeg,
                        react: Callable[[Telephony, Leg, CallProgress], object]) -> Callable[..., Response]:
    """Serve URL on BLUEPRINT, as the view NAME, for the legs SERVES fits: REACT(t, leg, status), once the call is
    over (ends_the_leg); the statuses before that only confirm a CallSid the service may not know yet."""

    @twilio_webhook(answer="callback", serves=replace(serves, acts_on=ends_the_leg))
    def view(form: TwilioForm, leg: Leg) -> Response:
        react(telephony(), leg, form.call_status)
        return empty_twiml()

    view.__name__ = view.__qualname__ = name
    view.__doc__ = f"A status callback of the leg: {react.__module__}.{react.__name__}."
    blueprint.add_url_rule(url, endpoint=name, view_func=view, methods=["POST"])
    return view
