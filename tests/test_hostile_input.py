"""Hostile input on whole calls: control characters, oversized bodies, a card read in pieces, an injected claim."""

import json
import re
import xml.etree.ElementTree as ET

from sqlalchemy import select

from app.models import Agent, Call, Queue, Transfer, Utterance
from tests.transfer_helpers import BOB, connected_call, transfer_row

# Every C0 control character but tab, line feed and carriage return, and DEL: none may stand in XML 1.0.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# What a caller's words may hold: NUL, bell, escape, backspace, vertical tab, form feed, DEL.
NOISE = "\x00\x07\x1b[2J\x08\x0b\x0c\x7f"


def parsed(twiml: str) -> ET.Element:
    assert not NOT_XML.search(twiml), twiml
    return ET.fromstring(twiml)


def test_control_characters_in_a_callers_words_never_reach_the_twiml_rows_or_the_llm(centre):
    caller = centre.dial()
    caller.speak(f"billing{NOISE} </Say><Hangup/> please\x01")
    alice = centre.agent_phone("sip:alice@switchboard-demo.sip.twilio.com")
    centre.network.answer(alice.sid)
    whisper = parsed(alice.twiml_log[-1])
    assert whisper.find(".//Hangup") is None
    assert "billing" in whisper.find(".//Say").text and "</Say><Hangup/> please" in whisper.find(".//Say").text
    alice.press("1")
    caller.transcribe(f"I was charged twice{NOISE}, on order 55512\x03", track="inbound_track")
    centre.network.call(alice.sid).transcribe("let me check\x1f that\x00 for you", track="inbound_track")

    # A warm transfer: Bob hears the summary made from those words.
    alice.press_star()
    alice.press("2102#")
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    centre.network.run_pending()
    for twiml in bob.twiml_log:
        parsed(twiml)
    assert "charged twice" in bob.heard_text

    with centre.db() as session:
        call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
        stored = [call.ivr_reason, *(u.text for u in session.scalars(select(Utterance))),
                  *(t.summary_spoken or "" for t in session.scalars(select(Transfer)))]
    for text in stored:
        assert not NOT_XML.search(text), text
    assert "I was charged twice" in stored[1] and "let me check that for you" in stored[2]
    sent = "".join(r.raw_body for r in centre.llm.requests)
    assert centre.llm.requests and not re.search(r"\\u00[01][0-9a-f]|\\u007f", sent), sent


def test_control_characters_in_api_notes_are_removed_before_they_are_kept_or_spoken(centre, api_headers):
    caller, alice = connected_call(centre)
    response = centre.client.post(f"/api/calls/{caller.sid}/transfers",
                                  json={"extension": "102", "notes": "VIP\x07 caller,\x1b wants\x0b a refund\x7f"},
                                  headers=api_headers(centre.app))
    assert response.status_code == 201, response.get_json()
    bob = centre.agent_phone(BOB)
    centre.network.answer(bob.sid)
    centre.network.run_pending()
    for twiml in bob.twiml_log:
        parsed(twiml)
    notes = transfer_row(centre).notes
    assert notes == "VIP caller, wants a refund"


def test_a_roster_name_with_a_control_character_is_refused_in_words_and_nothing_is_loaded(runner, tmp_path):
    added = runner.invoke(args=["agents", "add", "--name", "Eve\x07 Bell", "--extension", "301"])
    assert added.exit_code != 0
    assert "agent: name 'Eve\\x07 Bell' holds a control character (U+0007)" in added.output
    queue = runner.invoke(args=["queues", "add", "--name", "sales\x1b[2J", "--dtmf-code", "3"])
    assert queue.exit_code != 0 and "queue: name 'sales\\x1b[2j' holds a control character (U+001B)" in queue.output

    roster = tmp_path / "roster.json"
    roster.write_text(json.dumps({
        "queues": [{"name": "billing", "dtmf_code": "1", "speech_hints": ["bill\x00ing"]}],
        "agents": [{"name": "Ana", "extension": "101", "skills": ["billing"]}],
    }))
    loaded = runner.invoke(args=["roster", "load", str(roster)])
    assert loaded.exit_code != 0
    assert "queue 'billing': speech hint 'bill\\x00ing' holds a control character (U+0000)" in loaded.output
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"agents": [{"name": "Ana\nMallory", "extension": "101"}]}))
    loaded = runner.invoke(args=["roster", "load", str(named)])
    assert loaded.exit_code != 0 and "holds a control character (U+000A)" in loaded.output

    from app.db import session_scope

    with session_scope(runner.app) as session:
        assert session.scalars(select(Agent)).all() == [] and session.scalars(select(Queue)).all() == []


def test_whatever_reaches_a_twiml_value_leaves_the_document_well_formed():
    from app.voice.twiml import render_twiml_text

    twiml = render_twiml_text("common/goodbye.xml", voice="Polly.Joanna\x00", language="en-US",
                              text="bye\x01 </Say> \ud800\ufffe & \x7fthanks")
    root = parsed(twiml)
    assert root.find(".//Say").text == "bye </Say>  & thanks" and root.find(".//Say").get("voice") == "Polly.Joanna"
