"""Provisioning of the Twilio number and the LiveKit SIP trunk and dispatch rule."""
