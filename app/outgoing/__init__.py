"""Event webhooks: what other systems (a CRM, a ticketing tool) are told of calls, signed as Standard Webhooks says.

catalogue.py: the event types, which timeline events each comes from, and their payloads;
outbox.py: a delivery per subscriber written in the step's own transaction, by the timeline's record_event;
signing.py: each subscriber's secret (sealed at rest) and the signed headers;
subscribers.py: subscribing, listing, removing (the `flask events` commands);
sending.py: sending a call's deliveries in order, retrying on a schedule, replaying one.
"""
