"""Every request's one log line, `request_served`, with the statements it sent and the worker CPU it used."""

import json
import threading
import uuid

from sqlalchemy import event, func, select

from app.models import Agent, Call


def _served_lines(captured: str) -> list[dict]:
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == "request_served"]


class StatementsSeen:
    """The statements the app's engine runs from this test's thread (the job worker's thread is not ours)."""

    def __init__(self, engine):
        self.engine, self.count, self.thread = engine, 0, threading.get_ident()
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args) -> None:
        if threading.get_ident() == self.thread:
            self.count += 1

    def stop(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def test_a_new_calls_webhook_logs_the_statements_it_sent_and_its_cpu(centre, signed_post, capsys):
    engine = centre.app.extensions["db_engine"]
    form = {"CallSid": "CA" + uuid.uuid4().hex, "From": "+15551230077", "To": "+15550100000",
            "CallStatus": "ringing", "AccountSid": centre.network.account_sid}
    capsys.readouterr()
    seen = StatementsSeen(engine)
    try:
        with signed_post(centre.client, "/twilio/voice", form,
                         headers={"I-Twilio-Idempotency-Token": uuid.uuid4().hex, "X-Request-Id": "cost-1"}) as answer:
            twiml = answer.get_data(as_text=True)  # the line is written once the answer is closed, as a server does
    finally:
        seen.stop()
    assert answer.status_code == 200 and "<Gather" in twiml
    served = _served_lines(capsys.readouterr().err)
    assert len(served) == 1
    line = served[0]
    assert (line["method"], line["path"], line["status"], line["request_id"]) == ("POST", "/twilio/voice", 200,
                                                                                   "cost-1")
    assert line["db_statements"] > 0 and line["db_statements"] == seen.count
    assert 0 < line["cpu_ms"] <= line["duration_ms"] + 0.1  # one thread's CPU time fits in its wall time
    with centre.db() as session:
        assert session.scalar(select(func.count(Call.id)).where(Call.call_sid == form["CallSid"])) == 1


def test_a_request_without_the_database_sends_no_statements_and_each_request_counts_its_own(client, capsys):
    capsys.readouterr()
    for path in ("/health", "/ready", "/health"):
        client.get(path).close()
    health, ready, again = _served_lines(capsys.readouterr().err)
    assert (health["path"], health["status"], health["db_statements"]) == ("/health", 200, 0)
    assert ready["path"] == "/ready" and ready["db_statements"] >= 1
    assert again["db_statements"] == 0 and all(line["cpu_ms"] >= 0 for line in (health, ready, again))


def test_a_hold_turns_follow_up_after_its_answer_is_in_its_line(centre, capsys):
    """A waiting caller's hold turn rings the free agent after its answer has gone; its line is written once
    that is done, and counts those statements too."""
    with centre.db() as session:  # everyone busy
        for agent in session.scalars(select(Agent)):
            agent.activity = "on_call"
    caller = centre.dial()
    caller.press("1")
    with centre.db() as session:  # Alice is free again
        session.scalar(select(Agent).where(Agent.extension == "101")).activity = "idle"
    capsys.readouterr()
    seen = StatementsSeen(centre.app.extensions["db_engine"])
    try:
        caller.music_ends()  # the hold turn offers the call to Alice
    finally:
        seen.stop()
    served = _served_lines(capsys.readouterr().err)
    turns = [line for line in served if line["path"].startswith("/twilio/caller/wait")]
    assert len(turns) == 1 and turns[0]["db_statements"] > 0
    assert sum(line["db_statements"] for line in served) == seen.count
    assert centre.network.last_call(to="sip:alice@switchboard-demo.sip.twilio.com").live
