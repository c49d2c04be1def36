"""The Twilio webhooks, one module per leg role: the caller, an agent's phone, a transfer target's phone."""
