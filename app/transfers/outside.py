"""Outside targets: a transfer to an E.164 number or a SIP URI, checked against the allow-list before anything rings.

A destination is rung only if it is well formed and OUTSIDE_TRANSFER_ALLOW
names its prefix (numbers: telephony/numbers.py, which says why) or its host
(SIP URIs); with an empty allow-list outside transfers are off. Every check
here is a look: nothing is written.
"""

from __future__ import annotations

import re

from app.telephony.numbers import DestinationRefused, allowed_number, normalise_number
from config import Settings

# sip:user@host[:port][;params]: no password, no ?headers (they would become
# SIP headers of Twilio's INVITE), no whitespace.
SIP_URI = re.compile(
    r"^(?i:sips?):(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,;]+)@(?P<host>[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?)"
    r"(?::(?P<port>\d{1,5}))?(?P<params>(?:;[A-Za-z0-9\-_.=]+)*)$"
)
NOT_ENABLED = "outside transfers are not enabled"
# An extension written after a number: a comma (each a one-second pause, as on a phone's keypad) then the
# keys, "+12125550100,123#"; or RFC 3966's ";ext=123". Stored the first way.
EXTENSION = re.compile(r"^(?P<number>[^,;]*?)\s*(?:(?P<keys>,.*)|;ext=(?P<ext>.*))$", re.IGNORECASE | re.DOTALL)
KEYS = re.compile(r"^,+[0-9*#][0-9*#,]*$")
# Twilio's SendDigits: at most 32 characters, "w" a half-second pause (twilio.com/docs/voice/api/call-resource).
SEND_DIGITS_LIMIT = 32
PAUSE = "ww"  # one comma: a second


def split_extension(text: str) -> tuple[str, str]:
    """The number TEXT names and its extension (",123#", "" if none), as written; DestinationRefused if the
    extension is not one (digits, * and #, after at least one comma)."""
    text = (text or "").strip()
    match = EXTENSION.match(text)
    if match is None:
        return text, ""
    keys = match["keys"] if match["keys"] is not None else "," + match["ext"]
    if not KEYS.match(keys) or len(send_digits_for(keys)) > SEND_DIGITS_LIMIT:
        raise DestinationRefused(f"{text[:60]} has no extension Twilio can send (digits, * or #, after a comma, "
                                 f"at most {SEND_DIGITS_LIMIT} keys and pauses)")
    return match["number"], keys


def normalise_outside_number(text: str) -> str:
    """TEXT as an E.164 number, with its extension if it has one ('+1 212 555 0100;ext=123' ->
    '+12125550100,123'); DestinationRefused if it is malformed."""
    number, keys = split_extension(text)
    return normalise_number(number) + keys


def send_digits_for(keys: str) -> str:
    """Twilio's SendDigits for an extension as stored (",123#" -> "ww123#"): each comma a one-second pause."""
    return keys.replace(",", PAUSE)


def normalise_sip_uri(text: str) -> str:
    """TEXT as a SIP URI with a lower-case host; DestinationRefused if it is malformed."""
    uri = (text or "").strip()
    match = SIP_URI.match(uri)
    if match is None or ".." in match["host"]:
        raise DestinationRefused(f"{uri[:60]} is not a SIP URI (sip:user@host, no headers)")
    if match["port"] and not 0 < int(match["port"]) <= 65535:
        raise DestinationRefused(f"{uri[:60]} names no valid port")
    scheme = uri[:uri.index(":")].lower()
    return f"{scheme}:{match['user']}@{match['host'].lower()}" + (f":{match['port']}" if match["port"] else "") + (
        match["params"] or "")


def is_sip_uri(text: str) -> bool:
    """Whether free text typed as an outside destination names a SIP URI (else it is taken for a number)."""
    return (text or "").strip().lower().startswith(("sip:", "sips:"))


def destination_kind(text: str) -> str:
    """What free text typed as an outside destination is ('sip_uri' or 'number'); DestinationRefused if malformed.

    The one reading of a typed destination, for the supervisor's form and
    the console (the API names the field itself); whether it may be rung is
    the allow-list's, checked when the transfer starts.
    """
    if is_sip_uri(text):
        normalise_sip_uri(text)
        return "sip_uri"
    normalise_outside_number(text)
    return "number"


def sip_host(uri: str) -> str:
    """The host of a SIP URI normalise_sip_uri accepted."""
    return SIP_URI.match(uri)["host"].lower()


def check_number(settings: Settings, text: str) -> str:
    """The E.164 number TEXT names (with its extension, if any), if the allow-list lets the number be rung;
    DestinationRefused otherwise. The allow-list is checked on the number alone: an extension is keys sent
    once the call is answered, never part of what is dialled."""
    if not settings.outside_transfers_enabled:
        raise DestinationRefused(NOT_ENABLED)
    number, keys = split_extension(text)
    return allowed_number(number, settings.outside_transfer_prefixes, off=NOT_ENABLED, what="outside transfers") + keys


def check_sip_uri(settings: Settings, text: str) -> str:
    """The SIP URI TEXT names, if the allow-list names its host or a domain above it; DestinationRefused otherwise."""
    if not settings.outside_transfers_enabled:
        raise DestinationRefused(NOT_ENABLED)
    uri = normalise_sip_uri(text)
    host = sip_host(uri)
    if not any(host == domain or host.endswith("." + domain) for domain in settings.outside_transfer_sip_domains):
        raise DestinationRefused(f"{host} is not a SIP host outside transfers may call")
    return uri
