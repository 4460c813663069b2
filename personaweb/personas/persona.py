"""Persona base classes: the proposal protocol and the simplest persona, one prompt per step."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from personaweb.llm.types import (
    CallRecord,
    ChatMessage,
    ChatModel,
    ChatRequest,
    Completion,
    LLMError,
    LLMProfile,
)
from personaweb.personas.proposal import Deliberation, ProposalFailed, ProposedResponse
from personaweb.personas.state import Event, EventKind
from personaweb.personas.tree import Action

TokenCallback = Callable[[str], Awaitable[None]]

PASS_MARKERS = frozenset({"[pass]", "pass", "(pass)", "[silence]"})


async def _ignore_tokens(_text: str) -> None:
    return None


@dataclass
class ProposeContext:
    """What a persona gets when asked for its next proposal."""

    persona: str
    """The proposing persona's path."""
    history: list[Event]
    """Every event of this persona on the current path, across all its activations."""
    current: list[Event]
    """Events of its latest activation only (what a stateless persona sees)."""
    model: ChatModel
    """The LLM port."""
    on_token: TokenCallback = _ignore_tokens
    """Called with the accumulated text while a reply streams."""

    async def generate(self, messages: Sequence[ChatMessage], profile: LLMProfile) -> CallRecord:
        """Stream one free-text call; returns its record. LLM failures become ProposalFailed."""
        request = ChatRequest(messages=tuple(messages), profile=profile)
        text = ""
        started = time.perf_counter()
        try:
            final: Completion | None = None
            async for chunk in self.model.stream(request):
                if chunk.delta:
                    text += chunk.delta
                    await self.on_token(text)
                if chunk.completion is not None:
                    final = chunk.completion
        except LLMError as exc:
            partial = CallRecord.of(
                request,
                Completion(text=text, model="", latency_s=time.perf_counter() - started),
            )
            raise ProposalFailed(f"{type(exc).__name__}: {exc}", partial, exc.retryable) from exc
        if final is None:
            final = Completion(text=text, model=profile.model)
        return CallRecord.of(request, final)


@dataclass
class PersonaInfo:
    """A persona described for display: the hierarchy pane and the console."""

    path: str
    """Address in the hierarchy."""
    name: str
    """Its own name."""
    display_name: str
    """How it is shown to people."""
    role_kind: str
    """basic, delegating or code."""
    description: str
    """What it does, as its parent is told."""
    profile: LLMProfile
    """Model, temperature, limits."""
    stateless: bool
    """True when it sees only its inbound message."""
    children: list[PersonaInfo] = field(default_factory=list)
    """Its children, in order."""

    def walk(self) -> Iterable[tuple[int, PersonaInfo]]:
        """Depth-first (depth, info) pairs."""
        stack: list[tuple[int, PersonaInfo]] = [(0, self)]
        while stack:
            depth, info = stack.pop()
            yield depth, info
            stack.extend((depth + 1, c) for c in reversed(info.children))


class ResponseDrivenPersona(ABC):
    """The base of every persona: given what it has seen, propose what to do next.

    A persona holds configuration only. Its state comes from the path (see state.py), and the
    engine applies its proposals, so a parent never knows whether a child is basic or
    delegating: it only ever sees the child's reply.
    """

    role_kind: ClassVar[str] = "basic"

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        profile: LLMProfile | None = None,
        children: Sequence[ResponseDrivenPersona] = (),
        stateless: bool = False,
        display_name: str = "",
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"bad persona name {name!r}: non-empty, no slashes")
        self.name = name
        self.description = description
        self.profile = profile or LLMProfile()
        self.stateless = stateless
        self.display_name = display_name or name
        self.path = name
        self.children: dict[str, ResponseDrivenPersona] = {}
        for child in children:
            self.add_child(child)

    def add_child(self, child: ResponseDrivenPersona) -> None:
        if child.name in self.children:
            raise ValueError(f"{self.path} already has a child named {child.name!r}")
        self.children[child.name] = child
        child._rebase(self.path)

    def _rebase(self, parent: str) -> None:
        self.path = f"{parent}/{self.name}"
        for child in self.children.values():
            child._rebase(self.path)

    def find(self, path: str) -> ResponseDrivenPersona:
        """The persona at `path` in this hierarchy, or KeyError."""
        if path == self.path:
            return self
        prefix = self.path + "/"
        if not path.startswith(prefix):
            raise KeyError(path)
        head, _, _rest = path[len(prefix) :].partition("/")
        if head not in self.children:
            raise KeyError(path)
        return self.children[head].find(path)

    def walk(self) -> Iterable[ResponseDrivenPersona]:
        yield self
        for child in self.children.values():
            yield from child.walk()

    def describe(self) -> PersonaInfo:
        return PersonaInfo(
            path=self.path,
            name=self.name,
            display_name=self.display_name,
            role_kind=self.role_kind,
            description=self.description,
            profile=self.profile,
            stateless=self.stateless,
            children=[c.describe() for c in self.children.values()],
        )

    def with_profiles(self, profiles: dict[str, LLMProfile]) -> ResponseDrivenPersona:
        """Override LLM profiles by persona path (in place); returns self for chaining."""
        for persona in self.walk():
            if persona.path in profiles:
                persona.profile = profiles[persona.path]
        return self

    @abstractmethod
    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        """The next proposal, given what this persona has seen."""

    async def deliberate(self, ctx: ProposeContext) -> list[Deliberation]:
        """Decisions to record as nodes before proposing. Most personas have none; a group
        director records each character's choice to speak or not, with its numbers."""
        return []


def is_pass(text: str) -> bool:
    """True when a reply means 'I choose not to answer'."""
    return text.strip().lower() in PASS_MARKERS


class BasicPersona(ResponseDrivenPersona):
    """One prompt, one LLM call per step. Replies to its caller with the model's text."""

    role_kind: ClassVar[str] = "basic"

    def __init__(
        self,
        name: str,
        *,
        system_prompt: str,
        description: str = "",
        profile: LLMProfile | None = None,
        stateless: bool = False,
        can_pass: bool = False,
        display_name: str = "",
    ) -> None:
        super().__init__(
            name,
            description=description,
            profile=profile,
            stateless=stateless,
            display_name=display_name,
        )
        self.system_prompt = system_prompt
        self.can_pass = can_pass

    def build_messages(self, events: Sequence[Event]) -> list[ChatMessage]:
        """The prompt for the next call: pure, testable without a model."""
        messages = [ChatMessage("system", self.system_prompt)]
        for event in events:
            messages.extend(render_basic_event(event))
        return messages

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        events = ctx.current if self.stateless else ctx.history
        call = await ctx.generate(self.build_messages(events), self.profile)
        text = call.response_text.strip()
        if self.can_pass and (not text or is_pass(text)):
            return ProposedResponse(ctx.persona, Action.PASS, "", call=call)
        if not text:
            why = (
                f"finish reason: {call.finish_reason}"
                if call.finish_reason
                else "the stream ended without a finish reason: did the server cut it off?"
            )
            raise ProposalFailed(f"the model returned an empty reply ({why})", call)
        return ProposedResponse(ctx.persona, Action.REPLY, text, call=call)


REJECTION_NOTE = "A reviewer rejected that answer. Write a different one."


def render_basic_event(event: Event) -> list[ChatMessage]:
    """How a basic persona sees one event."""
    if event.kind is EventKind.INBOUND:
        return [ChatMessage("user", event.text)]
    if event.kind in (EventKind.OWN, EventKind.SUPERSEDED):
        return [ChatMessage("assistant", event.text or "(no answer)")]
    if event.kind is EventKind.REJECTED:
        return [
            ChatMessage("assistant", event.text or "(no answer)"),
            ChatMessage("user", REJECTION_NOTE),
        ]
    if event.kind is EventKind.FEEDBACK:
        return [ChatMessage("user", f"Reviewer feedback on your last answer: {event.text}")]
    if event.kind is EventKind.CHILD_RESULT:
        return [ChatMessage("user", f"{event.target} answered: {event.text}")]
    return []
