"""Random and hostile forms, correctly signed, on every Twilio voice webhook of a live call.

Whatever a form or query holds (very long CallSids, ids past the database's
integers, unicode digits, markup, empty and repeated fields), the answer is
never a 5xx, a 200 is TwiML (XML under <Response>) made of TwiML's own
elements only, and nothing a request carried comes back unescaped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.models import Leg
from app.sandbox.signing import FORM_CONTENT_TYPE
from app.telephony import urls
from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
from tests.transfer_helpers import call_row, connected_call

pytestmark = pytest.mark.load

EXAMPLES = 400

# Each Twilio voice webhook and the query parameters the service puts in its URL.
ROUTES = {
    urls.VOICE: (), urls.STATUS: (), urls.FALLBACK: (), urls.FALLBACK_RECORDED: ("carry",),
    urls.IVR: ("call", "attempt"), urls.TRANSCRIPTION: ("call", "leg"),
    urls.CALLER_WAIT: ("call",), urls.CALLER_OPTIONS: ("call",), urls.CALLER_VOICEMAIL: ("call",),
    urls.CALLER_CONNECT: ("call",), urls.CALLER_BRIDGE_ENDED: ("call", "v"), urls.CALLER_GOODBYE: ("call",),
    urls.AGENT_ANSWER: ("leg",), urls.AGENT_WHISPER: ("leg",), urls.AGENT_STATUS: ("leg",),
    urls.AGENT_BRIDGE_ENDED: ("leg", "v"), urls.AGENT_REJOIN: ("leg", "say"), urls.AGENT_FALLBACK: ("leg",),
    urls.TRANSFER_MENU: ("transfer", "leg", "attempt"), urls.TRANSFER_CONSULT_MENU: ("transfer", "leg"),
    urls.TRANSFER_ANSWER: ("leg",), urls.TRANSFER_INTRO: ("leg",), urls.TRANSFER_WHISPER: ("leg",),
    urls.TRANSFER_SUMMARY_WAIT: ("leg",), urls.TRANSFER_STATUS: ("leg",),
    urls.TRANSFER_FALLBACK: ("leg",),
}

# Twilio's voice verbs and nouns: an answer holding any other element carries injected markup.
TWIML_ELEMENTS = {"Response", "Say", "Play", "Pause", "Gather", "Dial", "Sip", "Number", "Client", "Conference",
                  "Queue", "Redirect", "Hangup", "Reject", "Record", "Start", "Stop", "Stream", "Transcription",
                  "Siprec", "Parameter", "Enqueue", "Leave", "Connect", "Refer", "Pay", "Prompt"}

MARKER = "Inject"
HOSTILE = [
    f"<{MARKER}/>", f"</Response><Response><{MARKER}/>", f"<![CDATA[<{MARKER}/>]]>",
    f'"><{MARKER} a="', f"'><{MARKER}>", f"<?xml version=\"1.0\"?><{MARKER}/>", f"&lt;{MARKER}/&gt;",
    "&amp;", "&#x3c;", "\x00", "\r\n", "\u202e", "\ufeff", "💥", "１２３", "²", "٣", "-1", "0", "1e3", " 7 ",
    "0x10", "NaN", "true", "%00", "{{ 7*7 }}", "${7*7}", "'; DROP TABLE calls; --",
]
HUGE_IDS = [str(2**31), str(2**63), str(10**30), "9" * 400]
# Not ids, though str.isdigit() or int() may say otherwise for some.
ODD_IDS = ["²", "①", "٣", "１", "-1", "0", "", " 1", "1.0", "0x1", "1e3", "1_0"]
CALL_STATUSES = ["queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"]
DIAL_STATUSES = ["completed", "answered", "busy", "failed", "no-answer", "canceled"]


def hostile_text(max_size=40):
    return st.one_of(st.sampled_from(HOSTILE), st.text(max_size=max_size),
                     st.builds(lambda a, b, c: a + b + c, st.text(max_size=8), st.sampled_from(HOSTILE),
                               st.text(max_size=8)))


def ids(real):
    return st.one_of(st.sampled_from([str(n) for n in real]), st.sampled_from(HUGE_IDS), st.sampled_from(ODD_IDS),
                     st.integers(min_value=-5, max_value=2**40).map(str), hostile_text(12))


def call_sids(real):
    return st.one_of(
        st.sampled_from(real),
        st.just(""),
        st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map(lambda h: "CA" + h),
        # Very long: past every column and log field.
        st.integers(min_value=65, max_value=20_000).map(lambda n: ("CA" + "f" * n)[:n]),
        st.builds(lambda sid, tail: sid + tail, st.sampled_from(real), hostile_text(20)),
        hostile_text(),
    )


def field_values(name, sids):
    known = {
        "CallSid": call_sids(sids), "ParentCallSid": call_sids(sids),
        "AccountSid": st.one_of(st.just(TWILIO_ACCOUNT_SID), hostile_text()),
        "CallStatus": st.one_of(st.sampled_from(CALL_STATUSES), hostile_text()),
        "DialCallStatus": st.one_of(st.sampled_from(DIAL_STATUSES), hostile_text()),
        "Digits": st.one_of(st.text(alphabet="0123456789*#", max_size=12), hostile_text()),
        "Confidence": st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), hostile_text()),
        "RecordingDuration": st.one_of(st.sampled_from(HUGE_IDS), st.integers(-10, 10**6).map(str), hostile_text()),
        "SequenceNumber": st.one_of(st.sampled_from(HUGE_IDS), st.integers(-10, 10**6).map(str), hostile_text()),
        "RecordingUrl": st.one_of(st.just("https://api.twilio.com/2010-04-01/Recordings/RE1"), hostile_text()),
        "TranscriptionEvent": st.one_of(st.sampled_from(["transcription-started", "transcription-content",
                                                         "transcription-stopped"]), hostile_text()),
        "TranscriptionData": st.one_of(
            st.builds(lambda t, c: '{"transcript": %s, "confidence": %s}' % (t, c),
                      st.sampled_from(['"my card is 4111 1111 1111 1111"', '"<Inject/>"', "null", "7", "[]"]),
                      st.sampled_from(["0.9", '"x"', "null", "1e999"])),
            hostile_text()),
        "Final": st.sampled_from(["true", "false", "", "TRUE", "yes"]),
        "Track": st.sampled_from(["inbound_track", "outbound_track", "", "both"]),
    }
    return known.get(name, hostile_text(200))


FIELDS = ["CallSid", "AccountSid", "From", "To", "CallStatus", "Direction", "Digits", "SpeechResult", "Confidence",
          "DialCallStatus", "RecordingUrl", "RecordingDuration", "SequenceNumber", "TranscriptionEvent", "Final",
          "TranscriptionData", "Track", "ParentCallSid"]


@st.composite
def webhooks(draw, real):
    """(path, query pairs, form pairs): one route, its parameters and a form, any of them hostile."""
    path = draw(st.sampled_from(sorted(ROUTES)))
    query = []
    for name in ROUTES[path]:
        if draw(st.booleans()) or name in ("call", "leg"):
            source = {"call": ids(real["call"]), "leg": ids(real["leg"]), "transfer": ids(real["transfer"])}
            query.append((name, draw(source.get(name, hostile_text()))))
    if draw(st.integers(0, 9)) == 0 and query:  # a parameter given twice
        query.append((query[0][0], draw(ids(real["leg"]))))
    names = draw(st.lists(st.sampled_from(FIELDS), max_size=len(FIELDS), unique=True))
    if draw(st.booleans()):
        names = ["CallSid", *[n for n in names if n != "CallSid"]]
    form = [(name, draw(field_values(name, real["sid"]))) for name in names]
    form += draw(st.lists(st.tuples(hostile_text(20).filter(bool), hostile_text()), max_size=2))
    if draw(st.integers(0, 9)) == 0 and form:  # a field given twice, with another value
        name, value = form[0]
        form.append((name, value + draw(hostile_text(4).filter(bool))))
    return path, query, form


def twilio_signature_of(url: str, form: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature as Twilio computes it, repeated fields included: each name, then each of its values, sorted."""
    payload = url
    for name in sorted({name for name, _ in form}):
        for value in sorted({value for n, value in form if n == name}):
            payload += name + value
    digest = hmac.new(TWILIO_AUTH_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def post(client, path, query, form):
    target = path + (f"?{urlencode(query)}" if query else "")
    headers = {"X-Twilio-Signature": twilio_signature_of(PUBLIC_BASE_URL + target, form),
               "Content-Type": FORM_CONTENT_TYPE}
    return client.post(target, data=urlencode(form), headers=headers)


def check_answer(response, query, form) -> None:
    """The three promises: no 5xx, 200 is TwiML of TwiML's own elements, no input echoed unescaped."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body[:500]
    if response.status_code == 200:
        assert response.mimetype in ("text/xml", "application/xml"), response.mimetype
        root = ET.fromstring(response.data)
        assert root.tag == "Response"
        assert {element.tag for element in root.iter()} <= TWIML_ELEMENTS, body[:500]
    if response.mimetype == "text/plain":
        # Words for Twilio's debugger, never rendered: a browser told nosniff shows them as text.
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        return
    assert f"<{MARKER}" not in body
    for _name, value in [*query, *form]:
        if "<" in value and len(value) >= 6:
            assert value not in body, f"echoed unescaped: {value!r}"


@pytest.fixture
def live_call(centre):
    """A caller connected to Alice, with a warm transfer to Bob ringing: real ids and CallSids to aim at."""
    caller, alice = connected_call(centre)
    alice.press_star()
    alice.press("2102#")
    call = call_row(centre, caller.sid)
    with centre.db() as session:
        legs = session.scalars(select(Leg).where(Leg.call_id == call.id)).all()
        real = {"call": [call.id], "leg": [leg.id for leg in legs], "transfer": [1],
                "sid": [leg.twilio_call_sid for leg in legs if leg.twilio_call_sid]}
    return centre, real


def failures_logged(caplog) -> list[str]:
    """The steps that raised: TwiML webhooks answer those with the retry TwiML, which hides them from the status."""
    return [f"{record.msg['event']}: {record.exc_info[1]!r}" if record.exc_info else record.msg["event"]
            for record in caplog.records
            if isinstance(record.msg, dict) and record.msg.get("event") in ("webhook_failed", "after_commit_failed")]


def test_every_voice_webhook_survives_hostile_signed_forms(live_call, caplog):
    centre, real = live_call
    statuses: dict[int, int] = {}

    @given(webhook=webhooks(real))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(webhook):
        path, query, form = webhook
        caplog.clear()
        response = post(centre.client, path, query, form)
        check_answer(response, query, form)
        assert failures_logged(caplog) == [], (path, query, form)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    run()
    assert statuses.get(200, 0) > EXAMPLES // 4, f"too few requests got past the guard: {statuses}"


def test_each_route_with_huge_ids_a_long_callsid_and_empty_fields(live_call):
    centre, real = live_call
    sid = real["sid"][0]
    for path, names in sorted(ROUTES.items()):
        for query, form in (
            ([(name, str(2**63)) for name in names], [("CallSid", sid)]),
            ([(name, "9" * 400) for name in names], [("CallSid", "CA" + "f" * 10_000), ("CallStatus", "")]),
            ([(name, "") for name in names], [("CallSid", ""), ("From", ""), ("To", ""), ("Digits", "")]),
            ([], []),
        ):
            response = post(centre.client, path, query, form)
            check_answer(response, query, form)
            assert response.status_code != 403, f"{path}: signed as Twilio signs, the signature is good"


def _unicode_digit_id(centre, real):
    return urls.AGENT_ANSWER, [("leg", "²")], [("CallSid", real["sid"][1])]


def _connect_before_the_ivr_chose(centre, real):
    sid = "CA" + "e" * 32
    arrived = post(centre.client, urls.VOICE, [], [("CallSid", sid), ("From", "+15551230002"), ("To", centre.number),
                                                  ("CallStatus", "ringing")])
    assert arrived.status_code == 200
    return urls.CALLER_CONNECT, [("call", str(call_row(centre, sid).id))], [("CallSid", sid)]


def _repeated_field(centre, real):
    return urls.AGENT_STATUS, [("leg", str(real["leg"][1]))], [
        ("CallSid", real["sid"][1]), ("CallStatus", "in-progress"), ("StirVerstat", "TN-Validation-Passed-A"),
        ("StirVerstat", "TN-Validation-Passed-B")]


# Faults this fuzzer found, each kept as a case of its own now that it is fixed.
@pytest.mark.parametrize("fault", [_unicode_digit_id, _connect_before_the_ivr_chose, _repeated_field],
                         ids=["unicode-digit-id", "connect-before-the-ivr-chose", "repeated-field"])
def test_faults_the_fuzzer_found_stay_fixed(live_call, caplog, fault):
    centre, real = live_call
    path, query, form = fault(centre, real)
    caplog.clear()
    response = post(centre.client, path, query, form)
    check_answer(response, query, form)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert failures_logged(caplog) == []
