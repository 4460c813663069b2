"""Persona state derived from a path of the step tree, and what should happen next.

This is the one place that reads meaning into a path. Nothing about a run is held in memory
between steps: give `derive` the nodes root -> leaf and it says who is active, what every persona
has seen, and what the next step is. Resumption, replay and interactive mode all rest on it.

How a proposal on a path is read depends on the node that follows it:
  - a feedback node   -> the persona sees its proposal and the feedback, and proposes again;
  - an edit node      -> the edit replaces the proposal (the persona never sees the original);
  - a same-persona proposal after a rejected one -> the persona is told it was rejected;
  - anything else     -> the proposal was applied.

A greeting node is a character's opening line, written when a session starts, before any
message (card greetings: one per character, chained). Its persona is the character's top
persona (the root, or `director/<slug>` in a group). It is a line of the conversation; that
persona counts it as its own reply, and its parent (a group's director) as that persona's
result; and every persona beneath it, when its first message arrives, finds it already there
as its own first line. So the next reply follows it, whichever persona writes it (stateless
personas see only their latest activation, never the greeting).

The conversation (the transcript) is what the top persona says to the user, plus the replies
of the `speakers` a hierarchy names: a group chat's director names its characters, whose
replies to it are lines of the conversation too.

Only the leaf's reading can still change: a node with a child never changes in any way this
module reads (approve, reject, feedback and edit all act on a node before it has children).
So `PathWalk` derives a path one node at a time, keeping the leaf's reading provisional until
a child arrives; a run extends its walk by the nodes it writes instead of re-reading the path,
which makes a step cost the same at turn 10 and at turn 1,000. `derive` is a walk over a whole
path, so both always agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from personaweb.personas.tree import (
    PROPOSAL_KINDS,
    UNFINISHED,
    Action,
    Node,
    NodeKind,
    NodeStatus,
)

USER = "user"


class EventKind(StrEnum):
    INBOUND = "inbound"
    """A message to this persona (from the user or its parent)."""
    OWN = "own"
    """This persona's own applied proposal."""
    SUPERSEDED = "superseded"
    """This persona's proposal that a person answered with feedback."""
    REJECTED = "rejected"
    """This persona's proposal that a person rejected."""
    FEEDBACK = "feedback"
    """Free text from a person about the preceding proposal."""
    CHILD_RESULT = "child_result"
    """A child's reply (or pass) coming back."""
    DECISION = "decision"
    """A deliberation this persona recorded (e.g. who in a group should speak, and why)."""


@dataclass(frozen=True)
class Event:
    """One thing a persona saw or did, in order."""

    kind: EventKind
    """What happened."""
    text: str
    """Message, proposal text, feedback or child result."""
    node_id: str
    """The node it comes from."""
    activation: int
    """Which activation of the persona it belongs to (1 = first inbound message)."""
    action: Action | None = None
    """For own proposals: delegate, reply or pass. For child results: reply or pass."""
    target: str | None = None
    """Delegation target, or the child a result came from."""
    sender: str = ""
    """For inbound: who sent it."""
    created_at: float = 0.0
    """Unix time of the node (group chats measure heat decay with it)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """The node's extra facts (decision numbers, the user's pick of speaker, ...)."""


class NextKind(StrEnum):
    EMPTY = "empty"
    """No nodes yet: waiting for the first user message."""
    PROPOSE = "propose"
    """The persona at the top of the stack must propose."""
    REVIEW = "review"
    """A proposal waits for approval."""
    DELEGATE = "delegate"
    """An approved delegation waits to be delivered to the child."""
    DONE = "done"
    """The top persona answered (or passed); waiting for the next user message."""
    FAILED = "failed"
    """The leaf is a failed step."""
    BUSY = "busy"
    """The leaf is still being produced."""
    INTERRUPTED = "interrupted"
    """The leaf was cut off by a stopped process."""


@dataclass(frozen=True)
class Next:
    """What should happen after the leaf."""

    kind: NextKind
    """The kind of step."""
    persona: str = ""
    """Persona concerned: the proposer, the reviewer's target or the delegation's child."""
    node_id: str = ""
    """The node concerned (the leaf, usually)."""
    message: str = ""
    """For DELEGATE: the message to deliver."""


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the top-level conversation on this path."""

    speaker: str
    """"user" or the top persona's path."""
    text: str
    """What was said; empty for a pass."""
    node_id: str
    """The node that said it."""
    passed: bool = False
    """True when the top persona chose not to answer."""
    truncated: bool = False
    """True when the line is a reply the token limit cut off."""


class EventList(list[Event]):
    """A persona's events on a path (a list), which also keeps its events rendered as
    messages, renderer by renderer, so a history that grows by a few events a step is rendered
    a few events a step (`rendered_by`). Only the tail of a path's events ever changes (a leaf
    read again), and that is what is rendered again."""

    def rendered_by(self, render: Callable[[Event], list[Any]]) -> list[Any]:
        """Every event's messages in order, as `render` makes them (the list is the cache's
        own: read it, never change it)."""
        cache: dict[Any, tuple[list[Event], list[Any], list[int]]] = self.__dict__.setdefault(
            "_renders", {}
        )
        done, messages, ends = cache.setdefault(render, ([], [], []))
        kept = min(len(done), len(self))
        while kept and done[kept - 1] is not self[kept - 1]:
            kept -= 1
        if kept < len(done):
            del done[kept:], messages[ends[kept - 1] if kept else 0 :], ends[kept:]
        for event in self[kept:]:
            done.append(event)
            messages.extend(render(event))
            ends.append(len(messages))
        return messages

    def prefix(self, count: int) -> EventList:
        """The first `count` events as a list of their own, with what is rendered of them (a
        walk up to an earlier step renders only what follows)."""
        out = EventList(self[:count])
        renders: dict[Any, tuple[list[Event], list[Any], list[int]]] | None = self.__dict__.get(
            "_renders"
        )
        if renders:
            copied = {}
            for render, (done, messages, ends) in renders.items():
                kept = min(count, len(done))
                copied[render] = (
                    done[:kept],
                    messages[: ends[kept - 1] if kept else 0],
                    ends[:kept],
                )
            out.__dict__["_renders"] = copied
        return out


@dataclass
class PathState:
    """Everything derivable from a path."""

    path: list[Node]
    """The nodes root -> leaf."""
    stack: list[str] = field(default_factory=list)
    """Active personas, outermost first; the last one is working."""
    events: dict[str, EventList] = field(default_factory=lambda: defaultdict(EventList))
    """Per persona path, every event on this path."""
    activations: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Per persona path, how many inbound messages it received."""
    transcript: list[TranscriptLine] = field(default_factory=list)
    """The top-level conversation."""
    steps_in_run: int = 0
    """Nodes since the current run's user message (inclusive)."""
    greetings: dict[str, Node] = field(default_factory=dict)
    """Per persona path: the greeting it opened the conversation with (see the rules)."""
    next: Next = field(default_factory=lambda: Next(NextKind.EMPTY))
    """What happens next."""

    @property
    def leaf(self) -> Node | None:
        return self.path[-1] if self.path else None

    def history(self, persona: str) -> Sequence[Event]:
        """All events of a persona on this path (read it, never change it: it is the state's
        own list, not a copy, because copying it every step would cost as much as the
        session is long)."""
        return self.events.get(persona, ())

    def current(self, persona: str) -> Sequence[Event]:
        """Events of the persona's latest activation only (what a stateless persona sees).
        They are the last events of its history, so they are found from the end."""
        events: Sequence[Event] = self.events.get(persona, ())
        latest = self.activations.get(persona, 0)
        start = len(events)
        while start > 0 and events[start - 1].activation == latest:
            start -= 1
        return events[start:]


def parent_path(persona: str) -> str:
    return persona.rpartition("/")[0]


def derive(path: list[Node], root: str, speakers: frozenset[str] = frozenset()) -> PathState:
    """Read a root -> leaf path into persona state and the next step. `speakers`: personas
    below the top whose replies are lines of the conversation (see the module doc)."""
    walk = PathWalk(root, speakers)
    for node in path:
        walk.push(node)
    return walk.state


@dataclass
class _Frame:
    """The state just before a node of the walk is read: every node above it read for good
    (what `up_to` starts from). Event lists and the transcript only grow below a read node, so
    their lengths say what they held."""

    events: dict[str, int]
    transcript: int
    stack: list[str]
    activations: dict[str, int]
    greetings: dict[str, Node]
    steps_in_run: int


@dataclass
class _Mark:
    """What applying the leaf may change, as it was before: applying it is provisional."""

    stack: list[str]
    steps_in_run: int
    transcript: int
    events: dict[str, int]
    activations: dict[str, int | None]
    greeting: tuple[str, Node | None]


class PathWalk:
    """`derive`, one node at a time, for a path that grows below its leaf.

    `state` is always the state of the path walked so far. The leaf's reading is provisional
    (its status may still change, and a proposal's reading depends on the node after it), so
    it is applied with a mark and taken back when the leaf is replaced or gets a child.
    """

    def __init__(self, root: str, speakers: frozenset[str] = frozenset()) -> None:
        self.root = root
        """The top persona's path."""
        self.speakers = speakers
        """Personas below the top whose replies are lines of the conversation."""
        self.state = PathState(path=[])
        """The state of the path so far (read it, never change it)."""
        self._mark: _Mark | None = None
        self._index: dict[str, int] = {}
        self._frames: list[_Frame] = []
        """Per node of the path, the state before it was read (see _Frame)."""

    @property
    def leaf_id(self) -> str:
        return self.state.path[-1].id if self.state.path else ""

    def position(self, node_id: str) -> int | None:
        """Where a node is on the walked path (0: the root), or None."""
        return self._index.get(node_id)

    def up_to(self, node_id: str) -> PathWalk:
        """A new walk of this path's nodes from the root down to `node_id` (which must be on
        it): a branch from an earlier step. It starts from the state recorded before that node
        was read and reads only that node: no node above it is derived again (the event lists are
        copied, with what is rendered of them)."""
        at = self._index[node_id]
        frame = self._frames[at]
        walk = PathWalk(self.root, self.speakers)
        state = walk.state
        for persona, count in frame.events.items():
            state.events[persona] = self.state.events[persona].prefix(count)
        state.transcript = self.state.transcript[: frame.transcript]
        state.stack = list(frame.stack)
        state.activations.update(frame.activations)
        state.greetings = dict(frame.greetings)
        state.steps_in_run = frame.steps_in_run
        state.path = self.state.path[:at]
        walk._index = {n.id: i for i, n in enumerate(state.path)}
        walk._frames = self._frames[:at]
        walk._enter(self.state.path[at])
        return walk

    def push(self, node: Node) -> PathState:
        """Walk on to `node`, a child of the leaf (or the first node of an empty walk)."""
        state = self.state
        if state.path:
            if node.parent_id != state.path[-1].id:
                raise ValueError(f"node {node.id} is not a child of the leaf {self.leaf_id}")
            self._undo()
            _apply(state, state.path[-1], node, self.root, self.speakers)
            state.steps_in_run += 1
        self._enter(node)
        return state

    def _enter(self, node: Node) -> None:
        """Make `node` the leaf, every node above it read for good."""
        state = self.state
        self._frames.append(
            _Frame(
                events={p: len(events) for p, events in state.events.items()},
                transcript=len(state.transcript),
                stack=list(state.stack),
                activations=dict(state.activations),
                greetings=dict(state.greetings),
                steps_in_run=state.steps_in_run,
            )
        )
        self._index[node.id] = len(state.path)
        state.path.append(node)
        self._settle()

    def replace_leaf(self, node: Node) -> PathState:
        """The leaf changed (its status, content or data): read it again."""
        if not self.state.path or node.id != self.leaf_id:
            raise ValueError(f"node {node.id} is not the leaf {self.leaf_id}")
        self._undo()
        self.state.path[-1] = node
        self._settle()
        return self.state

    def _settle(self) -> None:
        state, leaf = self.state, self.state.path[-1]
        # What applying the leaf can touch: its own persona's events, its caller's (a result,
        # a greeting's parent), and those of the personas on the stack.
        personas = {leaf.persona, parent_path(leaf.persona), *state.stack}
        self._mark = _Mark(
            stack=list(state.stack),
            steps_in_run=state.steps_in_run,
            transcript=len(state.transcript),
            events={p: len(state.events[p]) for p in personas if p in state.events},
            activations={leaf.persona: state.activations.get(leaf.persona)},
            greeting=(leaf.persona, state.greetings.get(leaf.persona)),
        )
        _apply(state, leaf, None, self.root, self.speakers)
        state.steps_in_run += 1
        state.next = _next(state, leaf, self.root)

    def _undo(self) -> None:
        mark, state = self._mark, self.state
        if mark is None:
            return
        self._mark = None
        state.stack = mark.stack
        state.steps_in_run = mark.steps_in_run
        del state.transcript[mark.transcript :]
        touched = {state.path[-1].persona, parent_path(state.path[-1].persona), *mark.stack}
        for persona in list(state.events):
            if persona in mark.events:
                del state.events[persona][mark.events[persona] :]
            elif persona in touched:
                del state.events[persona]
        persona, greeting = mark.greeting
        if greeting is None:
            state.greetings.pop(persona, None)
        else:
            state.greetings[persona] = greeting
        for persona, count in mark.activations.items():
            if count is None:
                state.activations.pop(persona, None)
            else:
                state.activations[persona] = count
        state.next = Next(NextKind.EMPTY)


def _event(state: PathState, persona: str, kind: EventKind, node: Node, **kw: object) -> None:
    state.events[persona].append(
        Event(
            kind=kind,
            text=node.content,
            node_id=node.id,
            activation=state.activations[persona],
            created_at=node.created_at,
            data=node.data,
            **kw,  # type: ignore[arg-type]
        )
    )


def _apply(
    state: PathState, node: Node, following: Node | None, root: str, speakers: frozenset[str]
) -> None:
    persona = node.persona
    if node.kind is NodeKind.INBOUND:
        if node.sender == USER or persona == root:
            # A user message starts a new run at the top, whatever was left open before.
            state.stack = [persona]
            state.steps_in_run = 0
            state.transcript.append(TranscriptLine(USER, node.content, node.id))
        else:
            state.stack.append(persona)
        if state.activations[persona] == 0:
            _inherit_greeting(state, persona)
        state.activations[persona] += 1
        _event(state, persona, EventKind.INBOUND, node, sender=node.sender)
        return

    if node.kind is NodeKind.GREETING:
        _greet(state, node)
        return

    if node.kind is NodeKind.FEEDBACK:
        _event(state, persona, EventKind.FEEDBACK, node)
        return

    if node.kind is NodeKind.ERROR:
        # Only a user message can follow a failure (a retry is a sibling), and it resets the
        # stack itself.
        return

    if node.kind is NodeKind.DECISION:
        _event(state, persona, EventKind.DECISION, node)
        return

    if node.kind not in PROPOSAL_KINDS:
        return

    if following is not None and following.kind is NodeKind.EDIT and following.persona == persona:
        return  # replaced by the edit; the persona never sees the original
    if following is not None and following.kind is NodeKind.FEEDBACK:
        _event(state, persona, EventKind.SUPERSEDED, node, action=node.action, target=node.target)
        return
    if node.status is NodeStatus.REJECTED:
        _event(state, persona, EventKind.REJECTED, node, action=node.action, target=node.target)
        return
    if following is None and node.status is not NodeStatus.APPROVED:
        return  # proposed, pending, streaming, interrupted: not applied yet

    _event(state, persona, EventKind.OWN, node, action=node.action, target=node.target)
    if node.action in (Action.REPLY, Action.PASS):
        if state.stack and state.stack[-1] == persona:
            state.stack.pop()
        if state.stack:
            caller = state.stack[-1]
            state.events[caller].append(
                Event(
                    kind=EventKind.CHILD_RESULT,
                    text=node.content if node.action is Action.REPLY else "",
                    node_id=node.id,
                    activation=state.activations[caller],
                    action=node.action,
                    target=persona.rpartition("/")[2],
                    created_at=node.created_at,
                    data=node.data,
                )
            )
            if persona in speakers:
                state.transcript.append(_line(node))
        elif persona == root:
            state.transcript.append(_line(node))


def _line(node: Node) -> TranscriptLine:
    return TranscriptLine(
        node.persona,
        node.content if node.action is Action.REPLY else "",
        node.id,
        passed=node.action is Action.PASS,
        truncated=bool(node.data.get("truncated")),
    )


def _greet(state: PathState, node: Node) -> None:
    """A greeting (see the rules): the persona's own reply, its parent's child result, a line
    of the conversation."""
    persona = node.persona
    state.greetings[persona] = node
    _event(state, persona, EventKind.OWN, node, action=Action.REPLY)
    caller = parent_path(persona)
    if caller:
        state.events[caller].append(
            Event(
                kind=EventKind.CHILD_RESULT,
                text=node.content,
                node_id=node.id,
                activation=state.activations[caller],
                action=Action.REPLY,
                target=persona.rpartition("/")[2],
                created_at=node.created_at,
                data=node.data,
            )
        )
    state.transcript.append(TranscriptLine(persona, node.content, node.id))


def _inherit_greeting(state: PathState, persona: str) -> None:
    """Before a persona's first message: the greeting of the character above it, as its own
    first line."""
    for speaker, greeting in state.greetings.items():
        if persona.startswith(speaker + "/"):
            _event(state, persona, EventKind.OWN, greeting, action=Action.REPLY)


def _next(state: PathState, leaf: Node, root: str) -> Next:
    top = state.stack[-1] if state.stack else ""
    if leaf.status in UNFINISHED:
        return Next(NextKind.BUSY, leaf.persona, leaf.id)
    if leaf.status is NodeStatus.INTERRUPTED:
        return Next(NextKind.INTERRUPTED, leaf.persona, leaf.id)
    if leaf.kind is NodeKind.ERROR or leaf.status is NodeStatus.FAILED:
        return Next(NextKind.FAILED, leaf.persona, leaf.id)
    if leaf.kind in (NodeKind.INBOUND, NodeKind.FEEDBACK):
        return Next(NextKind.PROPOSE, top or leaf.persona, leaf.id)
    if leaf.kind is NodeKind.DECISION:
        return Next(NextKind.PROPOSE if top else NextKind.DONE, top or leaf.persona, leaf.id)
    if leaf.kind is NodeKind.GREETING:
        return Next(NextKind.DONE, root, leaf.id)
    # A proposal or an edit.
    if leaf.status in (NodeStatus.PROPOSED, NodeStatus.SUPERSEDED):
        return Next(NextKind.REVIEW, leaf.persona, leaf.id)
    if leaf.status is NodeStatus.REJECTED:
        return Next(NextKind.PROPOSE, leaf.persona, leaf.id)
    if leaf.action is Action.DELEGATE:
        child = f"{leaf.persona}/{leaf.target}"
        return Next(NextKind.DELEGATE, child, leaf.id, message=leaf.content)
    if not state.stack:
        return Next(NextKind.DONE, root, leaf.id)
    return Next(NextKind.PROPOSE, top, leaf.id)
