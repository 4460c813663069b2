"""The step engine: turns the state derived from a path into the next persisted node.

Every step is written before the next begins (pending before its LLM call answers, then
streaming, then proposed), so a run that dies with its process resumes from its last node. A
run's writes are held and written together (the store's batch): the ones made before an LLM
call go to the store while the call is on its way, and no answer reaches a persona before they
have landed (`_AfterWrites`). A process that dies in between has either written them or not
(a write is one transaction); either way the store holds a path it resumes from.

The engine keeps a `PathWalk` of the path it works on and extends it with every node it
writes, so deciding the next step never re-reads the path: a step costs the same at turn 10
and at turn 1,000. The walk is only a cache of what the store holds: it is checked against
the store when the engine starts on it, and read afresh when the engine moves elsewhere.

What a person does through the engine (approve, reject, feedback, edit, branch, retry,
continue) is recorded on the node it makes or changes: `data["human"]`, with who (the
engine's `actor`, when the caller says) and when. With a span sink (tracing.py), every write
also tells the sink which spans it ended; without one, no tracing work is done at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from personaweb.llm.calls import DEFAULT_RETRY, RetryPolicy
from personaweb.llm.types import (
    CallRecord,
    ChatModel,
    ChatRequest,
    Completion,
    LLMProfile,
    StreamChunk,
)
from personaweb.personas import tracing
from personaweb.personas.persona import ProposeContext, ResponseDrivenPersona, TokenCallback
from personaweb.personas.proposal import ProposalFailed
from personaweb.personas.state import USER, NextKind, PathState, PathWalk
from personaweb.personas.tracing import Change
from personaweb.personas.tree import (
    PROPOSAL_KINDS,
    UNFINISHED,
    Action,
    Node,
    NodeKind,
    NodeStatus,
    Store,
    new_id,
)

log = logging.getLogger("personaweb.personas.engine")

EARLIER_WALKS_KEPT = 4
"""How many walks of other branches an engine keeps (see Engine.state)."""


class Mode(StrEnum):
    AUTONOMOUS = "autonomous"
    """Approve every proposal at once and keep going."""
    REVIEW = "review"
    """Stop at every proposal."""
    BREAKPOINTS = "breakpoints"
    """Stop only at proposals of the chosen personas."""


@dataclass(frozen=True)
class RunConfig:
    """How a run proceeds and where it must stop."""

    mode: Mode = Mode.AUTONOMOUS
    """Autonomous, review or breakpoints."""
    breakpoints: frozenset[str] = field(default_factory=frozenset)
    """Persona paths to stop at, in breakpoints mode."""
    max_depth: int = 6
    """Deepest nesting allowed (the top persona is depth 1)."""
    max_steps: int = 60
    """Most nodes one run (one user message) may create."""
    guided: bool = True
    """Delegating personas with a plan offer only the moves it allows (see delegating.py);
    off for models strong enough to orchestrate on their own."""
    retry: RetryPolicy = DEFAULT_RETRY
    """How transient LLM failures are retried within each call's deadline."""

    def stops_at(self, persona: str) -> bool:
        if self.mode is Mode.REVIEW:
            return True
        if self.mode is Mode.BREAKPOINTS:
            return persona in self.breakpoints
        return False


class Observer(Protocol):
    """Told about every persisted change, and about streamed text."""

    async def node_changed(self, node: Node, state: PathState | None, created: bool) -> None:
        """`node` was written (`created`: added, else updated); `state` is the run's path state
        with it as the leaf (None when the node is not the leaf of the path the engine works
        on). Read it at once: it is the engine's own and changes with the next step."""
        ...

    async def tokens(self, node: Node, text: str) -> None: ...


class ActionRefused(Exception):
    """A person asked for something this node cannot do (the UI disables it too)."""


MAX_INPUT_CHARS = 20_000
"""Longest message, feedback or edit a person may send: beyond it, prompts balloon and most
models' context windows overflow; the text is refused with a clear error instead."""


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_INPUT_CHARS:
        raise ActionRefused(
            f"the {what} is too long ({len(text):,} characters; at most {MAX_INPUT_CHARS:,})"
        )


def allowed_actions(node: Node, has_children: bool) -> frozenset[str]:
    """What a person may do to a node. The views disable the rest and the engine refuses it."""
    allowed: set[str] = set()
    if node.status in UNFINISHED or node.kind is NodeKind.GREETING:
        # A greeting is the card's text, chosen when the session started: nothing to redo.
        return frozenset()
    if node.kind is NodeKind.ERROR or node.status in (NodeStatus.FAILED, NodeStatus.INTERRUPTED):
        # A guard rail (step or depth limit) fails the same way every time: no retry for it.
        return frozenset() if node.data.get("guard_rail") else frozenset({"retry"})
    if node.kind in PROPOSAL_KINDS:
        if node.status is NodeStatus.PROPOSED and not has_children:
            allowed |= {"approve", "reject"}
        allowed |= {"feedback", "edit", "branch"}
        if node.data.get("truncated") and node.action is Action.REPLY:
            allowed.add("continue")
        return frozenset(allowed)
    # Inbound messages, feedback and decisions can be replayed from.
    return frozenset({"branch"})


class Engine:
    """Runs one persona hierarchy over a store of nodes."""

    def __init__(
        self,
        root: ResponseDrivenPersona,
        store: Store,
        model: ChatModel,
        config: RunConfig | None = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
        *,
        tracer: tracing.SpanSink | None = None,
    ) -> None:
        self.clock = clock
        self.root = root
        self.store = store
        self.model = model
        self.config = config or RunConfig()
        self.observer = observer
        self.tracer = tracer if tracer is not None else tracing.installed()
        """Where finished spans go: the process's sink unless given one; None: no tracing."""
        self.actor = ""
        """Who acts through this engine (the web: the user's name), recorded with each thing
        a person does; empty when the caller does not say."""
        self.conversation = ""
        """What traces call the conversation (the web: the session); empty: the tree's first
        node."""
        self._acting: dict[str, Any] | None = None
        self.walk: PathWalk | None = None
        """The path this engine works on, derived node by node (a cache: see the module doc).
        A caller may hand over the walk of an earlier engine on the same store."""
        self._checked_walk = False
        self._last_written: Node | None = None
        self._earlier_walks: list[PathWalk] = []
        """Walks of other branches this engine was on (newest last, a few): moving back to
        one, or branching from one of its steps, derives nothing and reads nothing."""

    # -- reading -------------------------------------------------------------------------

    async def state(self, leaf_id: str) -> PathState:
        """The state of the path root -> leaf_id: from the walk when it is there (see the
        module doc), else read from the store."""
        walk = self.walk
        trusted = self._checked_walk  # a walk handed over is trusted once its check passes
        if walk is not None and walk.state.path and walk.root == self.root.path:
            if not self._checked_walk:
                # Handed over from an earlier engine: the store may have moved on since
                # (another process, a person's click). Check its leaf, walk the new nodes.
                self._checked_walk = True
                below = await self.store.path_below(walk.leaf_id, leaf_id)
                if below is not None:
                    walk.replace_leaf(below[0])
                    for node in below[1:]:
                        walk.push(node)
                    return walk.state
                walk = None  # the store moved on elsewhere: nothing of this walk is reused
            elif walk.leaf_id == leaf_id:
                return walk.state
            elif walk.position(leaf_id) is not None:
                # An earlier step of this path (a branch, an edit): derived from memory.
                moved = walk.up_to(leaf_id)
                self._move_to(moved)
                return moved.state
            else:
                for earlier in reversed(self._earlier_walks):
                    if earlier.position(leaf_id) is None:
                        continue
                    # A branch this engine was on before: derived from memory too.
                    self._earlier_walks.remove(earlier)
                    moved = earlier if earlier.leaf_id == leaf_id else earlier.up_to(leaf_id)
                    if moved is not earlier:
                        self._earlier_walks.append(earlier)
                    self._move_to(moved)
                    return moved.state
        nodes = await self.store.path(leaf_id)
        self._checked_walk = True
        speakers = self.root.speakers()
        if (
            trusted
            and walk is not None
            and walk.state.path
            and walk.root == self.root.path
            and walk.speakers == speakers
        ):
            # Another branch of the tree: what it shares with the walk's path (the root down
            # to where they part) is derived already; only the rest is walked.
            mine = walk.state.path
            shared, limit = 0, min(len(mine), len(nodes))
            while shared < limit and mine[shared].id == nodes[shared].id:
                shared += 1
            if shared:
                walk = walk.up_to(nodes[shared - 1].id)
                walk.replace_leaf(nodes[shared - 1])  # as stored: it may have changed since
                for node in nodes[shared:]:
                    walk.push(node)
                self._move_to(walk)
                return walk.state
        self.walk = PathWalk(self.root.path, speakers)
        for node in nodes:
            self.walk.push(node)
        return self.walk.state

    def forget_walks(self) -> None:
        """Drop every path state this engine keeps (the store changed behind its back): the
        next step reads its path from the store."""
        self.walk = None
        self._earlier_walks = []

    # -- the run -------------------------------------------------------------------------

    async def send(
        self, text: str, parent_id: str | None = None, data: dict[str, Any] | None = None
    ) -> Node:
        """Write a user message for the top persona, under `parent_id` (None: a new tree).
        `data` travels with the message (e.g. the speaker a user picked in a group chat)."""
        if not text.strip():
            raise ActionRefused("the message is empty")
        _check_length(text, "message")
        if parent_id is not None:
            state = await self.state(parent_id)
            if state.next.kind not in (NextKind.DONE, NextKind.FAILED):
                raise ActionRefused(
                    f"the current run is not finished ({state.next.kind.value}); "
                    "answer or stop it first"
                )
        node = Node(
            id=new_id(),
            parent_id=parent_id,
            persona=self.root.path,
            kind=NodeKind.INBOUND,
            content=text,
            sender=USER,
            data=dict(data or {}),
        )
        return await self._add(node)

    async def step(self, leaf_id: str, *, stop: bool = True) -> Node | None:
        """Take one step after `leaf_id`. Returns the node changed or created, or None when the
        run must wait (for a person, the next user message, or a failure to be retried).
        With `stop=False` no proposal waits for review: each is approved as it comes."""
        state = await self.state(leaf_id)
        nxt = state.next
        if nxt.kind is NextKind.REVIEW:
            if stop and self.config.stops_at(nxt.persona):
                return None
            leaf = self._whole(state.path[-1])
            leaf.status = NodeStatus.APPROVED
            await self._update(leaf, Change.APPLIED)
            return leaf
        if nxt.kind not in (NextKind.PROPOSE, NextKind.DELEGATE):
            return None
        if state.steps_in_run >= self.config.max_steps:
            return await self._fail(
                leaf_id,
                nxt.persona,
                f"stopped: this run reached its limit of {self.config.max_steps} steps",
                retryable=False,
                guard_rail=True,
            )
        if nxt.kind is NextKind.PROPOSE:
            return await self._propose(state, nxt.persona, leaf_id)
        if nxt.kind is NextKind.DELEGATE:
            depth = len(state.stack) + 1
            if depth > self.config.max_depth:
                return await self._fail(
                    leaf_id,
                    nxt.persona,
                    f"stopped: delegating to {nxt.persona} would nest {depth} levels deep; "
                    f"the limit is {self.config.max_depth}",
                    retryable=False,
                    guard_rail=True,
                )
            try:
                self.root.find(nxt.persona)
            except KeyError:
                return await self._fail(
                    leaf_id, nxt.persona, f"no persona at {nxt.persona}", retryable=False
                )
            sender = nxt.persona.rpartition("/")[0]
            node = Node(
                id=new_id(),
                parent_id=leaf_id,
                persona=nxt.persona,
                kind=NodeKind.INBOUND,
                content=nxt.message,
                sender=sender,
            )
            return await self._add(node)
        return None

    async def advance(self, leaf_id: str, *, stop: bool = True) -> Node:
        """Step until the run must wait; returns the leaf where it stopped. With `stop=False`
        nothing waits for review: the rest of this turn runs as if autonomous."""
        # The run's writes go out together, while each LLM call is on its way (_AfterWrites)
        # and when the batch ends.
        async with self.store.batch():
            # The leaf as the path's state holds it (no call record): the first step needs
            # that state anyway, so no read of its own.
            current = (await self.state(leaf_id)).path[-1].copy()  # the walk's own: not shared
            while True:
                changed = await self.step(current.id, stop=stop)
                if changed is None:
                    return current
                current = changed

    async def run_autonomous(self, text: str, parent_id: str | None = None) -> Node:
        """Send a message and apply every proposal until the top persona answers. The message
        is written with the run's first LLM call (one batch: see `advance`)."""
        async with self.store.batch():
            inbound = await self.send(text, parent_id)
            return await self.advance(inbound.id, stop=False)

    # -- what a person can do ---------------------------------------------------------------

    async def approve(self, node_id: str) -> Node:
        node = await self._checked(node_id, "approve")
        node.status = NodeStatus.APPROVED
        node.data = self._acted(node.data, "approve")
        await self._update(node, Change.APPLIED)
        return node

    async def add_data(self, node_id: str, data: dict[str, Any]) -> Node:
        """Merge facts into a node's data (e.g. which sample of a line a branch is). Through
        the engine, so its walk holds them too and a later write does not drop them."""
        node = await self.store.get(node_id, with_call=False)
        node.data = {**node.data, **data}
        await self._update(node)
        return node

    async def approve_turn(self, node_id: str) -> Node:
        """Approve this proposal and every one after it until the top persona has answered
        the user's message: "approve the rest of this turn". Returns where it stopped."""
        node = await self.approve(node_id)
        return await self.advance(node.id, stop=False)

    async def reject(self, node_id: str) -> Node:
        node = await self._checked(node_id, "reject")
        node.status = NodeStatus.REJECTED
        node.data = self._acted(node.data, "reject")
        await self._update(node)
        return node

    async def feedback(self, node_id: str, text: str) -> Node:
        """Answer a proposal with free text; its persona proposes again with it in view.
        On an already-applied proposal this starts a new branch (replay with tweaks)."""
        return await self._feedback(node_id, text, "feedback")

    async def _feedback(self, node_id: str, text: str, action: str) -> Node:
        if not text.strip():
            raise ActionRefused("feedback is empty")
        _check_length(text, "feedback")
        node = await self._checked(node_id, "feedback")
        fb = Node(
            id=new_id(),
            parent_id=node.id,
            persona=node.persona,
            kind=NodeKind.FEEDBACK,
            content=text,
            sender="reviewer",
            data=self._acted({}, action, on=node.id),
        )
        await self._supersede(node)
        return await self._add(fb)

    async def edit(
        self,
        node_id: str,
        content: str,
        action: Action | None = None,
        target: str | None = None,
    ) -> Node:
        """Replace a proposal's content (and optionally its action/target) with a person's
        version, as a new approved child; the original stays as it was."""
        node = await self._checked(node_id, "edit")
        action = action or node.action or Action.REPLY
        target = target if target is not None else node.target
        if action is Action.DELEGATE:
            persona = self.root.find(node.persona)
            if target not in persona.children:
                raise ActionRefused(f"{node.persona} has no child named {target!r}")
        else:
            target = None
        if action is not Action.PASS and not content.strip():
            raise ActionRefused("the edited content is empty")
        _check_length(content, "edited content")
        edited = Node(
            id=new_id(),
            parent_id=node.id,
            persona=node.persona,
            kind=NodeKind.EDIT,
            status=NodeStatus.APPROVED,
            content=content if action is not Action.PASS else "",
            action=action,
            target=target,
            data=self._acted({"edited_from": node.id}, "edit", on=node.id),
        )
        await self._supersede(node)
        return await self._add(edited)

    async def branch(self, node_id: str, feedback: str | None = None) -> Node:
        """Replay from any node, leaving the old branch untouched.

        With feedback on a proposal: the feedback becomes a new child of it. Without: a proposal
        is proposed afresh (a sibling of it); any other node gets a freshly proposed child."""
        anchor = await self.check_branch(node_id, feedback)
        if anchor is None:
            return await self._feedback(node_id, feedback or "", "branch")
        state = await self.state(anchor)
        with self._acting_as("branch", node_id):
            return await self._propose(state, state.next.persona, anchor)

    async def check_branch(self, node_id: str, feedback: str | None = None) -> str | None:
        """Refuse (ActionRefused) a branch that cannot happen, before any model is called.
        Returns the node to propose from, or None when the branch is feedback."""
        node = await self._checked(node_id, "branch")
        if feedback is not None:
            _check_length(feedback, "feedback")
        if feedback and feedback.strip():
            if node.kind not in PROPOSAL_KINDS:
                raise ActionRefused("feedback goes to a proposal; pick one of the persona's nodes")
            return None
        anchor = node.parent_id if node.kind in PROPOSAL_KINDS else node.id
        if anchor is None:
            raise ActionRefused("nothing to replay before the first message")
        state = await self.state(anchor)
        if state.next.kind is not NextKind.PROPOSE:
            raise ActionRefused(f"cannot replay here: the next step is {state.next.kind.value}")
        return anchor

    async def continue_reply(self, node_id: str) -> Node:
        """Ask the persona whose reply the token limit cut off to go on from where it stopped.
        The whole text becomes a new proposal beside the cut one (which stays as it was)."""
        node, anchor = await self.check_continue(node_id)
        state = await self.state(anchor)
        with self._acting_as("continue", node_id):
            return await self._propose(state, node.persona, anchor, continuation=node)

    async def check_continue(self, node_id: str) -> tuple[Node, str]:
        """Refuse a continuation that cannot happen; returns the cut node and its parent."""
        node = await self._checked(node_id, "continue", with_call=True)  # its prompt is reused
        if node.parent_id is None:
            raise ActionRefused("nothing to continue before the first message")
        state = await self.state(node.parent_id)
        if state.next.kind is not NextKind.PROPOSE or state.next.persona != node.persona:
            raise ActionRefused(f"cannot continue here: the next step is {state.next.kind.value}")
        return node, node.parent_id

    async def retry(self, node_id: str) -> Node:
        """Try a failed or interrupted step again, as a sibling of it."""
        parent = await self.check_retry(node_id)
        await self._close_interrupted(node_id, parent)
        with self._acting_as("retry", node_id):
            created = await self.step(parent)
        if created is None:
            raise ActionRefused("nothing to retry: the step before it needs no new node")
        return created

    async def check_retry(self, node_id: str) -> str:
        """Refuse a retry that cannot happen; returns the node the retry steps from."""
        node = await self._checked(node_id, "retry")
        if node.parent_id is None:
            raise ActionRefused("nothing to retry before the first message")
        state = await self.state(node.parent_id)
        if state.next.kind not in (NextKind.PROPOSE, NextKind.DELEGATE):
            raise ActionRefused(f"nothing to retry: the next step is {state.next.kind.value}")
        return node.parent_id

    async def process_proposed_response(self, node_id: str) -> Node | None:
        """Apply a proposal and take the run to its next proposal (or its end).

        Returns the next node that waits for a person, or None once the run has finished."""
        await self.approve(node_id)
        leaf = await self._advance_one_proposal(node_id)
        state = await self.state(leaf.id)
        return None if state.next.kind is NextKind.DONE else leaf

    async def respond(self, node_id: str, text: str) -> Node:
        """Answer a proposal with a free-text message instead of applying it: the persona that
        proposed it proposes again with the message in view. Returns the new proposal."""
        fb = await self.feedback(node_id, text)
        return await self._advance_one_proposal(fb.id)

    # -- internals --------------------------------------------------------------------------

    async def _advance_one_proposal(self, leaf_id: str) -> Node:
        """Step (approving nothing) until a new proposal waits or the run can't go on."""
        current = await self.store.get(leaf_id, with_call=False)
        while True:
            state = await self.state(current.id)
            if state.next.kind not in (NextKind.PROPOSE, NextKind.DELEGATE):
                return current
            changed = await self.step(current.id)
            if changed is None:
                return current
            current = changed

    async def _supersede(self, node: Node) -> None:
        """A proposal answered by feedback or an edit is no longer waiting for review."""
        if node.status is NodeStatus.PROPOSED:
            node.status = NodeStatus.SUPERSEDED
            await self._update(node)

    async def _checked(self, node_id: str, action: str, *, with_call: bool = False) -> Node:
        """The node, if `action` is allowed on it (without its call record unless asked: a
        write of it keeps the stored one)."""
        node = await self.store.get(node_id, with_call=with_call)
        has_children = bool(await self.store.children(node_id))
        if action not in allowed_actions(node, has_children):
            raise ActionRefused(
                f"cannot {action} a {node.status.value} {node.kind.value} node"
                + (" that already has children" if has_children else "")
            )
        return node

    async def _propose(
        self,
        state: PathState,
        persona_path: str,
        parent_id: str,
        *,
        continuation: Node | None = None,
    ) -> Node:
        try:
            persona = self.root.find(persona_path)
        except KeyError:
            return await self._fail(parent_id, persona_path, f"no persona at {persona_path}")
        # Not a batch of its own: a branch's first node is written at once, so the page sees
        # the new branch (its frame counts the siblings in the database). Inside a run's batch
        # the writes are held and go out with the call (_AfterWrites).
        model = _AfterWrites(self.model, self.store)
        ctx = self._context(state, persona_path, model=model)
        try:
            deliberations = await self._persona_call(persona.deliberate(ctx), persona_path, model)
        except ProposalFailed as exc:
            return await self._fail(
                parent_id, persona_path, exc.reason, retryable=exc.retryable, call=exc.call
            )
        if deliberations:
            for item in deliberations:
                decision = Node(
                    id=new_id(),
                    parent_id=parent_id,
                    persona=persona_path,
                    kind=NodeKind.DECISION,
                    content=item.content,
                    data=dict(item.data),
                    call=item.call,
                )
                parent_id = (await self._add(decision)).id
            state = await self.state(parent_id)
            if state.next.kind is not NextKind.PROPOSE:
                return await self.store.get(parent_id)
        node = Node(
            id=new_id(),
            parent_id=parent_id,
            persona=persona_path,
            kind=NodeKind.PROPOSAL,
            status=NodeStatus.PENDING,
        )
        await self._add(node)
        model = _AfterWrites(self.model, self.store)  # the pending node lands before its answer

        async def on_token(text: str) -> None:
            if node.status is NodeStatus.PENDING:
                node.status = NodeStatus.STREAMING
                await self._update(node)
                await self.store.flush()  # a page opened now shows it streaming
            if self.observer is not None:
                await self.observer.tokens(node, text)

        async def on_status(note: str) -> None:
            # Shown on the node while it waits ("retrying (2/3) after HTTP 429").
            node.data = {**node.data, "status_note": note}
            await self._update(node)
            await self.store.flush()

        ctx = self._context(state, persona_path, on_token, on_status, model=model)
        ctx.continuation = continuation
        try:
            proposal = await self._persona_call(persona.propose(ctx), persona_path, model)
        except ProposalFailed as exc:
            node.kind = NodeKind.ERROR
            node.status = NodeStatus.FAILED
            node.content = exc.reason
            node.call = exc.call
            node.data = {**_settled(node.data), "retryable": exc.retryable}
            await self._update(node, Change.SETTLED, with_call=True)
            return node
        node.status = NodeStatus.PROPOSED
        node.action = proposal.action
        node.target = proposal.target
        node.content = proposal.content
        node.call = proposal.call
        node.data = {**_settled(node.data), **proposal.data}
        await self._update(node, Change.SETTLED, with_call=True)
        return node

    async def _persona_call(self, call: Awaitable[_T], persona: str, model: _AfterWrites) -> _T:
        """What a persona's deliberate or propose returns, once the writes its calls started
        have landed. Anything the persona raises becomes ProposalFailed; a failed write is the
        store's failure, not the persona's, and fails the run as it is."""
        try:
            result = await call
        except Exception as exc:
            await model.settle()
            raise _as_failure(exc, persona) from exc
        await model.settle()
        return result

    def _context(
        self,
        state: PathState,
        persona_path: str,
        on_token: TokenCallback | None = None,
        on_status: TokenCallback | None = None,
        *,
        model: ChatModel | None = None,
    ) -> ProposeContext:
        ctx = ProposeContext(
            persona=persona_path,
            history=state.history(persona_path),
            current=state.current(persona_path),
            model=model or self.model,
            guided=self.config.guided,
            retry=self.config.retry,
        )
        if on_token is not None:
            ctx.on_token = on_token
        if on_status is not None:
            ctx.on_status = on_status
        return ctx

    async def _fail(
        self,
        parent_id: str,
        persona: str,
        reason: str,
        *,
        retryable: bool = True,
        guard_rail: bool = False,
        call: CallRecord | None = None,
    ) -> Node:
        node = Node(
            id=new_id(),
            parent_id=parent_id,
            persona=persona,
            kind=NodeKind.ERROR,
            status=NodeStatus.FAILED,
            content=reason,
            call=call,
            data={"retryable": retryable, **({"guard_rail": True} if guard_rail else {})},
        )
        return await self._add(node)

    async def _add(self, node: Node) -> Node:
        node.created_at = self.clock()
        if self._acting is not None:
            node.data = {**node.data, tracing.HUMAN: [*tracing.human_acts(node.data), self._acting]}
            self._acting = None
        if self.tracer is not None:
            await self._stamp(node)
        added = await self.store.add(node)
        state = self._follow(added, created=True)
        if self.observer is not None:
            await self.observer.node_changed(added, state, True)
        await self._trace(Change.CREATED, added, state)
        return added

    async def _update(
        self, node: Node, change: Change | None = None, *, with_call: bool = False
    ) -> None:
        """Write a change to a node; `change` says what it was, for traces (None: nothing a
        trace shows, such as streamed text or merged data). The call record is written only
        `with_call` (when it was just made): a status change must not rewrite a prompt that can
        be as long as the session."""
        if self.tracer is not None and change is Change.SETTLED:
            node.data = tracing.settled(node)
        if with_call or node.call is None:
            await self.store.update(node)
        else:
            light = node.copy()
            light.call = None
            await self.store.update(light)
        state = self._follow(node, created=False)
        if self.observer is not None:
            await self.observer.node_changed(node, state, False)
        if change is not None:
            await self._trace(change, node, state)

    # -- people and traces ------------------------------------------------------------------

    def _acted(self, data: dict[str, Any], action: str, on: str | None = None) -> dict[str, Any]:
        """`data` with a person's action recorded: what, who, when (and on which node)."""
        return {**data, tracing.HUMAN: [*tracing.human_acts(data), self._act(action, on)]}

    def _act(self, action: str, on: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"action": action, "at": self.clock()}
        if self.actor:
            entry["by"] = self.actor
        if on is not None:
            entry["on"] = on
        return entry

    @contextmanager
    def _acting_as(self, action: str, on: str) -> Iterator[None]:
        """The next node this engine writes is a person's doing (a branch, a retry, ...)."""
        self._acting = self._act(action, on)
        try:
            yield
        finally:
            self._acting = None

    async def _stamp(self, node: Node) -> None:
        """Say where a node about to be added is in the traces (tracing.py's rule 5); a node
        beside an existing child starts a trace (rule 4)."""
        parent: PathState | None = None
        branch = False
        try:
            if node.parent_id is not None:
                parent = await self.state(node.parent_id)
                branch = bool(await self.store.children(node.parent_id))
            stamp = tracing.stamp(node, parent, self.root.path, branch=branch)
        except Exception:
            log.exception("could not place node %s in the traces", node.id)
            return
        if stamp:
            node.data = {**node.data, tracing.TRACE: stamp}

    def _site(self, tracer: tracing.SpanSink) -> tracing.Site:
        return tracing.Site(self.root, self.conversation, tracer.capture_content)

    async def _trace(self, change: Change, node: Node, state: PathState | None) -> None:
        """Hand the sink the spans this write ended. A tracing failure never stops a run."""
        tracer = self.tracer
        if tracer is None or not tracing.ends_spans(change, node):
            return
        try:
            if state is None:
                state = await self.state(node.id)
            for span in tracing.spans(change, node, state, self.clock(), self._site(tracer)):
                tracer.emit(span)
        except Exception:
            log.exception("could not trace node %s", node.id)

    async def _close_interrupted(self, node_id: str, parent_id: str) -> None:
        """Before an interrupted step is retried: end the activations its stopped process left
        open (once: the node is marked)."""
        tracer = self.tracer
        if tracer is None:
            return
        node = await self.store.get(node_id, with_call=False)
        mark = node.data.get(tracing.TRACE)
        if node.status is not NodeStatus.INTERRUPTED or not isinstance(mark, dict):
            return
        if mark.get("closed"):
            return
        try:
            state = await self.state(parent_id)
            for span in tracing.abandoned(node, state, self._site(tracer)):
                tracer.emit(span)
        except Exception:
            log.exception("could not trace node %s", node.id)
        node.data = {**node.data, tracing.TRACE: {**mark, "closed": True}}
        await self.store.update(node)
        self._follow(node, created=False)  # no span or frame for this mark, but the walks

    def _whole(self, light: Node) -> Node:
        """The node with its call record: the one this engine last wrote, if it is that node
        (a proposal about to be approved usually is), else the walk's copy, which has none
        (a write of it keeps the stored record)."""
        last = self._last_written
        if last is not None and last.id == light.id:
            whole = light.copy()
            whole.call = last.call
            return whole
        return light.copy()

    def _follow(self, node: Node, *, created: bool) -> PathState | None:
        """Keep the walk in step with a write; returns its state when the node is its leaf."""
        self._last_written = node
        if not created and self._earlier_walks:
            self._forget_walks_through(node.id)
        walk = self.walk
        if walk is None or not walk.state.path:
            return None
        light = node.copy()
        light.call = None  # the walk holds what derive reads, never the (large) call record
        if created and node.parent_id == walk.leaf_id:
            return walk.push(light)
        if created and node.parent_id is not None and walk.position(node.parent_id) is not None:
            # A new branch from an earlier step: the walk follows it (from memory).
            moved = walk.up_to(node.parent_id)
            self._move_to(moved)
            return moved.push(light)
        if not created and node.id == walk.leaf_id:
            return walk.replace_leaf(light)
        if not created and any(n.id == node.id for n in walk.state.path):
            self.walk = None  # an earlier node changed: read the path afresh next time
        return None

    def _move_to(self, walk: PathWalk) -> None:
        """Make `walk` the engine's walk, keeping the one it replaces among the earlier."""
        if self.walk is not None and self.walk is not walk and self.walk.state.path:
            self._earlier_walks.append(self.walk)
            del self._earlier_walks[:-EARLIER_WALKS_KEPT]
        self.walk = walk

    def _forget_walks_through(self, node_id: str) -> None:
        """A node changed: the earlier walks that read it no longer hold."""
        self._earlier_walks = [w for w in self._earlier_walks if w.position(node_id) is None]


_T = TypeVar("_T")


class _AfterWrites:
    """The model as a persona sees it during one phase of a step (deliberate, propose). Its
    first call starts writing what the store holds and goes out at once, while the writes are
    on their way (they overlap the call instead of delaying it); an answer (the first streamed
    chunk, or the completion) is handed on only once they have landed. So nothing a persona
    does with an answer comes before the store holds what led to it, and a phase that makes
    no call writes nothing yet (its writes go with the next call, or when the batch ends)."""

    def __init__(self, model: ChatModel, store: Store) -> None:
        self.model = model
        self.store = store
        self.writing: asyncio.Future[None] | None = None
        self.over = False
        """Set once the phase has settled: a call made later (a group's background rating)
        goes straight through, neither starting writes nor waiting for them."""

    def _start(self) -> None:
        # Started before the call is made: the write takes what is held when the task first
        # runs, which is before the call can answer or fail, so ahead of any write a callback
        # of the call makes (a streaming status, a retry note).
        if self.writing is None and not self.over:
            self.writing = asyncio.ensure_future(self.store.flush())

    async def _landed(self) -> None:
        if self.writing is not None:
            # Shielded: a run stopped while it waits must not cancel the write itself.
            await asyncio.shield(self.writing)

    async def settle(self) -> None:
        """Wait for the writes a call started (a failed write raises here); the phase is over."""
        self.over = True
        if self.writing is not None:
            await asyncio.shield(self.writing)  # a stop now must not cancel the write either

    async def complete(self, request: ChatRequest) -> Completion:
        self._start()
        completion = await self.model.complete(request)
        await self._landed()
        return completion

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        self._start()
        landed = False
        async for chunk in self.model.stream(request):
            if not landed:
                await self._landed()
                landed = True
            yield chunk
        if not landed:
            await self._landed()

    async def context_window(self, profile: LLMProfile) -> int | None:
        return await self.model.context_window(profile)

    async def count_tokens(self, texts: list[str], profile: LLMProfile) -> list[int] | None:
        return await self.model.count_tokens(texts, profile)


def _settled(data: dict[str, Any]) -> dict[str, Any]:
    """A node's data once its call is over: the waiting note goes."""
    return {k: v for k, v in data.items() if k != "status_note"}


def _as_failure(exc: Exception, persona: str) -> ProposalFailed:
    """Any exception out of a persona becomes a failed node: a bug in one persona must not
    leave a node pending forever (nothing could retry it) or kill the run's task."""
    if isinstance(exc, ProposalFailed):
        return exc
    log.exception("persona %s raised while proposing", persona)
    return ProposalFailed(f"internal error in {persona}: {type(exc).__name__}: {exc}")
