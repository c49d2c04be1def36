"""The outside world's clients: Twilio, LiveKit and the LLM, behind small synchronous classes."""


class IntegrationMissing(RuntimeError):
    """A step needs an integration the service was not configured with."""
