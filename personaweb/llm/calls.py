"""Calling a model: the one place where every LLM call of PersonaWeb is made.

Two kinds of call, each returning a typed result instead of raising:

- `generate`: free text, streamed. Returns the CallRecord, or a `Failure`.
- `structured`: a JSON value valid against a schema (and an optional extra `check`). An invalid
  answer is shown back to the model with the error, up to `max_attempts` answers in all.
  Returns `Valid(value, record)`, or a `Failure` listing every attempt.

Around every request, the same rules:

1. **Fit the context window.** The prompt is fitted to the model's window with room for the
   reply (budget.py): earlier turns are left out, and the record says so (`trimmed`). A server
   that says the prompt is too long teaches us its window; the request is fitted and sent once
   more.
2. **One deadline.** `profile.timeout_s` bounds the wait for a request to start answering,
   retries included. Transient failures (connection refused, 5xx, 429, a timeout before the
   first token) are retried, at most `RetryPolicy.attempts` tries in all, with backoff or the
   server's Retry-After, never past the deadline; `on_status` is told each retry ("retrying
   (2/3) after HTTP 429") so a person watching sees why it waits.
3. **A reply is finished only when the server says so.** A stream that breaks, or ends with no
   finish reason, is a Failure (kind "cut_off") holding the partial text, never a reply.
   Nothing is retried automatically once text has streamed: the person sees what arrived and
   decides.
4. **Untrusted output.** Structured answers are validated here against the full schema,
   whatever the server claims to have enforced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from personaweb.llm.budget import fit_messages
from personaweb.llm.schema import parse_structured, validate
from personaweb.llm.types import (
    CallRecord,
    ChatMessage,
    ChatModel,
    ChatRequest,
    Completion,
    LLMContextExceeded,
    LLMCutOff,
    LLMError,
    LLMProfile,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
    StreamChunk,
    StructuredOutputError,
)

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "Failure",
    "RetryPolicy",
    "Valid",
    "generate",
    "structured",
]

TokenCallback = Callable[[str], Awaitable[None]]
"""Called with the whole text so far while a reply streams."""
StatusCallback = Callable[[str], Awaitable[None]]
"""Called with a short note when a call waits for a retry."""
Checker = Callable[[Any], list[str]]
"""Errors beyond the schema (e.g. a delegation must name a real child); empty means fine."""


async def _no_tokens(_text: str) -> None:
    return None


async def _no_status(_note: str) -> None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried within a call's deadline."""

    attempts: int = 3
    """Tries in all, the first included."""
    first_delay_s: float = 0.5
    """Wait before the second try; it doubles for each later one."""
    max_delay_s: float = 8.0
    """The longest wait between tries (a longer Retry-After is honoured if the deadline
    allows)."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    """How to wait (tests pass one that does not)."""
    clock: Callable[[], float] = time.monotonic
    """Seconds, for the deadline."""


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)
"""One try only (tests that script a single failure)."""


@dataclass
class Failure:
    """A call that produced nothing usable."""

    reason: str
    """What went wrong, for a person (a sentence with the error in it)."""
    detail: str
    """The error alone, e.g. "invalid JSON: ..." or "LLMTimeout: ..."."""
    record: CallRecord
    """What was sent, what (if anything) came back, and every earlier attempt."""
    retryable: bool
    """Whether trying again later may help."""
    kind: str
    """"cut_off", "unavailable", "timeout", "rate_limited", "refused", "context" or
    "invalid" (no valid structured answer)."""


@dataclass
class Valid:
    """A structured answer that passed validation."""

    value: Any
    """The JSON value."""
    record: CallRecord
    """The call that produced it; earlier invalid answers are in `record.attempts`."""


@dataclass
class _Call:
    """One call's running state: its deadline, its attempts, its status callback."""

    model: ChatModel
    profile: LLMProfile
    policy: RetryPolicy
    on_status: StatusCallback
    deadline: float = 0.0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    trimmed: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.deadline = self.policy.clock() + self.profile.timeout_s

    def remaining(self) -> float:
        return self.deadline - self.policy.clock()

    async def fit(
        self, messages: Sequence[ChatMessage], window: int | None = None
    ) -> list[ChatMessage]:
        """The messages fitted to the window (raises LLMContextExceeded if they cannot be)."""
        window = window or self.profile.context_tokens
        if window is None:
            window = await self.model.context_window(self.profile)
        if window is None:
            return list(messages)

        async def count(texts: list[str]) -> list[int] | None:
            return await self.model.count_tokens(texts, self.profile)

        fit = await fit_messages(
            messages, window=window, reply_tokens=self.profile.max_tokens, count=count
        )
        self.trimmed = fit.note()
        return fit.messages

    def request(
        self, messages: Sequence[ChatMessage], schema: dict[str, Any] | None, schema_name: str
    ) -> ChatRequest:
        # Each try may wait only for what is left of the deadline.
        return ChatRequest(
            tuple(messages),
            self.profile,
            schema=schema,
            schema_name=schema_name,
            timeout_s=max(1.0, self.remaining()),
        )

    async def wait_before_retry(self, error: LLMError, tries: int) -> bool:
        """After a transient error on try `tries`: wait and return True if another try fits
        the policy and the deadline, else False."""
        if tries >= self.policy.attempts or not error.retryable or not error.transient:
            return False
        delay = min(self.policy.first_delay_s * 2 ** (tries - 1), self.policy.max_delay_s)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        if delay >= self.remaining():
            return False
        why = _why(error)
        await self.on_status(f"retrying ({tries + 1}/{self.policy.attempts}) after {why}")
        await self.policy.sleep(delay)
        return True

    def record(self, request: ChatRequest, completion: Completion | None = None) -> CallRecord:
        """The record of `request` (with its answer, if any), carrying the earlier attempts and
        the fitting note."""
        if completion is None:
            completion = Completion(text="", model=self.profile.model)
        record = CallRecord.of(request, completion)
        record.attempts = list(self.attempts)
        record.trimmed = self.trimmed
        return record


def _why(error: LLMError) -> str:
    if error.status is not None:
        after = f", Retry-After {error.retry_after:g} s" if error.retry_after is not None else ""
        return f"HTTP {error.status}{after}"
    if isinstance(error, LLMTimeout):
        return "a timeout"
    return "a connection failure"


def _kind(error: LLMError) -> str:
    if isinstance(error, LLMCutOff):
        return "cut_off"
    if isinstance(error, LLMContextExceeded):
        return "context"
    if isinstance(error, LLMTimeout):
        return "timeout"
    if isinstance(error, LLMRateLimited):
        return "rate_limited"
    if isinstance(error, LLMUnavailable):
        return "unavailable"
    return "refused"


def _failure(call: _Call, request: ChatRequest, error: LLMError, tries: int) -> Failure:
    partial = error.partial if isinstance(error, LLMCutOff) else None
    record = call.record(request, partial)
    detail = f"{type(error).__name__}: {error}"
    reason = detail + (f" (after {tries} tries)" if tries > 1 else "")
    return Failure(reason, detail, record, error.retryable, _kind(error))


async def _send(
    call: _Call,
    messages: Sequence[ChatMessage],
    send: Callable[[ChatRequest], Awaitable[Completion]],
    *,
    schema: dict[str, Any] | None = None,
    schema_name: str = "response",
) -> tuple[ChatRequest, Completion]:
    """Fit, send and retry one request within the deadline. Raises the last LLMError."""
    fitted = await call.fit(messages)
    tries = 0
    learned = False
    while True:
        tries += 1
        request = call.request(fitted, schema, schema_name)
        try:
            return request, await send(request)
        except LLMContextExceeded as error:
            # The server knows its window better than we did: fit to it and try once more.
            if learned or error.window is None:
                raise
            learned = True
            refitted = await call.fit(messages, window=error.window)
            if refitted == fitted:
                raise  # it fits the window the server named: resending would change nothing
            fitted = refitted
            call.attempts.append(call.record(request).attempt_summary(str(error)))
        except LLMError as error:
            if not await call.wait_before_retry(error, tries):
                error.tries = tries
                raise
            # Kept as an attempt: the totals count every request the server was sent.
            call.attempts.append(call.record(request).attempt_summary(str(error)))


async def generate(
    model: ChatModel,
    messages: Sequence[ChatMessage],
    profile: LLMProfile,
    *,
    on_token: TokenCallback = _no_tokens,
    on_status: StatusCallback = _no_status,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> CallRecord | Failure:
    """Stream one free-text reply. A finished reply returns its record (finish reason "stop",
    or "length" when max_tokens cut it: the caller decides what that means); anything else is
    a Failure."""
    call = _Call(model, profile, policy, on_status)
    text = ""

    async def send(request: ChatRequest) -> Completion:
        nonlocal text
        text = ""
        final: Completion | None = None
        stream: AsyncIterator[StreamChunk] = model.stream(request)
        async for chunk in stream:
            if chunk.delta:
                text += chunk.delta
                await on_token(text)
            if chunk.completion is not None:
                final = chunk.completion
        if final is None or final.finish_reason is None:
            partial = final or Completion(text=text, model=profile.model)
            raise LLMCutOff(
                "the stream ended before the server said the reply was finished (no finish "
                "reason): the reply is incomplete",
                endpoint=partial.endpoint,
                partial=partial,
            )
        return final

    request = call.request(messages, None, "response")
    try:
        request, completion = await _send(call, messages, send)
    except LLMError as error:
        if isinstance(error, LLMCutOff) and not error.partial.text:
            error.partial.text = text
        return _failure(call, request, error, error.tries)
    return call.record(request, completion)


async def structured(
    model: ChatModel,
    messages: Sequence[ChatMessage],
    profile: LLMProfile,
    schema: dict[str, Any],
    *,
    check: Checker | None = None,
    max_attempts: int = 3,
    schema_name: str = "response",
    what: str = "answer",
    on_status: StatusCallback = _no_status,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> Valid | Failure:
    """A value valid against `schema` (and `check`), or a Failure after `max_attempts`
    answers (every one of them in the record's attempts)."""
    call = _Call(model, profile, policy, on_status)
    prompt = list(messages)
    request = call.request(prompt, schema, schema_name)
    last: CallRecord | None = None
    for _ in range(max(1, max_attempts)):
        completion: Completion | None = None
        try:
            request, completion = await _send(
                call, prompt, model.complete, schema=schema, schema_name=schema_name
            )
            value = completion.parsed
            if value is None:
                value = parse_structured(completion.text, schema)
            errors = validate(value, schema)
            if not errors and check is not None:
                errors = check(value)
        except StructuredOutputError as error:
            completion = error.completion or Completion(text=error.text, model=profile.model)
            value, errors = None, [str(error)]
        except LLMError as error:
            return _failure(call, request, error, error.tries)
        if not errors:
            return Valid(value, call.record(request, completion))
        message = "; ".join(errors)
        last = call.record(request, completion)
        call.attempts.append(last.attempt_summary(message))
        prompt = [
            *prompt,
            ChatMessage("assistant", completion.text or "(empty)"),
            ChatMessage(
                "user",
                f"That answer was not valid: {message}. Answer again with one JSON object only.",
            ),
        ]
    assert last is not None
    # The last invalid answer is the record itself; the ones before it are its attempts.
    detail = str(call.attempts[-1]["error"])
    tried = len(call.attempts)
    reason = (
        f"{what} unusable: {detail}"
        if tried == 1
        else f"no valid {what} after {tried} attempts; last error: {detail}"
    )
    return Failure(reason, detail, last, retryable=True, kind="invalid")
