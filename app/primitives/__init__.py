"""The parts every flow is built from: find and lock a call and its legs, close a leg, ring one, move one, reserve
and free agents, ask LiveKit who is in a room, and the effects a step records for Twilio and LiveKit."""
