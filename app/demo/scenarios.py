"""The demo's LLM scenarios: how the LLM stand-in behaves and which summary the target should hear.

Kept apart from the demo's script so `flask --help` lists the choices without
loading the sandbox (which production never imports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class LlmScenario:
    """How the LLM stand-in behaves, and which summary the target should hear."""

    mode: str
    description: str
    expected_source: str
    delay_seconds: float = 0.0
    summary_deadline_seconds: Optional[float] = None  # None: the configured deadline
    timeout_seconds: Optional[float] = None  # None: the configured timeout


SCENARIOS = {
    "normal": LlmScenario("normal", "answers at once", "llm"),
    # Slower than the whisper's deadline but inside the LLM timeout: the
    # fallback is spoken and the late answer must be discarded, not used.
    "slow": LlmScenario("slow", "answers after 2.5 s, the whisper waits 1 s", "fallback",
                        delay_seconds=2.5, summary_deadline_seconds=1.0, timeout_seconds=5.0),
}
