"""Builds the outside-world gateways from the settings, once per process."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from config import Settings


@dataclass
class Gateways:
    """The gateways of one process; None where the integration is not configured."""

    twilio: object | None = None
    livekit: object | None = None
    llm: object | None = None


def build_gateways(settings: Settings) -> Gateways:
    """Create a gateway for each configured integration."""
    gateways = Gateways()
    if settings.twilio_configured:
        from app.gateways.twilio import TwilioGateway

        gateways.twilio = TwilioGateway(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            api_base_url=settings.twilio_api_base_url or None,
            timeout_seconds=settings.twilio_timeout_seconds,
        )
    if settings.livekit_configured:
        from app.gateways.livekit import LiveKitGateway

        gateways.livekit = LiveKitGateway(
            settings.livekit_url,
            settings.livekit_api_key,
            settings.livekit_api_secret,
            timeout_seconds=settings.livekit_timeout_seconds,
        )
    if settings.llm_provider != "none":
        from app.gateways.llm import LLMGateway

        gateways.llm = LLMGateway(
            settings.llm_provider,
            settings.llm_api_key,
            settings.llm_model or None,
            base_url=settings.llm_base_url or None,
            timeout_seconds=settings.llm_timeout_seconds,
        )
    return gateways


def init_gateways(app: Flask) -> None:
    """Attach the process's gateways to the app."""
    app.extensions["gateways"] = build_gateways(app.config["SETTINGS"])


def gateways() -> Gateways:
    """The gateways of the running app."""
    return current_app.extensions["gateways"]


def close_gateways(app: Flask) -> None:
    """Release the gateways' connections and threads (tests, shutdown)."""
    for gateway in vars(app.extensions["gateways"]).values():
        close = getattr(gateway, "close", None)
        if close is not None:
            close()
