"""Remove payment-card, national-id and bank details from call text.

This runs before anything leaves for the LLM and again before anything is
spoken or logged. The rules are deliberately conservative: a contact centre
would rather lose a harmless number from a summary than read a card number
to a colleague or send it to a third-party model.

Decisions:

* Card numbers: every run of 13 to 19 digits is removed whether or not it
  passes the Luhn check. Speech recognition mishears digits and callers
  misread their cards, so a failed checksum is no evidence that the number
  is harmless. Runs longer than 19 digits are removed as "[number removed]".
* A run is digits written plainly or grouped with spaces, hyphens, en or em
  dashes, commas, full stops, slashes or underscores, or spoken: digit by digit ("four one one one", "oh" or "nought" for zero),
  with "double"/"triple", or in pairs ("forty one eleven"), in any mix.
* Kept: a run that follows "+" (or the word "plus") and holds 10 to 15 digits
  is a phone number in E.164 form. Runs of up to 12 digits (order numbers,
  national phone numbers, dates, times, amounts) are kept unless a keyword
  in front of them says what they are. An international number dialled with
  "00" instead of "+" usually reaches 13 digits and is removed.
* Keyword rules remove short numbers that follow the words naming them:
  security code / CVV / CVC (3-4 digits), PIN (4-6), sort code (6),
  routing number (9), account number (4-17), social security / SSN (4 or 9).
* Shape rules need no keyword: a US SSN written 123-45-6789, a UK National
  Insurance number (AB 12 34 56 C, official prefix letters), an IBAN (country
  code, check digits, then groups holding digits), and a UK sort code written
  12-34-56 followed by an 8-digit account number.
* Control characters are removed first (app/text.py): one between two
  digit groups would otherwise hide the run they make.
"""

import re

from app.text import without_controls

__all__ = ["redact", "redact_run"]

CARD = "[card number removed]"
LONG_NUMBER = "[number removed]"
SSN = "[SSN removed]"
NI_NUMBER = "[National Insurance number removed]"
IBAN = "[IBAN removed]"
SORT_CODE = "[sort code removed]"
SORT_CODE_AND_ACCOUNT = "[sort code and account number removed]"
ACCOUNT = "[account number removed]"
ROUTING = "[routing number removed]"
SECURITY_CODE = "[security code removed]"
PIN = "[PIN removed]"

_UNITS = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2",
    "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "niner": "9",
}
_TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19",
}
_TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6",
    "seventy": "7", "eighty": "8", "ninety": "9",
}
_REPEATS = {"double": 2, "triple": 3}


def _alt(words) -> str:
    # Longest first so "oh" wins over "o" and "nineteen" over "nine".
    return "|".join(sorted(words, key=len, reverse=True))


_UNIT = rf"(?:{_alt(_UNITS)})"
_NONZERO_UNIT = rf"(?:{_alt(w for w, d in _UNITS.items() if d != '0')})"
_TOKEN = (
    r"(?:(?<!\d)\d+(?!\d)"
    rf"|\b(?:{_alt(_REPEATS)})[\s-]+(?:{_UNIT}\b|\d(?!\d))"
    rf"|\b(?:{_alt(_TENS)})\b(?:[\s-]+{_NONZERO_UNIT}\b)?"
    rf"|\b(?:{_alt(_TEENS)}|{_alt(_UNITS)})\b)"
)
_SEPARATOR = r"[\s,.\-/_\u2013\u2014]+"
_RUN = rf"{_TOKEN}(?:{_SEPARATOR}{_TOKEN})*"

DIGIT_RUN = re.compile(_RUN, re.IGNORECASE)
_PIECE_RE = re.compile(r"\d+|[a-z]+", re.IGNORECASE)
PHONE_PREFIX = re.compile(r"(?:\+|\bplus)\s*$", re.IGNORECASE)


def digits_of(run: str) -> str:
    """Digits a run stands for, reading spoken words as a caller means them."""
    pieces = [p.lower() for p in _PIECE_RE.findall(run)]
    out: list[str] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if piece.isdigit():
            out.append(piece)
        elif piece in _REPEATS and i + 1 < len(pieces):
            following = pieces[i + 1]
            digit = following if following.isdigit() else _UNITS.get(following, "")
            out.append(digit * _REPEATS[piece])
            i += 1
        elif piece in _TENS:
            unit = _UNITS.get(pieces[i + 1], "0") if i + 1 < len(pieces) else "0"
            if unit != "0":
                i += 1
            out.append(_TENS[piece] + unit)
        elif piece in _TEENS:
            out.append(_TEENS[piece])
        elif piece in _UNITS:
            out.append(_UNITS[piece])
        i += 1
    return "".join(out)


_IBAN_RE = re.compile(
    r"\b[A-Z]{2}\d{2}"
    r"(?:[ -]?[A-Z0-9]{4})"
    r"(?:[ -]?(?=[A-Z0-9]{0,3}\d)[A-Z0-9]{4}){1,7}"
    r"(?:[ -]?(?=[A-Z0-9]{0,2}\d)[A-Z0-9]{1,3})?"
    r"(?![A-Z0-9])",
    re.IGNORECASE,
)
_NI_RE = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b",
    re.IGNORECASE,
)
_SORT_AND_ACCOUNT_RE = re.compile(r"(?<!\d)\d{2}([- ])\d{2}\1\d{2}[\s,]+\d{8}(?!\d)")
_SSN_SHAPE_RE = re.compile(r"(?<!\d)\d{3}([- ])\d{2}\1\d{4}(?!\d)")

_FILLER = (
    r"(?:[\s:#,.-]+(?:is|was|it's|it’s|its|it|are|number|no|num|of|ending|ends|"
    r"in|with|would|be|will|that's|that’s|thats|um|uh|er|erm|the|my|on|back)\b)*"
)
# (keyword pattern, digit counts that fit, marker); earlier rules win.
_KEYWORD_RULES = [
    (
        r"security\s+code|cvv2?|cvc2?|cv2|csc|card\s+verification(?:\s+(?:code|value|number))?"
        r"|three[\s-]digit\s+code|code\s+on\s+the\s+back",
        {3, 4},
        SECURITY_CODE,
    ),
    (r"pin(?:\s+(?:number|code))?", range(4, 7), PIN),
    (r"sort\s*code", {6}, SORT_CODE),
    (r"routing(?:\s+(?:and\s+)?(?:transit\s+)?(?:number|no\.?|#))?|aba|rtn", {9}, ROUTING),
    (r"social\s+security(?:\s+(?:number|no\.?))?|ssn|social", {4, 9}, SSN),
    (r"account|acct|a/c", range(4, 18), ACCOUNT),
]
_KEYWORD_RES = [
    (
        re.compile(rf"(?P<lead>\b(?:{keyword}){_FILLER}[\s:#,.-]*)(?P<run>{_RUN})", re.IGNORECASE),
        counts,
        marker,
    )
    for keyword, counts, marker in _KEYWORD_RULES
]


def _iban(match: re.Match) -> str:
    compact = re.sub(r"[ -]", "", match.group(0))
    return IBAN if 15 <= len(compact) <= 34 else match.group(0)


def _keyword_replacer(counts, marker: str):
    def replace(match: re.Match) -> str:
        if len(digits_of(match.group("run"))) in counts:
            return match.group("lead") + marker
        return match.group(0)

    return replace


def _long_run(match: re.Match, text: str) -> str:
    count = len(digits_of(match.group(0)))
    if count < 13:
        return match.group(0)
    if 10 <= count <= 15 and PHONE_PREFIX.search(text, 0, match.start()):
        return match.group(0)
    return CARD if count <= 19 else LONG_NUMBER


def redact(text: str) -> str:
    """Return text with card numbers, national ids and bank details replaced by markers."""
    if not text:
        return text or ""
    text = without_controls(text)
    text = _IBAN_RE.sub(_iban, text)
    text = _NI_RE.sub(NI_NUMBER, text)
    text = _SORT_AND_ACCOUNT_RE.sub(SORT_CODE_AND_ACCOUNT, text)
    for pattern, counts, marker in _KEYWORD_RES:
        text = pattern.sub(_keyword_replacer(counts, marker), text)
    before_runs = text
    text = DIGIT_RUN.sub(lambda m: _long_run(m, before_runs), before_runs)
    return _SSN_SHAPE_RE.sub(SSN, text)


_TRAILING_RUN_RE = re.compile(rf"(?:{_RUN})[\s,.]*$", re.IGNORECASE)
_LEADING_RUN_RE = re.compile(rf"^[\s,.]*(?:{_RUN})", re.IGNORECASE)
_WHOLE_RUN_RE = re.compile(rf"^[\s,.]*(?:{_RUN})[\s,.]*$", re.IGNORECASE)


def redact_run(texts: list[str]) -> list[str]:
    """Redact a card number read out across several utterances of one speaker, in the order they were said.

    Each text is redacted on its own first. Then digits are followed from
    one text into the next: the run that ends a text, every following text
    that is nothing but digits, and the run that begins the text after them
    are read as one number ("4111 1111", "1111", "1111 1111" are one card).
    When such a chain makes a card-length number (13 or more digits), every
    piece of it is replaced by the marker, in each text it touches.
    """
    texts = [redact(text) for text in texts]
    whole = [bool(_WHOLE_RUN_RE.match(text)) for text in texts]
    heads = [_LEADING_RUN_RE.search(text) for text in texts]
    tails = [_TRAILING_RUN_RE.search(text) for text in texts]
    cuts: dict[tuple[int, str], str] = {}
    start = 0
    while start < len(texts):
        if tails[start] is None:
            start += 1
            continue
        # A chain from the run that ends text START, through texts of digits only, into the run that begins the next.
        pieces, count, k = [(start, "tail")], len(digits_of(tails[start].group(0))), start + 1
        while k < len(texts) and heads[k] is not None:
            if not whole[k]:
                pieces.append((k, "head"))
                count += len(digits_of(heads[k].group(0)))
                break
            pieces.append((k, "whole"))
            count += len(digits_of(texts[k]))
            k += 1
        if len(pieces) > 1 and count >= 13:
            cuts.update({piece: CARD if count <= 19 else LONG_NUMBER for piece in pieces})
        # The text a chain ended in may end in a run of its own: the next chain starts there.
        start = k
    for index, text in enumerate(texts):
        if (index, "whole") in cuts:
            texts[index] = cuts[(index, "whole")]
            continue
        if (index, "tail") in cuts:
            text = text[:tails[index].start()] + cuts[(index, "tail")]
        if (index, "head") in cuts:
            text = cuts[(index, "head")] + text[heads[index].end():]
        texts[index] = text
    return texts
