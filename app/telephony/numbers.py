"""Phone numbers the service may dial: the E.164 reading of a typed number, and the check against an allow-list.

Toll fraud is the classic attack on anything that dials out: whoever can
start a call can make the account ring premium or far-away numbers. So a
number is dialled only if it is well formed and an allow-list names its
prefix (OUTSIDE_TRANSFER_ALLOW for transfers, OUTBOUND_CALL_ALLOW for
outbound calls and callbacks); an empty list turns the feature off. Every
check here is a look: nothing is written.
"""

from __future__ import annotations

import re

# E.164: a plus, a country code that does not start with 0, at most 15 digits
# in all (ITU-T E.164); fewer than 8 is no dialable number anywhere.
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# What people type around the digits of a number: spaces, dashes, dots, brackets.
NUMBER_PUNCTUATION = re.compile(r"[\s\-.()]")


class DestinationRefused(ValueError):
    """A number or address that may not be rung, with the reason in words."""


def normalise_number(text: str) -> str:
    """TEXT as an E.164 number ('+44 20 7946-0000' -> '+442079460000'); DestinationRefused if it is none."""
    number = NUMBER_PUNCTUATION.sub("", text or "")
    if not E164.match(number):
        raise DestinationRefused(f"{(text or '').strip()[:40]} is not an E.164 number (+, country code, number)")
    return number


def allowed_number(text: str, prefixes: tuple[str, ...], *, off: str, what: str) -> str:
    """The E.164 number TEXT names, if one of PREFIXES starts it; DestinationRefused otherwise, saying OFF when
    there are no prefixes at all, else that WHAT may not call it."""
    if not prefixes:
        raise DestinationRefused(off)
    number = normalise_number(text)
    if not any(number.startswith(prefix) for prefix in prefixes):
        raise DestinationRefused(f"{number} is not in a country or prefix {what} may call")
    return number
