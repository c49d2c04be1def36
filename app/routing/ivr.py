"""Choosing a queue from what the caller pressed or said."""

from __future__ import annotations

import re
from typing import Sequence

from app.models import CLIENT_PREFIX, Queue

WORD = re.compile(r"[a-z']+")


def choose_queue(queues: Sequence[Queue], digits: str, speech: str) -> Queue | None:
    """The queue whose DTMF code was pressed, or whose name and hints best match the words said."""
    if digits:
        return next((queue for queue in queues if queue.dtmf_code == digits), None)
    words = set(WORD.findall(speech.lower()))
    if not words:
        return None
    scored = []
    for queue in queues:
        vocabulary = {queue.name.lower(), queue.skill.lower(), *(hint.lower() for hint in queue.speech_hints)}
        score = sum(1 for term in vocabulary if set(WORD.findall(term)) <= words)
        if score:
            scored.append((score, -len(queue.dtmf_code), queue.dtmf_code, queue))
    if not scored:
        return None
    return max(scored, key=lambda item: item[:2])[3]


def default_queue(queues: Sequence[Queue]) -> Queue | None:
    """The queue marked default, else the one with the lowest code."""
    marked = [queue for queue in queues if queue.is_default]
    if marked:
        return marked[0]
    return min(queues, key=lambda queue: queue.dtmf_code, default=None)


def speakable_number(number: str) -> str:
    """A phone number read digit by digit ("+1 5 5 5 ...") so <Say> does not read it as an amount; a browser's
    call (`client:<identity>`, calls/web_callers.py) has no number: "the website"."""
    if number.startswith(CLIENT_PREFIX):
        return "the website"
    digits = [ch for ch in number if ch.isdigit()]
    return " ".join(digits) if digits else "an unknown number"


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def in_line_words(place: int | None) -> str:
    """A place in a queue's line as said to a caller or an agent: "first in line", "number 12 in line"; only
    "in line" when the place is not known (never a guess)."""
    if place is None or place < 1:
        return "in line"
    return f"{ORDINALS[place - 1]} in line" if place <= len(ORDINALS) else f"number {place} in line"
