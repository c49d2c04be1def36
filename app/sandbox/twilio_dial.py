"""The Twilio simulator's <Dial>: the child leg, SIP to LiveKit, its timeout, its action, hangupOnStar."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Optional
from urllib.parse import parse_qsl, urljoin

from app.sandbox.livekit_sip import NO_RESPONSE, SipInvite, SipRejected
from app.sandbox.twilio_calls import (
    DIAL_STATUSES,
    DIAL_TIMEOUT_BUFFER,
    DIAL_TIMEOUT_DEFAULT,
    DIAL_TIMEOUT_MAX,
    DIAL_TIMEOUT_MIN,
    SIP_CALLER_ID,
    DialedNoun,
    DialLeg,
    SimCall,
    TwimlError,
    _sid,
)


class DialPlayer:
    """How the simulator runs a <Dial>: it rings the far end and reports the outcome to the action URL."""

    def _start_dial(self, call: SimCall, verb: ET.Element) -> None:
        nouns = [DialedNoun(child.tag, (child.text or "").strip(), dict(child.attrib))
                 for child in verb]
        if not nouns and (verb.text or "").strip():
            nouns = [DialedNoun("Number", verb.text.strip())]
        if not nouns:
            raise TwimlError(f"{call!r}: <Dial> with nothing to dial")
        timeout = int(verb.get("timeout", DIAL_TIMEOUT_DEFAULT))
        if not DIAL_TIMEOUT_MIN <= timeout <= DIAL_TIMEOUT_MAX:
            raise TwimlError(f"<Dial timeout={timeout}>: Twilio takes 5 to 600 seconds")
        # The dialled leg carries the parent's caller ID unless callerId says
        # otherwise ("Caller's callerId" is the documented default).
        caller_id = verb.get("callerId") or call.from_
        noun = nouns[0]
        if noun.kind == "Sip" and not SIP_CALLER_ID.match(caller_id):
            raise TwimlError(f"<Dial callerId={caller_id!r}>: a SIP caller ID is letters, digits and +-_. only")
        call.dialed = nouns
        leg = DialLeg(_sid("CA"), noun, caller_id)
        call.dial = leg
        call.waiting_on = verb
        endpoint = self._sip_endpoint(noun)
        if endpoint is None:
            # Somebody the test plays answers at once (dial_ends ends it).
            leg.scripted = True
            leg.bridged = True
            leg.answered_at = self.clock.now()
            return
        user, host, headers = _sip_uri_parts(noun.target)
        headers.update({"X-Twilio-CallSid": leg.sid, "X-Twilio-AccountSid": self.account_sid})
        invite = SipInvite(from_user=caller_id, to_user=user, host=host, source_ip=self.signalling_ip,
                           username=noun.username, password=noun.password, headers=headers)
        try:
            leg.sip_call = endpoint.sip_invite(
                invite,
                on_answer=lambda: self._enqueue(lambda: self._dial_answered(call, leg)),
                on_bye=lambda reason: self._enqueue(lambda: self._far_end_ended(call, leg, reason)),
            )
        except SipRejected as refusal:
            code = refusal.status
            if code == NO_RESPONSE:
                # Dropped unanswered: Twilio hears nothing and gives up when
                # the <Dial> times out (how it reports that is a guess).
                leg.timer = self.clock.call_later(timeout + DIAL_TIMEOUT_BUFFER,
                                                  lambda: self._dial_leg_over(call, leg, "no-answer"),
                                                  f"{call.sid} <Dial> unanswered INVITE")
                return
            # 486 reads as busy, any other refusal as failed (Twilio's <Sip>
            # docs give the SIP code as DialSipResponseCode).
            status = "busy" if code == 486 else "failed"
            self._enqueue(lambda: self._dial_leg_over(call, leg, status, sip_code=code))
            return
        # Twilio gives up on an unanswered <Dial> after its timeout (plus the
        # documented five-second buffer) and cancels the INVITE.
        leg.timer = self.clock.call_later(timeout + DIAL_TIMEOUT_BUFFER,
                                          lambda: self._dial_timed_out(call, leg), f"{call.sid} <Dial> timeout")

    def _sip_endpoint(self, noun: DialedNoun):
        if noun.kind != "Sip":
            return None
        return self.sip_endpoints.get(_sip_uri_parts(noun.target)[1])

    def _dial_answered(self, call: SimCall, leg: DialLeg) -> None:
        if call.dial is not leg or not call.live:
            self._hang_up_far_end(leg)
            return
        leg.bridged = True
        leg.answered_at = self.clock.now()
        if leg.timer is not None:
            leg.timer.cancel()

    def _dial_timed_out(self, call: SimCall, leg: DialLeg) -> None:
        if call.dial is leg and not leg.bridged and call.live:
            self._dial_leg_over(call, leg, "no-answer", sip_code=487)

    def _far_end_ended(self, call: SimCall, leg: DialLeg, reason: str) -> None:
        """The far end hung up (LiveKit sent BYE, or refused a ringing INVITE)."""
        leg.sip_call = None
        if call.dial is not leg or not call.live:
            return
        self._dial_leg_over(call, leg, "completed" if leg.bridged else "no-answer",
                            sip_code=200 if leg.bridged else 480)

    def _dial_leg_over(self, call: SimCall, leg: DialLeg, status: str, sip_code: Optional[int] = None) -> None:
        if call.dial is not leg or not call.live or call.waiting_on is None or call.waiting_on.tag != "Dial":
            return
        self._dial_ends(call, status, None, sip_code=sip_code)

    def _hang_up_far_end(self, leg: Optional[DialLeg]) -> None:
        if leg is None:
            return
        if leg.timer is not None:
            leg.timer.cancel()
        sip_call, leg.sip_call = leg.sip_call, None
        if sip_call is not None:
            endpoint = self.sip_endpoints.get(sip_call.invite.host)
            if endpoint is not None:
                endpoint.sip_hangup(sip_call)

    def _dial_params(self, call: SimCall, status: str, duration: Optional[int],
                     sip_code: Optional[int] = None) -> dict:
        leg = call.dial
        params = {"DialCallStatus": status, "DialCallSid": call.dial_call_sid}
        bridged = bool(leg and leg.bridged)
        params["DialBridged"] = "true" if bridged else "false"
        if bridged:
            if duration is None:
                duration = int((self.clock.now() - leg.answered_at).total_seconds())
            params["DialCallDuration"] = str(duration)
        if sip_code is not None:
            params["DialSipResponseCode"] = str(sip_code)
        return params

    def _dial_ends(self, call: SimCall, status: str, duration: Optional[int],
                   sip_code: Optional[int] = None) -> None:
        if status not in DIAL_STATUSES:
            raise ValueError(status)
        dial = self._waiting(call, "Dial")
        if call.dial is not None and call.dial.scripted:
            call.dial.bridged = status in ("completed", "answered")
        params = self._dial_params(call, status, duration, sip_code)
        self._hang_up_far_end(call.dial)
        call.waiting_on = None
        call.dialed = []
        if dial.get("action"):
            self._method(dial)
            self._fetch(call, urljoin(call._doc_url, dial.get("action")), params)
        else:
            self._run(call)

    def _press_star(self, call: SimCall, duration: Optional[int]) -> None:
        dial = self._waiting(call, "Dial")
        if dial.get("hangupOnStar") != "true":
            raise TwimlError(f"{call!r}: * does nothing in a <Dial> without hangupOnStar=\"true\"")
        if not call.dial.bridged:
            # "hangupOnStar lets the initial caller hang up on the called
            # party": while that party still rings there is nobody to hang up
            # on. The docs do not say so outright; modelled as ignored.
            call.ignored_keys.append("*")
            return
        # Twilio drops the dialled party and requests the action like any
        # other end of the <Dial>; the documented parameters carry no trace
        # of the star itself.
        self._dial_ends(call, "completed", duration or None, sip_code=200)

    def _abandon_dial(self, call: SimCall) -> None:
        """Tell a <Dial action> that the call left it, ignoring the TwiML it returns."""
        dial = call.waiting_on
        if dial is None or dial.tag != "Dial":
            return
        params = call._params()
        params.update(self._dial_params(call, "completed", None))
        self._hang_up_far_end(call.dial)
        call.waiting_on = None
        call.dialed = []
        action = dial.get("action")
        if action:
            self._send("dial-action", urljoin(call._doc_url, action), params)

    def _redirect(self, call: SimCall, url: str) -> None:
        if not call.live:
            return
        # Twilio's TwiML changelog (Dial, 2021-05-13): when a call in a
        # <Dial action> is modified to new TwiML, Twilio still requests the
        # action URL; the call then runs the new TwiML.
        self._abandon_dial(call)
        call.waiting_on = None
        self._fetch(call, url)


def _sip_uri_parts(uri: str) -> "tuple[str, str, dict[str, str]]":
    """(user, host, X- headers) of sip:user@host;params?headers."""
    rest = uri[4:] if uri.lower().startswith("sip:") else uri
    rest, _, query = rest.partition("?")
    user, _, host = rest.rpartition("@")
    host = host.split(";")[0].split(":")[0].lower()
    headers = {name: value for name, value in parse_qsl(query, keep_blank_values=True)}
    return user, host, headers
