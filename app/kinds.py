"""The service's small vocabularies, stored as their words: how a transfer goes, what started it, who spoke,
where a summary came from."""

from __future__ import annotations

from enum import StrEnum


class TransferMode(StrEnum):
    """Warm: the target hears the summary and talks to the transferring agent first; blind: straight to the caller."""

    WARM = "warm"
    BLIND = "blind"


class TransferTrigger(StrEnum):
    """What started a transfer."""

    DTMF = "dtmf"  # the transferring agent's phone keys
    WEB = "web"  # a page: the call page or the console
    API = "api"  # the JSON API


class Speaker(StrEnum):
    """Whose words an utterance of the transcript is."""

    CALLER = "caller"
    AGENT = "agent"


class SummarySource(StrEnum):
    """Where a transfer's summary came from: the LLM, or the fallback built without it."""

    LLM = "llm"
    FALLBACK = "fallback"

    @property
    def label(self) -> str:
        """How the pages name it."""
        return {SummarySource.LLM: "Written by the LLM",
                SummarySource.FALLBACK: "Fallback summary: written without the LLM"}[self]
