"""The step tree: every step of a persona run is one persisted node with a parent.

The path root -> node is a complete history; persona state is derived from it (see state.py).
This module holds the node type, the store port, an in-memory store and JSON export/import.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from personaweb.llm.types import CallRecord

EXPORT_FORMAT = "personaweb.tree/1"


class NodeKind(StrEnum):
    INBOUND = "inbound"
    """A message arrives at a persona: from the user (root) or delegated by its parent."""
    PROPOSAL = "proposal"
    """What a persona wants to do next: delegate, reply or pass."""
    EDIT = "edit"
    """A person's replacement for the proposal it hangs under; acts as a proposal."""
    FEEDBACK = "feedback"
    """Free text from a person to the persona whose proposal it hangs under."""
    DECISION = "decision"
    """A group-chat decision (who speaks, and why), with its numbers."""
    GREETING = "greeting"
    """A character's opening line, written when the session starts (see state.py)."""
    ERROR = "error"
    """A failed step: the reason, and what was tried."""


class NodeStatus(StrEnum):
    PENDING = "pending"
    STREAMING = "streaming"
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    RECORDED = "recorded"
    """A node that needs no decision: inbound messages, feedback, group decisions."""


class Action(StrEnum):
    DELEGATE = "delegate"
    REPLY = "reply"
    PASS = "pass"


PROPOSAL_KINDS = frozenset({NodeKind.PROPOSAL, NodeKind.EDIT})
UNFINISHED = frozenset({NodeStatus.PENDING, NodeStatus.STREAMING})


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Node:
    """One step of the tree."""

    id: str
    """Stable identifier (hex uuid)."""
    parent_id: str | None
    """The previous step on this path; None for the first user message of a session."""
    persona: str
    """Path of the persona this node belongs to, e.g. `orchestrator/responder`."""
    kind: NodeKind
    """What sort of step this is."""
    status: NodeStatus = NodeStatus.RECORDED
    """Where the step stands."""
    content: str = ""
    """The message, proposed text, feedback or error reason."""
    action: Action | None = None
    """For proposals: delegate, reply or pass."""
    target: str | None = None
    """For delegations: the child's name (not its path)."""
    sender: str = ""
    """For inbound nodes: who sent it ("user" or the parent's path)."""
    call: CallRecord | None = None
    """The LLM call behind a proposal (None for code-made and human-made steps)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Extra facts: alignment scores, heat numbers, retry hints, ..."""
    created_at: float = field(default_factory=time.time)
    """Unix time of creation."""
    seq: int = 0
    """Creation order within the tree, set by the store."""

    @property
    def is_proposal(self) -> bool:
        return self.kind in PROPOSAL_KINDS

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent_id": self.parent_id,
            "persona": self.persona,
            "kind": self.kind.value,
            "status": self.status.value,
            "content": self.content,
            "action": self.action.value if self.action else None,
            "target": self.target,
            "sender": self.sender,
            "call": self.call.to_dict() if self.call else None,
            "data": self.data,
            "created_at": self.created_at,
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        return cls(
            id=str(data["id"]),
            parent_id=data.get("parent_id"),
            persona=str(data["persona"]),
            kind=NodeKind(data["kind"]),
            status=NodeStatus(data.get("status", NodeStatus.RECORDED)),
            content=str(data.get("content", "")),
            action=Action(data["action"]) if data.get("action") else None,
            target=data.get("target"),
            sender=str(data.get("sender", "")),
            call=CallRecord.from_dict(data["call"]) if data.get("call") else None,
            data=dict(data.get("data") or {}),
            created_at=float(data.get("created_at", 0.0)),
            seq=int(data.get("seq", 0)),
        )

    def copy(self) -> Node:
        """A copy whose data can change without changing this node's."""
        twin = object.__new__(Node)  # quicker than copy.copy, let alone dataclasses.replace
        twin.__dict__.update(self.__dict__)
        twin.data = dict(self.data)
        return twin


class NodeNotFound(KeyError):
    """No node with that id in this tree."""


class Store(Protocol):
    """Where nodes live. The core only talks to this; Django provides an ORM implementation."""

    async def add(self, node: Node) -> Node:
        """Persist a new node (assigning seq) and return it."""
        ...

    async def update(self, node: Node) -> None:
        """Persist changes to an existing node (status, content, data; its call record when
        the node carries one: a node read without it keeps the one stored)."""
        ...

    async def get(self, node_id: str, *, with_call: bool = True) -> Node:
        """The node with this id, or NodeNotFound; without its call record unless `with_call`
        (a prompt is as long as the session: most readers need only status, kind and data)."""
        ...

    async def path(self, node_id: str) -> list[Node]:
        """Nodes from the root down to node_id, inclusive, without their call records (what a
        state needs; `get` has the whole node)."""
        ...

    async def path_below(self, ancestor_id: str, node_id: str) -> list[Node] | None:
        """The nodes from ancestor_id (included, read afresh) down to node_id, without call
        records; None when ancestor_id is not on node_id's path."""
        ...

    async def children(self, node_id: str) -> list[Node]:
        """Direct children of node_id, oldest first."""
        ...

    def batch(self) -> AbstractAsyncContextManager[None]:
        """Within it, writes may be held and written together at the next `flush` (reads
        flush first); leaving it flushes."""
        ...

    async def flush(self) -> None:
        """Write what is held."""
        ...


class MemoryStore:
    """A Store in a dict: for the core, the console and tests."""

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        self.nodes: dict[str, Node] = {}
        self._seq = 0
        for node in sorted(nodes, key=lambda n: n.seq):
            self.nodes[node.id] = node.copy()
            self._seq = max(self._seq, node.seq)

    async def add(self, node: Node) -> Node:
        if node.id in self.nodes:
            raise ValueError(f"node {node.id} exists already")
        if node.parent_id is not None and node.parent_id not in self.nodes:
            raise NodeNotFound(node.parent_id)
        self._seq += 1
        node.seq = self._seq
        self.nodes[node.id] = node.copy()
        return node

    async def update(self, node: Node) -> None:
        if node.id not in self.nodes:
            raise NodeNotFound(node.id)
        stored = node.copy()
        if stored.call is None:
            stored.call = self.nodes[node.id].call
        self.nodes[node.id] = stored

    async def get(self, node_id: str, *, with_call: bool = True) -> Node:
        try:
            node = self.nodes[node_id].copy()
        except KeyError:
            raise NodeNotFound(node_id) from None
        if not with_call:
            node.call = None
        return node

    async def path(self, node_id: str) -> list[Node]:
        return self._walk_up(node_id, None)

    async def path_below(self, ancestor_id: str, node_id: str) -> list[Node] | None:
        path = self._walk_up(node_id, ancestor_id)
        return path if path and path[0].id == ancestor_id else None

    def _walk_up(self, node_id: str, stop_at: str | None) -> list[Node]:
        path: list[Node] = []
        current: str | None = node_id
        while current is not None:
            if len(path) > len(self.nodes):
                raise ValueError(f"the parents of node {node_id} form a cycle")
            if current not in self.nodes:
                raise NodeNotFound(current)
            node = self.nodes[current].copy()
            node.call = None
            path.append(node)
            if current == stop_at:
                break
            current = node.parent_id
        path.reverse()
        return path

    async def children(self, node_id: str) -> list[Node]:
        kids = [n.copy() for n in self.nodes.values() if n.parent_id == node_id]
        return sorted(kids, key=lambda n: n.seq)

    def batch(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # writes are immediate in memory

    async def flush(self) -> None:
        return None

    def all(self) -> list[Node]:
        return sorted((n.copy() for n in self.nodes.values()), key=lambda n: n.seq)


def export_tree(nodes: Iterable[Node], meta: dict[str, Any] | None = None) -> str:
    """The whole tree as JSON text (nodes in creation order)."""
    ordered = sorted(nodes, key=lambda n: n.seq)
    doc = {"format": EXPORT_FORMAT, "meta": meta or {}, "nodes": [n.to_dict() for n in ordered]}
    return json.dumps(doc, ensure_ascii=False, indent=1)


class TreeFormatError(ValueError):
    """The JSON is not a PersonaWeb tree."""


def import_tree(text: str) -> tuple[list[Node], dict[str, Any]]:
    """Nodes and metadata from export_tree's JSON. Checks that every parent exists."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise TreeFormatError("not JSON this reader takes: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python reads
        raise TreeFormatError(f"not JSON: {exc}") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    name, _, version = str(fmt).rpartition("/")
    if fmt != EXPORT_FORMAT and f"{name}/" == EXPORT_FORMAT.rpartition("/")[0] + "/":
        raise TreeFormatError(
            f"written by a newer PersonaWeb (format {fmt!r}; this one reads {EXPORT_FORMAT!r})"
            if version.isdigit() and int(version) > int(EXPORT_FORMAT.rpartition("/")[2])
            else f"format {fmt!r} is not one this PersonaWeb reads ({EXPORT_FORMAT!r})"
        )
    if not isinstance(doc, dict) or fmt != EXPORT_FORMAT:
        raise TreeFormatError(f"not a PersonaWeb tree (expected format {EXPORT_FORMAT!r})")
    try:
        nodes = [Node.from_dict(item) for item in doc.get("nodes", [])]
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise TreeFormatError(f"bad node: {exc}") from None
    meta = doc.get("meta") or {}
    if not isinstance(meta, dict):
        raise TreeFormatError("meta must be a JSON object")
    parents: dict[str, str | None] = {}
    for n in nodes:
        if n.parent_id is not None and not isinstance(n.parent_id, str):
            raise TreeFormatError(f"node {n.id}: parent_id must be text or null")
        if n.id in parents:
            raise TreeFormatError(f"node {n.id} appears twice")
        parents[n.id] = n.parent_id
    for n in nodes:
        if n.parent_id is not None and n.parent_id not in parents:
            raise TreeFormatError(f"node {n.id} has unknown parent {n.parent_id}")
    _check_acyclic(parents)
    return nodes, dict(meta)


def _check_acyclic(parents: dict[str, str | None]) -> None:
    """A tree file is untrusted input: a parent cycle would make every path walk loop forever."""
    done: set[str] = set()
    for start in parents:
        seen: set[str] = set()
        current: str | None = start
        while current is not None and current not in done:
            if current in seen:
                raise TreeFormatError(f"the parents of node {start} form a cycle")
            seen.add(current)
            current = parents[current]
        done |= seen
