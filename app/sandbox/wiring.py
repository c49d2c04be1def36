"""Joining the stand-ins up as the real services are joined: Twilio dials LiveKit, LiveKit calls the service.

The call centre of the tests, the gunicorn harness and `flask demo` each run
the service against the same stand-ins; this is the one place that connects
them: Twilio's <Dial><Sip> to LIVEKIT_SIP_HOST reaches the LiveKit stand-in,
LiveKit's webhooks reach the service in turn with Twilio's, and the trunk and
dispatch rule are made by the service's own provisioning code.
"""

from __future__ import annotations

from typing import Callable

from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.twilio_network import TwilioNetwork
from app.telephony import urls

# Twilio's North America (Virginia) signalling range, where the simulator's INVITEs come from.
TWILIO_SIGNALLING_RANGE = "54.172.60.0/23"

Post = Callable[[str, str, dict], int]


def wire_livekit(network: TwilioNetwork, livekit: LiveKitStandIn, *, sip_host: str, public_base_url: str,
                 post: Post, failures: list | None = None) -> None:
    """Let NETWORK's <Dial><Sip> legs to SIP_HOST join LIVEKIT's rooms, and LIVEKIT's webhooks reach the service."""
    network.sip_endpoints[sip_host.lower()] = livekit
    livekit.webhook_url = public_base_url.rstrip("/") + urls.LIVEKIT_WEBHOOK

    def deliver(url: str, body: str, headers: dict) -> None:
        status = post(url, body, headers)
        if status != 200 and failures is not None:
            failures.append((status, body[:200]))

    livekit.webhook_sink = lambda url, body, headers: network.in_turn(lambda: deliver(url, body, headers))


def unwire_livekit(livekit: LiveKitStandIn) -> None:
    """Stop LiveKit's webhooks (the service is going away)."""
    livekit.webhook_sink = None


def provision_livekit(app) -> None:
    """Create the LiveKit trunk and dispatch rule with the service's own provisioning code."""
    from app.gateways.registry import gateways
    from app.provisioning.plan import apply_plan, desired_state, make_plan

    with app.app_context():
        livekit = gateways().livekit
        plan = make_plan(desired_state(app.config["SETTINGS"], ("livekit",)), None, livekit)
        apply_plan(plan, None, livekit)


def http_post(url: str, body: str, headers: dict) -> int:
    """POST a webhook over real HTTP; the status, or 599 when the service could not be reached."""
    import requests

    try:
        return requests.post(url, data=body, headers=headers, timeout=20).status_code
    except requests.RequestException:
        return 599
