"""Control characters: removed from what people say and write, refused in names; and what counts as digits.

XML 1.0 allows no C0 control character but tab, line feed and carriage
return, not even as a character reference (`&#1;` is as ill-formed as the
raw byte: https://www.w3.org/TR/xml/#charsets, the Char production and the
"Legal Character" constraint), and Twilio does not carry out TwiML it
cannot parse: error 12100, "Document parse failure", "Your TwiML document
must be a valid XML Document" (https://www.twilio.com/docs/api/errors/12100). A
caller's speech, a transcript, a note or a roster name reaches TwiML, the
pages and the LLM, so every such text passes through here before it is
stored or spoken:

* free text (speech, transcripts, notes, reasons) loses each control
  character: C0 (0x00-0x1f) but tab and line feed, DEL (0x7f), C1
  (0x80-0x9f), lone surrogates and the non-characters U+FFFE and U+FFFF. A
  carriage return ends a line (CR LF and CR become LF). The digits on either
  side of one close up, so a control character between two groups of
  digits cannot hide a card number from the redactor;
* a name (an agent's, a queue's, a skill) holding one is refused, in words
  (`control_character`), since it is shown and spoken as given.

Keys, extensions and queue codes are ASCII digits (`ascii_digits`): Python's
`str.isdigit()` is also true of "²", "①" and other scripts' digits ("١٢"),
which no keypad sends, `int()` refuses some of, and no caller could dial.
"""

from __future__ import annotations

import re

__all__ = ["control_character", "without_controls", "xml_safe"]

_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LINE_ENDS = re.compile("\r\n?")


def without_controls(text: str | None) -> str:
    """TEXT without its control characters, line ends as line feeds."""
    if not text:
        return text or ""
    return _CONTROLS.sub("", _LINE_ENDS.sub("\n", text))


def control_character(text: str | None) -> str | None:
    """The first control character in TEXT (tab and line feed included), in words ("U+0001"), or None."""
    found = _CONTROLS.search(text or "") or re.search("[\t\n\r]", text or "")
    return f"U+{ord(found.group(0)):04X}" if found else None


def xml_safe(text: str) -> str:
    """TEXT without the characters XML 1.0 forbids or discourages (DEL, C1): the last guard before TwiML."""
    return _CONTROLS.sub("", text)


_ASCII_DIGITS = re.compile(r"[0-9]+")


def ascii_digits(text: str | None) -> bool:
    """Whether TEXT is one or more of the digits 0-9 and nothing else."""
    return bool(text) and _ASCII_DIGITS.fullmatch(text) is not None
