"""Event webhooks: a subscriber on loopback is told of a whole warm transfer, in order, signed as Standard
Webhooks says; failed deliveries are retried on the schedule (virtual clock), replayed by hand, and two
instances send each delivery once."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from app.db import session_scope
from app.events import record_event
from app.jobs.setup import jobs_of
from app.jobs.tasks import sender_of
from app.models import DeliveryAttempt, EventDelivery
from app.outgoing import subscribers
from app.outgoing.catalogue import EVENT_TYPES
from app.outgoing.sending import RETRY_AFTER_SECONDS, send_line
from app.outgoing.signing import SecretUnreadable, new_secret, seal, unseal
from app.sandbox.scenarios import warm_transfer_by_dtmf
from app.states.calls import new_call
from tests.event_receiver import Receiver
from tests.test_callbacks import CUSTOMER, asks_for_a_callback, both_billing_agents_busy
from tests.transfer_helpers import ALICE, connected_call, longest_wait_turn

# Read in the IVR: the caller's reason is free text, and a card number in it never leaves the service.
CARD_REASON = "I was charged twice for my internet bill on my card 4111 1111 1111 1111"
TIMEOUT = 0.2


@pytest.fixture
def centre_settings(centre_settings):
    return replace(centre_settings, event_webhook_timeout_seconds=TIMEOUT, outbound_call_allow=("+1555",))


@pytest.fixture
def receiver():
    receiver = Receiver(slow_seconds=TIMEOUT * 4)
    yield receiver
    receiver.close()


def cli(app, *args) -> str:
    result = app.test_cli_runner().invoke(args=["events", *args])
    assert result.exit_code == 0, result.output
    return result.output


def subscribe(app, receiver, types=",".join(EVENT_TYPES), name="crm") -> str:
    """Subscribe the receiver through the command; returns the secret it printed once."""
    (secret,) = [line for line in cli(app, "subscribe", "--name", name, "--url", receiver.url,
                                      "--events", types).splitlines() if line.startswith("whsec_")]
    return secret


def signed_by(secret: str, received) -> bool:
    """Whether RECEIVED carries SECRET's signature of its id, timestamp and body, computed by the library (for
    attempts on a virtual clock hours ahead, which its `verify` would refuse as too new)."""
    moment = datetime.fromtimestamp(int(received.headers["webhook-timestamp"]), timezone.utc)
    expected = Webhook(secret).sign(received.message_id, moment, received.body)
    return expected in received.headers["webhook-signature"].split(" ")


def settle(centre) -> None:
    assert jobs_of(centre.app).wait_idle(10)


def deliver_due(centre) -> None:
    """The `deliver_due_events` timer's job, once, through the job engine; then what it queued."""
    jobs_of(centre.app).defer("deliver_due_events")
    settle(centre)


def attempts(centre) -> list[tuple[int, int | None, str | None, bool]]:
    with centre.db() as session:
        return [(a.delivery_id, a.status_code, a.error, a.replay)
                for a in session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id))]


def test_a_warm_transfer_reaches_a_subscriber_in_order_signed_and_without_the_card(centre, receiver):
    secret = subscribe(centre.app, receiver)
    caller, _alice, _bob = warm_transfer_by_dtmf(centre.network, centre.number, reason=CARD_REASON)
    caller.hangup()
    settle(centre)

    assert receiver.types() == ["call.received", "call.queued", "call.answered", "transfer.started",
                                "transfer.accepted", "transfer.completed", "call.ended"]
    webhook = Webhook(secret)
    for received in receiver.received:
        # The library checks the signature and that the timestamp is recent (the virtual clock is today's).
        assert webhook.verify(received.body, received.headers) == received.payload
        assert received.headers["content-type"] == "application/json"
    assert len({r.message_id for r in receiver.received}) == len(receiver.received)
    for received in receiver.received:
        payload = received.payload
        assert set(payload) == {"type", "id", "timestamp", "data"} and payload["id"].startswith("evt_")
        assert payload["data"]["call_sid"] == caller.sid
        assert "4111" not in received.body.decode()  # the reason's card number: redacted before it left
    by_type = {r.type: r.payload["data"] for r in receiver.received}
    assert by_type["call.received"]["queue"] is None and by_type["call.received"]["reason"] is None  # before the IVR
    for later in receiver.received[1:]:
        assert later.payload["data"]["queue"] == "billing"
        assert "[card number removed]" in later.payload["data"]["reason"]
    assert by_type["call.received"]["agent_extension"] is None
    assert by_type["call.answered"]["agent_extension"] == "101"
    started = by_type["transfer.started"]["transfer"]
    assert started["mode"] == "warm" and started["from_agent_extension"] == "101"
    assert started["target"] is None  # the agent pressed *: the target is keyed after
    assert by_type["transfer.accepted"]["transfer"]["target"] == {"kind": "agent", "extension": "102"}
    completed = by_type["transfer.completed"]["transfer"]
    assert completed["state"] == "completed" and "duplicate charge" in completed["summary"]
    assert by_type["call.ended"]["status"] == "completed" and by_type["call.ended"]["agent_extension"] == "102"
    # One attempt each, all answered.
    assert [(status, error) for _, status, error, _ in attempts(centre)] == [(204, None)] * 7


def test_a_voicemail_and_a_callback_reach_a_subscriber_without_the_recordings_address(centre, receiver):
    subscribe(centre.app, receiver, "voicemail.recorded,callback.scheduled,callback.done")
    first, _second = both_billing_agents_busy(centre)
    leaves_message = centre.network.incoming_call("+15557770505", centre.number)
    leaves_message.speak("I need a refund for a double charge")
    centre.network.advance(longest_wait_turn(centre) + 1)  # the options, at the first hold turn past the wait
    leaves_message.press("1")
    leaves_message.recording_done("https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE123")
    caller = asks_for_a_callback(centre)
    first.hangup()  # Alice is free: the callback is hers
    alice = centre.network.last_call(to=ALICE)
    centre.network.answer(alice.sid)
    alice.press("1")
    centre.network.answer(centre.network.last_call(to=CUSTOMER).sid)
    settle(centre)

    # In order within each call; the two calls' lines are sent independently, so either call's may come first.
    types = receiver.types()
    assert sorted(types) == ["callback.done", "callback.scheduled", "voicemail.recorded"]
    assert types.index("callback.scheduled") < types.index("callback.done")
    received = {r.payload["type"]: r for r in receiver.received}
    voicemail, scheduled, done = (received[kind].payload["data"]
                                  for kind in ("voicemail.recorded", "callback.scheduled", "callback.done"))
    assert voicemail["call_sid"] == leaves_message.sid and voicemail["voicemail"]["duration_seconds"] is not None
    assert "RE123" not in received["voicemail.recorded"].body.decode()
    assert scheduled["call_sid"] == caller.sid and scheduled["callback"]["state"] == "pending"
    assert scheduled["callback"]["number"] == CUSTOMER
    assert done["call_sid"] == caller.sid and done["callback"]["state"] == "completed"
    assert done["callback"]["reason"] == "reached"


def test_a_failed_delivery_is_retried_on_the_schedule_and_holds_the_calls_later_events(centre, receiver):
    receiver.answers = [500, "slow"]
    secret = subscribe(centre.app, receiver, "call.received,call.queued")
    connected_call(centre)
    settle(centre)
    assert receiver.types() == ["call.received"]  # answered 500: call.queued waits behind it

    deliver_due(centre)
    assert receiver.types() == ["call.received"]  # not due before RETRY_AFTER_SECONDS[0]
    centre.clock.advance(RETRY_AFTER_SECONDS[0])
    deliver_due(centre)
    assert receiver.types() == ["call.received"] * 2  # no answer within the timeout
    centre.clock.advance(RETRY_AFTER_SECONDS[1] - 1)
    deliver_due(centre)
    assert len(receiver.received) == 2
    centre.clock.advance(1)
    deliver_due(centre)
    assert receiver.types() == ["call.received"] * 3 + ["call.queued"]

    first = receiver.received[0]
    assert {r.message_id for r in receiver.received[:3]} == {first.message_id}  # the same webhook-id each time
    # Signed afresh at each attempt, with the attempt's own timestamp.
    assert Webhook(secret).verify(first.body, first.headers) == first.payload
    assert all(signed_by(secret, received) for received in receiver.received)
    assert not signed_by(new_secret(), first)
    assert receiver.received[2].headers["webhook-timestamp"] != first.headers["webhook-timestamp"]
    log = attempts(centre)
    assert [(status, error) for _, status, error, _ in log] == [
        (500, "HTTP 500"), (None, f"no answer within {TIMEOUT:g} s"), (204, None), (204, None)]

    listed = cli(centre.app, "deliveries", "crm")
    assert "call.received" in listed and "delivered" in listed and "HTTP 500" in listed and "no answer" in listed


def test_a_delivery_given_up_lets_the_line_go_on_and_a_replay_resends_it_with_its_webhook_id(centre, receiver):
    receiver.answers = [503] * (len(RETRY_AFTER_SECONDS) + 1)
    secret = subscribe(centre.app, receiver, "call.received,call.answered")
    connected_call(centre)
    settle(centre)
    for wait in RETRY_AFTER_SECONDS:
        centre.clock.advance(wait)
        deliver_due(centre)
    assert receiver.types() == ["call.received"] * 7 + ["call.answered"]
    with centre.db() as session:
        given_up, answered = session.scalars(select(EventDelivery).order_by(EventDelivery.id)).all()
        assert (given_up.delivery_state, given_up.attempts) == ("given_up", 7)
        assert answered.delivery_state == "delivered"
        given_up_id, message_id = given_up.id, given_up.message_id

    output = cli(centre.app, "replay", str(given_up_id))
    assert "sent again: HTTP 204" in output
    replayed = receiver.received[-1]
    assert replayed.message_id == message_id and replayed.type == "call.received"
    assert signed_by(secret, replayed)
    assert attempts(centre)[-1] == (given_up_id, 204, None, True)
    with centre.db() as session:
        assert session.get(EventDelivery, given_up_id).delivery_state == "delivered"

    # A failing replay is an error in words, and one more attempt in the log.
    receiver.answers = [500]
    result = centre.app.test_cli_runner().invoke(args=["events", "replay", str(given_up_id)])
    assert result.exit_code == 1 and "HTTP 500" in result.output
    assert attempts(centre)[-1] == (given_up_id, 500, "HTTP 500", True)
    result = centre.app.test_cli_runner().invoke(args=["events", "replay", "999999"])
    assert result.exit_code == 1 and "no delivery 999999" in result.output


def test_subscribing_refuses_plain_http_elsewhere_unknown_types_and_a_name_twice(app, receiver):
    runner = app.test_cli_runner()

    def refused(*args) -> str:
        result = runner.invoke(args=["events", "subscribe", *args])
        assert result.exit_code == 1
        return result.output

    assert "must be https" in refused("--name", "a", "--url", "http://crm.example.com/hook", "--events", "call.ended")
    assert "unknown event type call.exploded" in refused("--name", "a", "--url", "https://crm.example.com/h",
                                                         "--events", "call.ended,call.exploded")
    cli(app, "subscribe", "--name", "crm", "--url", "https://crm.example.com/h", "--events", "call.ended")
    assert "exists already" in refused("--name", "crm", "--url", "https://crm.example.com/h", "--events", "call.ended")
    listed = cli(app, "list")
    assert "crm" in listed and "https://crm.example.com/h" in listed and "whsec_" not in listed
    cli(app, "remove", "crm")
    assert cli(app, "list").strip() == "no subscribers"


def test_a_secret_is_sealed_under_secret_key():
    secret = new_secret()
    sealed = seal(secret, "one secret key of the service, long enough")
    assert secret not in sealed and unseal(sealed, "one secret key of the service, long enough") == secret
    with pytest.raises(SecretUnreadable):
        unseal(sealed, "another secret key of the service, long enough")


def test_two_instances_send_each_delivery_once_and_each_calls_in_order(make_app, settings, receiver):
    first, second = make_app(settings), make_app(settings)
    with session_scope(first) as session:
        subscribers.subscribe(session, "crm", receiver.url, list(EVENT_TYPES), settings.secret_key)
    steps = ("call_received", "call_queued", "agent_accepted", "call_ended")
    with session_scope(first) as session:
        # A new call writes its own call_received.
        calls = [new_call(session, f"CA{n:032d}", "+15551230001", "+15550000000")[0] for n in range(6)]
        for name in steps[1:]:
            for call in calls:
                record_event(session, call, name)
    # The commit queued a job per line on the first instance; the second works the same lines at once.
    senders = [sender_of(jobs_of(app).context["tools"]) for app in (first, second)]
    lines = [(1, call.id) for call in calls]
    threads = [threading.Thread(target=lambda s=s, line=line: send_line(s, *line))
               for line in lines for s in senders for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert jobs_of(first).wait_idle(10) and jobs_of(second).wait_idle(10)

    counts = Counter(r.message_id for r in receiver.received)
    assert len(counts) == len(calls) * len(steps) and set(counts.values()) == {1}
    for call in calls:
        told = [r.type for r in receiver.received if r.payload["data"]["call_sid"] == call.call_sid]
        assert told == ["call.received", "call.queued", "call.answered", "call.ended"]


@pytest.mark.parametrize("where", ["/hook?token=s3cret-in-the-query", "/hooks/catch/1/s3cret-in-the-path/?a=1"])
def test_a_failed_attempt_says_what_failed_but_not_the_urls_path_or_query(where):
    # A subscriber's URL may carry its own secret in its path (a catch hook's) or its query; requests names the
    # URL in its errors, which go to the delivery log (`flask events deliveries`) and the log line.
    from app.outgoing.sending import attempt
    from app.sandbox.served import free_port

    port = free_port()  # nothing listens there
    outcome = attempt(f"http://127.0.0.1:{port}{where}", new_secret(), "msg_query", "{}", timeout_seconds=5)
    assert not outcome.delivered and outcome.status_code is None
    assert outcome.error.startswith("ConnectionError") and "with url: /…" in outcome.error, outcome.error
    assert f"port={port}" in outcome.error and "Connection refused" in outcome.error  # still says what failed
    assert "s3cret" not in outcome.error
