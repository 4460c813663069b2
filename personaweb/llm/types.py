"""Value types and the ChatModel port shared by every LLM implementation.

Pure Python: nothing here knows about Django, HTTP or a particular server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


class ChatMessage(dict[str, str]):
    """One message of a chat prompt, which is its own JSON form: `{"role": ..., "content": ...}`.

    A long session's prompt holds a thousand messages, sent and recorded at every step; as
    dicts already they are sent (the request body) and recorded (the call record) by copying
    a list, not by converting each one. A message never changes once made: rendered messages
    are shared between the prompts of consecutive steps."""

    __slots__ = ()

    def __init__(self, role: Role, content: str) -> None:
        super().__init__(role=role, content=content)

    @property
    def role(self) -> Role:
        """Who speaks: system, user or assistant."""
        return self["role"]  # type: ignore[return-value]

    @property
    def content(self) -> str:
        """The text of the message."""
        return self["content"]

    def to_dict(self) -> dict[str, str]:
        """The message as JSON: itself (read it, never change it)."""
        return self

    def __hash__(self) -> int:  # type: ignore[override]
        return hash((self["role"], self["content"]))

    def __repr__(self) -> str:
        return f"ChatMessage(role={self['role']!r}, content={self['content']!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChatMessage, (self["role"], self["content"]))

    def _unchangeable(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a ChatMessage does not change; make a new one")

    __setitem__ = __delitem__ = _unchangeable
    update = pop = popitem = clear = setdefault = __ior__ = _unchangeable


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
    """One call's deadline in seconds, retries included: a person watching the node waits
    at most this long before it fails (or shows its answer)."""
    context_tokens: int | None = None
    """The model's context window (prompt plus reply); None means what the endpoint says
    (the embedded server's own setting, the server's report, or PERSONAWEB_CONTEXT_TOKENS)."""
    stop: tuple[str, ...] = ()
    """Texts that end the reply where they appear (e.g. a blank line ends a spoken line)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMProfile:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "stop" in known:
            known["stop"] = tuple(str(s) for s in known["stop"] or ())
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
    timeout_s: float | None = None
    """This attempt's timeout: what is left of the call's deadline (None: the profile's)."""


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
    """The LLM port. Implementations: the openai SDK one, and scripted doubles for tests.

    `complete` and `stream` make one attempt each; retries, deadlines and context budgets are
    applied around them, in one place (llm/calls.py)."""

    async def complete(self, request: ChatRequest) -> Completion:
        """Run one call to the end. With a schema, `parsed` holds the validated value."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Stream one call: text deltas, then a final chunk with the Completion. A stream that
        ends without a finish reason yields a final Completion whose finish_reason is None."""
        ...

    async def context_window(self, profile: LLMProfile) -> int | None:
        """The context window (in tokens) of the profile's model, or None if unknown."""
        ...

    async def count_tokens(self, texts: list[str], profile: LLMProfile) -> list[int] | None:
        """Exact token counts of each text by the server's tokenizer, or None if it has none."""
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
    """Earlier attempts of this call that did not count: a structured answer that failed
    validation, or a request the server refused and that was tried again. Each holds what went
    wrong ("error") and, when there was an answer, its text, tokens, latency and finish reason,
    so totals count every call the model served."""
    usage_estimated: bool = False
    """True when completion_tokens was estimated (the server reported no usage)."""
    trimmed: dict[str, Any] | None = None
    """Set when the prompt was fitted to the model's context window: how many earlier turns
    were left out ("left_out"), the window ("budget"), the prompt's tokens and how they were
    counted ("counted": "server" or "estimate")."""
    prompt_from: dict[str, Any] | None = None
    """Set on a record read back from storage whose prompt was stored as a difference: the
    first `kept` messages are those of node `node`'s prompt and `messages` holds the rest. A
    store that stores prompts that way gives them whole when asked for a node."""
    requested_model: str = ""
    """The model the request named (empty: the endpoint's default); `model` is the one that
    answered."""

    def to_dict(self, messages: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """The record as JSON; `messages` replaces the prompt (a store's shortened one)."""
        data = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "messages"}
        data["attempts"] = [dict(a) for a in self.attempts]
        data["messages"] = [dict(m) for m in (self.messages if messages is None else messages)]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @property
    def calls(self) -> int:
        """LLM calls behind this record: the one that counted and every earlier attempt
        the server answered."""
        return 1 + sum(1 for a in self.attempts if a.get("answered", "response_text" in a))

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens of every attempt (unknown counts as 0)."""
        own = (self.prompt_tokens or 0) + (self.completion_tokens or 0)
        earlier = sum(
            int(a.get("prompt_tokens") or 0) + int(a.get("completion_tokens") or 0)
            for a in self.attempts
        )
        return own + earlier

    @property
    def total_latency_s(self) -> float:
        """Wall time of every attempt."""
        return self.latency_s + sum(float(a.get("latency_s") or 0.0) for a in self.attempts)

    def attempt_summary(self, error: str) -> dict[str, Any]:
        """This record as an earlier, failed attempt of a later one."""
        return {
            "answered": bool(self.response_text) or self.finish_reason is not None,
            "response_text": self.response_text,
            "error": error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def of(cls, request: ChatRequest, completion: Completion) -> CallRecord:
        return cls(
            messages=list(request.messages),  # messages are dicts already (ChatMessage)
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
            requested_model=request.profile.model,
        )


class LLMError(Exception):
    """Base of every error the LLM port raises. `retryable` says whether trying again may help
    (a person's retry later); `transient` whether retrying at once, automatically, may."""

    retryable = False
    transient = True

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        """Base URL of the failed call, when known."""
        self.status = status
        """HTTP status the server answered with, when there was one."""
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After), when it did."""
        self.tries = 1
        """How many tries the call made before giving up with this error."""


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


class LLMContextExceeded(LLMRequestError):
    """The prompt does not fit the model's context window (the server said so, or our count
    did before sending)."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        window: int | None = None,
        requested: int | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.window = window
        """The model's context window in tokens, when known."""
        self.requested = requested
        """How many tokens the request needed, when known."""


class LLMCutOff(LLMError):
    """A streamed reply stopped before the server said it was finished: the connection broke,
    or the stream ended without a finish reason. What arrived is kept for inspection."""

    retryable = True

    def __init__(self, message: str, *, endpoint: str = "", partial: Completion) -> None:
        super().__init__(message, endpoint=endpoint)
        self.partial = partial
        """The text, tokens and timing that arrived before the cut."""
        # Text already reached the person watching: never replace it behind their back.
        self.transient = not partial.text


class StructuredOutputError(LLMError):
    """The response was not valid JSON for the requested schema."""

    def __init__(self, message: str, text: str, completion: Completion | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.completion = completion
