"""Persona base classes: the proposal protocol and the simplest persona, one prompt per step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from personaweb.llm import calls
from personaweb.llm.types import CallRecord, ChatMessage, ChatModel, LLMProfile
from personaweb.personas.proposal import Deliberation, ProposalFailed, ProposedResponse
from personaweb.personas.state import Event, EventKind, EventList
from personaweb.personas.tree import Action, Node

TokenCallback = Callable[[str], Awaitable[None]]
StatusCallback = Callable[[str], Awaitable[None]]

PASS_MARKERS = frozenset({"[pass]", "pass", "(pass)", "[silence]"})
CONTINUE_NOTE = (
    "Your reply was cut off at the length limit. Continue it exactly where it stopped: "
    "do not repeat anything, do not start over."
)


async def _ignore(_text: str) -> None:
    return None


def _failed(failure: calls.Failure) -> ProposalFailed:
    return ProposalFailed(failure.reason, failure.record, failure.retryable)


@dataclass
class ProposeContext:
    """What a persona gets when asked for its next proposal."""

    persona: str
    """The proposing persona's path."""
    history: Sequence[Event]
    """Every event of this persona on the current path, across all its activations (the
    path state's own list: read it, never change it)."""
    current: Sequence[Event]
    """Events of its latest activation only (what a stateless persona sees)."""
    model: ChatModel
    """The LLM port."""
    on_token: TokenCallback = _ignore
    """Called with the accumulated text while a reply streams."""
    on_status: StatusCallback = _ignore
    """Called with a short note while a call waits (e.g. "retrying (2/3) after HTTP 429")."""
    continuation: Node | None = None
    """When set, the persona is asked to continue this proposal of its own, which the
    token limit cut off, instead of proposing afresh."""
    guided: bool = True
    """Whether delegating personas with a plan offer only the moves the plan allows."""
    retry: calls.RetryPolicy = calls.DEFAULT_RETRY
    """How transient LLM failures are retried within a call's deadline."""

    async def generate(self, messages: Sequence[ChatMessage], profile: LLMProfile) -> CallRecord:
        """Stream one free-text call (llm.calls.generate); a failure becomes ProposalFailed."""
        result = await calls.generate(
            self.model,
            messages,
            profile,
            on_token=self.on_token,
            on_status=self.on_status,
            policy=self.retry,
        )
        if isinstance(result, calls.Failure):
            raise _failed(result)
        return result

    async def ask(
        self,
        messages: Sequence[ChatMessage],
        profile: LLMProfile,
        schema: dict[str, Any],
        *,
        check: calls.Checker | None = None,
        max_attempts: int = 3,
        schema_name: str = "response",
        what: str = "answer",
    ) -> calls.Valid:
        """One structured call (llm.calls.structured); a failure becomes ProposalFailed."""
        result = await calls.structured(
            self.model,
            messages,
            profile,
            schema,
            check=check,
            max_attempts=max_attempts,
            schema_name=schema_name,
            what=what,
            on_status=self.on_status,
            policy=self.retry,
        )
        if isinstance(result, calls.Failure):
            raise _failed(result)
        return result


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

    def speakers(self) -> frozenset[str]:
        """Personas below this top persona whose replies are lines of the conversation, like
        its own (see state.py). Most hierarchies have none: only the top persona speaks."""
        return frozenset()

    def with_profiles(self, profiles: Mapping[str, LLMProfile]) -> ResponseDrivenPersona:
        """Override LLM profiles (in place; see apply_profiles); returns self for chaining."""
        return apply_profiles(self, profiles)

    @abstractmethod
    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        """The next proposal, given what this persona has seen."""

    async def deliberate(self, ctx: ProposeContext) -> list[Deliberation]:
        """Decisions to record as nodes before proposing. Most personas have none; a group
        director records each character's choice to speak or not, with its numbers."""
        return []


def apply_profiles(
    root: ResponseDrivenPersona, profiles: Mapping[str, LLMProfile]
) -> ResponseDrivenPersona:
    """Give personas the profiles chosen for them, keyed by persona path
    (`orchestrator/responder`) or by role name (`responder`); a path beats a name. The one
    place profiles are applied: a character's own defaults, then a session's choices.

    Where a reply ends is the persona's, not the model choice's: a chosen profile that names
    no stop texts keeps the persona's own (a spoken line ends at a blank line, whichever
    model speaks it and however long it may be)."""
    for persona in root.walk():
        chosen = profiles.get(persona.path) or profiles.get(persona.name)
        if chosen is not None:
            if not chosen.stop and persona.profile.stop:
                chosen = replace(chosen, stop=persona.profile.stop)
            persona.profile = chosen
    return root


@dataclass
class Prompt:
    """The messages of one call, and facts about how they were made."""

    messages: list[ChatMessage]
    """What to send (the call fits it to the context window)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Kept on the proposal's node for the inspector (e.g. which lorebook entries fired)."""


def _cut(call: CallRecord) -> dict[str, Any]:
    """Node data for a reply the token limit cut off (shown in the tree and the transcript)."""
    return {"truncated": True} if call.finish_reason == "length" else {}


def join_continuation(start: str, more: str) -> str:
    """A cut-off reply and its continuation as one text: joined as they are when either side
    has the space or the continuation starts with punctuation, else with a space."""
    more = more.rstrip()
    if not more.strip():
        return start
    if start.endswith((" ", "\n")) or more[0] in " \n,.;:!?)'\u2019\u201d-":
        return start + more
    return f"{start} {more.lstrip()}"


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
        return [ChatMessage("system", self.system_prompt), *render_events(events, basic_messages)]

    async def prompt(self, ctx: ProposeContext, events: Sequence[Event]) -> Prompt:
        """The next call's prompt and what to note about it. A persona whose prompt needs more
        than the events (a character card's lorebook needs the model's context window)
        overrides this; most use `build_messages` as it is."""
        return Prompt(self.build_messages(events))

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        if ctx.continuation is not None:
            return await self.continue_reply(ctx, ctx.continuation)
        events = ctx.current if self.stateless else ctx.history
        prompt = await self.prompt(ctx, events)
        call = await ctx.generate(prompt.messages, self.profile)
        text = call.response_text.strip()
        if self.can_pass and (not text or is_pass(text)):
            return ProposedResponse(ctx.persona, Action.PASS, "", call=call, data=prompt.data)
        if not text:
            raise ProposalFailed(
                f"the model returned an empty reply (finish reason: {call.finish_reason})", call
            )
        data = {**prompt.data, **_cut(call)}
        return ProposedResponse(ctx.persona, Action.REPLY, text, call=call, data=data)

    async def continue_reply(self, ctx: ProposeContext, cut: Node) -> ProposedResponse:
        """Ask for the rest of a reply the token limit cut off: the same prompt, the reply so
        far, and a request to go on. The new proposal holds the whole text."""
        if cut.call is None or cut.action is not Action.REPLY:
            raise ProposalFailed("only a free-text reply cut off by its length can continue")
        sent = [ChatMessage(m["role"], m["content"]) for m in cut.call.messages]  # type: ignore[arg-type]
        messages = [
            *sent,
            ChatMessage("assistant", cut.content),
            ChatMessage("user", CONTINUE_NOTE),
        ]
        call = await ctx.generate(messages, self.profile)
        more = call.response_text.strip()
        if not more:
            raise ProposalFailed("the model had nothing to add to the cut-off reply", call)
        text = join_continuation(cut.content, call.response_text)
        data = {**_cut(call), "continued_from": cut.id}
        return ProposedResponse(ctx.persona, Action.REPLY, text, call=call, data=data)


REJECTION_NOTE = "A reviewer rejected that answer. Write a different one."


def rendered(event: Event, render: Callable[[Event], list[ChatMessage]]) -> list[ChatMessage]:
    """An event's messages as `render` makes them, made once per event and kept on it: events
    never change, and a long session renders the same ones at every step (the list is shared:
    read it, never change it)."""
    cache: dict[Any, list[ChatMessage]] = event.__dict__.setdefault("_rendered", {})
    messages = cache.get(render)
    if messages is None:
        messages = cache[render] = render(event)
    return messages


def render_events(
    events: Sequence[Event], render: Callable[[Event], list[ChatMessage]]
) -> list[ChatMessage]:
    """Events as messages: a path's own event list renders only what is new since the last
    step (EventList); any other sequence is rendered event by event (see `rendered`)."""
    if isinstance(events, EventList):
        return events.rendered_by(render)
    return [m for event in events for m in rendered(event, render)]


def render_basic_event(event: Event) -> list[ChatMessage]:
    """How a basic persona sees one event (see `rendered`)."""
    return rendered(event, basic_messages)


def basic_messages(event: Event) -> list[ChatMessage]:
    """How a basic persona sees one event, uncached (render_basic_event caches it)."""
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
