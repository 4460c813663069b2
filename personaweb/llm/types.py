"""Value types and the ChatModel port shared by every LLM implementation.

Pure Python: nothing here knows about Django, HTTP or a particular server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat prompt."""

    role: Role
    """Who speaks: system, user or assistant."""
    content: str
    """The text of the message."""

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class LLMProfile:
    """Which model a persona talks to, and how."""

    model: str = ""
    """Model name; empty means the endpoint's default (PERSONAWEB_MODEL or the embedded model)."""
    temperature: float = 0.7
    """Sampling temperature."""
    max_tokens: int = 256
    """Upper bound on completion tokens."""
    base_url: str | None = None
    """OpenAI-compatible endpoint; None means the configured default endpoint."""
    timeout_s: float = 60.0
    """Per-request timeout in seconds."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMProfile:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class ChatRequest:
    """Everything one LLM call needs."""

    messages: tuple[ChatMessage, ...]
    """The exact prompt."""
    profile: LLMProfile
    """Model, temperature, limits and endpoint."""
    schema: dict[str, Any] | None = None
    """JSON schema the reply must satisfy (structured output), or None for free text."""
    schema_name: str = "response"
    """A short name for the schema, sent to servers that want one."""


@dataclass
class Completion:
    """The result of one finished LLM call."""

    text: str
    """The full response text."""
    model: str
    """The model that answered (as the server reports it)."""
    prompt_tokens: int | None = None
    """Prompt tokens, when the server reports usage."""
    completion_tokens: int | None = None
    """Completion tokens, when the server reports usage (else estimated from chunks)."""
    finish_reason: str | None = None
    """Why generation stopped: stop, length, ..."""
    latency_s: float = 0.0
    """Wall time of the call in seconds."""
    parsed: Any = None
    """For structured output: the JSON value, already validated against the schema."""
    endpoint: str = ""
    """Base URL the call went to."""
    usage_estimated: bool = False
    """True when the server sent no usage and completion_tokens was counted from stream chunks."""


@dataclass(frozen=True)
class StreamChunk:
    """One piece of a streamed completion. The last chunk carries the finished Completion."""

    delta: str = ""
    """New text since the previous chunk."""
    completion: Completion | None = None
    """Set only on the final chunk."""


@runtime_checkable
class ChatModel(Protocol):
    """The LLM port. Implementations: the openai SDK one, and scripted doubles for tests."""

    async def complete(self, request: ChatRequest) -> Completion:
        """Run one call to the end. With a schema, `parsed` holds the validated value."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Stream one call: text deltas, then a final chunk with the Completion."""
        ...


@dataclass
class CallRecord:
    """What a person needs to see about the LLM call behind a node."""

    messages: list[dict[str, str]]
    """The exact messages sent."""
    model: str
    """Model name (as answered by the server, else as requested)."""
    temperature: float
    """Sampling temperature used."""
    max_tokens: int
    """Completion token limit used."""
    response_text: str = ""
    """The raw response text."""
    prompt_tokens: int | None = None
    """Prompt tokens."""
    completion_tokens: int | None = None
    """Completion tokens."""
    latency_s: float = 0.0
    """Wall time in seconds."""
    finish_reason: str | None = None
    """Why generation stopped."""
    endpoint: str = ""
    """Base URL the call went to."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Earlier failed attempts of a structured call: their response text and validation error."""
    usage_estimated: bool = False
    """True when completion_tokens was estimated (the server reported no usage)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @classmethod
    def of(cls, request: ChatRequest, completion: Completion) -> CallRecord:
        return cls(
            messages=[m.to_dict() for m in request.messages],
            model=completion.model or request.profile.model,
            temperature=request.profile.temperature,
            max_tokens=request.profile.max_tokens,
            response_text=completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_s=completion.latency_s,
            finish_reason=completion.finish_reason,
            endpoint=completion.endpoint,
            usage_estimated=completion.usage_estimated,
        )


class LLMError(Exception):
    """Base of every error the LLM port raises. `retryable` says whether trying again may help."""

    retryable = False

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        """Base URL of the failed call, when known."""
        self.status = status
        """HTTP status the server answered with, when there was one."""


class LLMTimeout(LLMError):
    """The server did not answer in time."""

    retryable = True


class LLMRateLimited(LLMError):
    """The server refused for rate limits or quota (after the SDK's own retries)."""

    retryable = True


class LLMUnavailable(LLMError):
    """The server could not be reached, or answered with a 5xx."""

    retryable = True


class LLMRequestError(LLMError):
    """The server rejected the request (4xx other than 429): bad model, bad key, bad params."""


class StructuredOutputError(LLMError):
    """The response was not valid JSON for the requested schema."""

    def __init__(self, message: str, text: str, completion: Completion | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.completion = completion
