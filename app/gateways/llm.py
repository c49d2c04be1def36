"""One OpenAI-compatible chat client for every summary provider."""

import time
from dataclasses import dataclass

import openai

PROVIDER_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
}
DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "groq": "llama-3.1-8b-instant",
    "openrouter": "openai/gpt-4o-mini",
}
PROVIDERS = ("none", *PROVIDER_BASE_URLS)

_DETAIL_LIMIT = 200


@dataclass(frozen=True)
class Completion:
    """The text of one chat completion and what it cost in time."""

    text: str
    model: str
    latency_ms: int


class LLMError(Exception):
    """A completion that could not be had: timeout, connection, http, empty."""

    def __init__(self, kind: str, detail: str = "", status: int | None = None):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.status = status


class LLMGateway:
    """Chat completions from OpenAI, Groq or OpenRouter through the openai client."""

    def __init__(
        self,
        provider: str,
        api_key: str,
        model: str | None = None,
        base_url: str | None = None,
        timeout_seconds: float = 8.0,
    ):
        if provider not in PROVIDER_BASE_URLS:
            raise ValueError(
                f"unknown LLM provider {provider!r}; expected one of {', '.join(PROVIDER_BASE_URLS)}"
            )
        if not api_key:
            raise ValueError(f"an API key is required for LLM provider {provider!r}")
        self.provider = provider
        self.model = model or DEFAULT_MODELS[provider]
        self.base_url = (base_url or PROVIDER_BASE_URLS[provider]).rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._api_key = api_key
        # No retries: the whisper has a hard deadline and a retry would only
        # spend it; the fallback summary is the retry.
        self._client = openai.OpenAI(
            api_key=api_key,
            base_url=self.base_url,
            timeout=timeout_seconds,
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"LLMGateway(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    def complete(self, messages: list[dict]) -> Completion:
        """Send chat messages and return the JSON-mode answer, or raise LLMError."""
        started = time.monotonic()
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                response_format={"type": "json_object"},
            )
        except openai.APITimeoutError as exc:
            raise LLMError("timeout", f"no answer within {self.timeout_seconds:g} s") from exc
        except openai.APIConnectionError as exc:
            raise LLMError("connection", self._scrub(str(exc))) from exc
        except openai.APIStatusError as exc:
            raise LLMError("http", self._scrub(self._status_detail(exc)), exc.status_code) from exc
        except openai.OpenAIError as exc:
            raise LLMError("invalid", self._scrub(str(exc))) from exc
        latency_ms = int((time.monotonic() - started) * 1000)

        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        text = getattr(message, "content", None) or ""
        if not isinstance(text, str) or not text.strip():
            raise LLMError("empty", "the provider returned no text")
        return Completion(text=text, model=getattr(response, "model", None) or self.model, latency_ms=latency_ms)

    def close(self) -> None:
        """Close the HTTP connections of the client."""
        self._client.close()

    def __enter__(self) -> "LLMGateway":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _status_detail(self, exc: openai.APIStatusError) -> str:
        message = ""
        body = exc.body
        if isinstance(body, dict):
            error = body.get("error", body)
            if isinstance(error, dict):
                message = str(error.get("message") or "")
        return f"HTTP {exc.status_code}" + (f": {message}" if message else "")

    def _scrub(self, detail: str) -> str:
        # Some providers echo part of the key back in their error messages.
        if self._api_key:
            detail = detail.replace(self._api_key, "***")
        return detail[:_DETAIL_LIMIT]
