"""An in-process ChatModel double for tests: scripted replies, recorded calls, no network.

    model = ScriptedChatModel()
    model.enqueue("Hello.", '{"action": "reply", "message": "hi"}', LLMTimeout("slow"))
    ... run the code under test with `model` ...
    assert model.calls[0].messages[-1].content == "I am Joe."
    model.assert_complete()

For runs whose call order is not fixed (several personas concurrently), route by request:

    model.route(ScriptedChatModel.system_contains("style rewriter"), "Rewritten.")
    model.default = lambda request: "Fallback."

Structured requests (a schema) are validated with `schema.apply_schema`, exactly like the real
model, so StructuredOutputError behaves the same in tests and in production.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from personaweb.llm.schema import apply_schema
from personaweb.llm.types import ChatRequest, Completion, LLMProfile, StreamChunk

__all__ = ["Reply", "Said", "ScriptError", "ScriptedChatModel", "split_for_streaming"]


@dataclass(frozen=True)
class Said:
    """A reply with a finish reason other than "stop" (e.g. "length": cut by max_tokens)."""

    text: str
    """What the model says."""
    finish_reason: str | None = "stop"
    """Why it stopped; None streams the text and then ends without a finish reason."""


Reply = str | Said | BaseException | Callable[[ChatRequest], str]
"""A scripted reply: the text, a text with a finish reason, an exception to raise, or a
function of the request."""

Predicate = Callable[[ChatRequest], bool]


class ScriptError(BaseException):
    """The test's script is wrong: a call nobody scripted, or a reply of the wrong type.

    A BaseException on purpose: product code catches Exception to turn a persona's bug into a
    failed node, and a test double's own error must never pass through it as a "handled"
    failure. This one escapes every `except Exception` and fails the test."""


_CHUNK = re.compile(r"\S+\s*|\s+")


def split_for_streaming(text: str) -> list[str]:
    """Split text into word-sized pieces whose concatenation is exactly `text`.

    Roughly what a server streams (one token per chunk), so consumers see several deltas.
    """
    return _CHUNK.findall(text)


@dataclass
class _Route:
    """Replies reserved for requests matching a predicate."""

    predicate: Predicate
    """Which requests this route answers."""
    replies: deque[Reply] = field(default_factory=deque)
    """Replies still to give, in order."""
    repeat: bool = False
    """Reuse the last reply forever instead of running out."""


class ScriptedChatModel:
    """A ChatModel whose replies are scripted by the test."""

    def __init__(self, *replies: Reply, model_name: str = "scripted", stream_delay_s: float = 0.0):
        self._queue: deque[Reply] = deque(replies)
        self._routes: list[_Route] = []
        # Concurrent personas may call from several event loops (threads) in web tests.
        self._lock = threading.Lock()
        self.model_name = model_name
        """Reported as Completion.model when the profile names no model."""
        self.stream_delay_s = stream_delay_s
        """Pause between streamed chunks, to let tests observe a stream in progress."""
        self.calls: list[ChatRequest] = []
        """Every request received, in arrival order."""
        self.default: Callable[[ChatRequest], str] | None = None
        """Answers requests that no route and no queued reply covers."""
        self.window: int | None = None
        """The context window it claims (None: unknown, so prompts are not fitted)."""
        self.counts_words = False
        """When True, count_tokens answers with word counts (a stand-in server tokenizer)."""

    # -- scripting --------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> ScriptedChatModel:
        """Queue replies for the next calls that no route claims, in order."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def route(self, predicate: Predicate, *replies: Reply, repeat: bool = False) -> None:
        """Answer requests matching `predicate` with `replies`, in order, before the queue.

        A route is used up when its replies are; with `repeat=True` its last reply is reused.
        Routes are tried in the order they were added.
        """
        if not replies:
            raise ValueError("route() needs at least one reply")
        with self._lock:
            self._routes.append(_Route(predicate, deque(replies), repeat))

    @staticmethod
    def system_contains(text: str) -> Predicate:
        """A predicate: the request's system prompt contains `text` (case-sensitive)."""

        def predicate(request: ChatRequest) -> bool:
            return any(m.role == "system" and text in m.content for m in request.messages)

        return predicate

    def assert_complete(self) -> None:
        """Fail if scripted replies were never used (the code under test called less often)."""
        with self._lock:
            left = len(self._queue) + sum(len(r.replies) for r in self._routes if not r.repeat)
        if left:
            raise AssertionError(f"ScriptedChatModel: {left} scripted repl(ies) never used")

    # -- ChatModel --------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        said = self._next_text(request)
        chunks = split_for_streaming(said.text)
        completion = self._completion(request, said, len(chunks), started)
        return apply_schema(request, completion)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        started = time.perf_counter()
        said = self._next_text(request)
        chunks = split_for_streaming(said.text)
        for piece in chunks:
            if self.stream_delay_s:
                await asyncio.sleep(self.stream_delay_s)
            else:
                # Yield control anyway so concurrent tasks interleave like over a network.
                await asyncio.sleep(0)
            yield StreamChunk(delta=piece)
        completion = self._completion(request, said, len(chunks), started)
        yield StreamChunk(completion=apply_schema(request, completion))

    async def context_window(self, profile: LLMProfile) -> int | None:
        return profile.context_tokens or self.window

    async def count_tokens(self, texts: list[str], profile: LLMProfile) -> list[int] | None:
        return [len(t.split()) for t in texts] if self.counts_words else None

    # -- internals --------------------------------------------------------------------------

    def _next_text(self, request: ChatRequest) -> Said:
        with self._lock:
            self.calls.append(request)
            reply = self._take(request)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Said):
            return reply
        text = reply(request) if callable(reply) else reply
        if not isinstance(text, str):
            raise ScriptError(f"a scripted reply must produce str, got {type(text).__name__}")
        return Said(text)

    def _take(self, request: ChatRequest) -> Reply:
        for route in self._routes:
            if route.replies and route.predicate(request):
                if route.repeat and len(route.replies) == 1:
                    return route.replies[0]
                return route.replies.popleft()
        if self._queue:
            return self._queue.popleft()
        if self.default is not None:
            return self.default
        last = request.messages[-1].content if request.messages else ""
        raise ScriptError(
            f"ScriptedChatModel: unexpected call #{len(self.calls)} (no reply scripted); "
            f"last message: {last[:200]!r}"
        )

    def _completion(
        self, request: ChatRequest, said: Said, n_chunks: int, started: float
    ) -> Completion:
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        return Completion(
            text=said.text,
            model=request.profile.model or self.model_name,
            prompt_tokens=prompt_words,
            completion_tokens=n_chunks,
            finish_reason=said.finish_reason,
            latency_s=time.perf_counter() - started,
            endpoint="scripted://",
        )
