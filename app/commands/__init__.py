"""The operator's commands (`flask ...`): migrations, the roster, agents and queues, users and API tokens,
reconciling calls, provisioning Twilio and LiveKit."""
