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
    normalise_number(text)
    return "number"


def sip_host(uri: str) -> str:
    """The host of a SIP URI normalise_sip_uri accepted."""
    return SIP_URI.match(uri)["host"].lower()


def check_number(settings: Settings, text: str) -> str:
    """The E.164 number TEXT names, if the allow-list lets it be rung; DestinationRefused otherwise."""
    if not settings.outside_transfers_enabled:
        raise DestinationRefused(NOT_ENABLED)
    return allowed_number(text, settings.outside_transfer_prefixes, off=NOT_ENABLED, what="outside transfers")


def check_sip_uri(settings: Settings, text: str) -> str:
    """The SIP URI TEXT names, if the allow-list names its host or a domain above it; DestinationRefused otherwise."""
    if not settings.outside_transfers_enabled:
        raise DestinationRefused(NOT_ENABLED)
    uri = normalise_sip_uri(text)
    host = sip_host(uri)
    if not any(host == domain or host.endswith("." + domain) for domain in settings.outside_transfer_sip_domains):
        raise DestinationRefused(f"{host} is not a SIP host outside transfers may call")
    return uri
