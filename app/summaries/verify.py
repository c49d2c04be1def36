"""Checking an LLM summary against the call before it is spoken: facts the call does not hold are never read out.

A sentence of the spoken summary is kept only if every fact in it appears
in what the summary was built from (the IVR reason, the transcript, the
notes, the earlier calls):

* numbers: every digit group ("49", "3.50", "2026"), and number words from
  eleven up ("forty nine", "twenty"), read as digits;
* proper names: capitalised words that are not the first word of their
  sentence, and first words that are not common sentence openers;
* month and day names.

It is a heuristic, on purpose strict: a sentence that cannot be checked is
dropped, and when no sentence is left the fallback summary (built from the
call without the LLM) is spoken instead. It cannot tell a wrong claim made
of true words ("the refund is approved" when the agent said it might be):
the prompt asks the model to state only what the call says, and the screen
marks every summary as written by the LLM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_DIGITS_RE = re.compile(r"\d+(?:[.,]\d+)*")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_TEENS = {"eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19, "hundred": 100, "thousand": 1000}
_NUMBER_WORDS_RE = re.compile(
    rf"\b(?:{'|'.join(_TENS)})(?:[\s-](?:{'|'.join(_UNITS)}))?\b|\b(?:{'|'.join(_TEENS)})\b", re.IGNORECASE)
_CALENDAR = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
             "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
# First words of a sentence that are not names (checked in lower case).
_OPENERS = {
    "the", "they", "she", "he", "it", "its", "their", "his", "her", "this", "that", "these", "those", "a", "an",
    "caller", "callers", "customer", "agent", "we", "you", "i", "there", "in", "on", "at", "after", "before",
    "notes", "note", "earlier", "automatic", "no", "nothing", "when", "while", "since", "so", "and", "but",
    "also", "please", "transfer", "summary", "if", "as", "for", "with", "from", "to", "calling", "reason",
}
# Words the service itself puts around redacted text, and its own prompt's vocabulary.
_OWN_WORDS = {"ivr", "sms", "id", "i"}


@dataclass(frozen=True)
class Verified:
    """The summary's sentences that the call bears out, and those it does not."""

    kept: str
    dropped: tuple[str, ...]


def _numbers(text: str) -> set[str]:
    found = {re.sub(r"[.,]", "", group) for group in _DIGITS_RE.findall(text)}
    for words in _NUMBER_WORDS_RE.findall(text):
        parts = re.split(r"[\s-]+", words.lower())
        found.add(str(_TENS.get(parts[0], 0) + _UNITS.get(parts[-1], 0) if parts[0] in _TENS else _TEENS[parts[0]]))
    return found


def _names(sentence: str) -> set[str]:
    words = _WORD_RE.findall(sentence)
    names = set()
    for index, word in enumerate(words):
        lower = word.lower().strip("'\u2019-")
        if lower in _CALENDAR:
            names.add(lower)
        elif word[0].isupper() and lower not in _OWN_WORDS and (index > 0 or lower not in _OPENERS):
            names.add(lower)
    return names


def _unsupported(sentence: str, source_numbers: set[str], source_words: set[str]) -> bool:
    # A number is borne out by any digit group of the call that holds it: the
    # spoken text spells reference codes digit by digit ("4 4 1 1").
    if any(not any(number in group for group in source_numbers) for number in _numbers(sentence)):
        return True
    return any(name not in source_words for name in _names(sentence))


def verify(spoken: str, sources: list[str]) -> Verified:
    """Keep the sentences of SPOKEN whose numbers and names all appear in SOURCES."""
    text = " ".join(s for s in sources if s)
    source_numbers = _numbers(text)
    source_words = {w.lower().strip("'\u2019-") for w in _WORD_RE.findall(text)}
    kept, dropped = [], []
    for sentence in filter(None, (s.strip() for s in _SENTENCE_RE.split(spoken or ""))):
        (dropped if _unsupported(sentence, source_numbers, source_words) else kept).append(sentence)
    return Verified(" ".join(kept), tuple(dropped))
