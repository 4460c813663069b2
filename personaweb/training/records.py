"""Which nodes of a step tree make which training record. Pure: core nodes in, dicts out.

Every approve, reject, edit and feedback a person gives is a preference. This module reads
them back out of a session's tree (the nodes with their call records) by its shapes alone,
the way personas/state.py reads a path. Below, A, B and E are nodes of one persona; "an LLM
proposal" is a proposal node with a call record (the exact messages its persona sent).

**The prompt.** A record's prompt is the call record's `messages` of the node it is about,
exactly as sent. An edit has no call of its own: its prompt is that of the proposal it was
edited from (`data.edited_from`, followed back to an LLM proposal).

**Accepted text below a node** (`accepted`): the text a person kept for that step. Walking
down from a proposal B of the persona: an edit child of B is accepted (a person wrote it); else
B itself if it is approved; else, when B was rejected, B's next proposal by the same persona;
when B was answered by feedback, the same persona's proposal after that feedback; and so on
down. Nothing accepted (the chain ends in a proposal still waiting, or a failure): no record.

**Preference pairs** (`preference_pairs`), `rejected` -> `chosen`:
  1. `rejected`: A is rejected and its child B is the same persona's next proposal:
     rejected = A, chosen = the accepted text below B.
  2. `feedback`: A has a feedback child F, and F a proposal B of the same persona:
     rejected = A, chosen = the accepted text below B (the feedback is in the record).
  3. `edit`: A has an edit child E (a person replaced A's text): rejected = A, chosen = E.
  4. `branch`: proposals of the same persona under the same parent (a replay made them
     siblings), where one is approved and another is rejected, or was left proposed before
     the approved one was made: rejected = that one, chosen = the approved one (a proposal
     made after the approved one may still be waiting for its review; two approved siblings
     say nothing about each other).
A pair whose chosen and rejected texts are the same says nothing and is left out; a pair is
made once, however many rules find it.

**Supervised examples** (`supervised_examples`): an LLM proposal a person approved (the
engine records a person's approve in the node's `data["human"]`, with who did it; a run's
own approvals in autonomous mode leave none; with `auto`, any approved one counts), and
every edit (prompt: the edited proposal's),
as its prompt plus the approved text as the assistant's message.

The text is a node's `content`: what the persona said, or for a delegation the message it
sent its child (an orchestrator's raw JSON decision is in its call record, not here); the
action (`reply`, `delegate`, `pass`) travels in `chosen_action` / `rejected_action`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from personaweb.personas.tracing import human_acts
from personaweb.personas.tree import Node, NodeKind, NodeStatus


def approved_by_a_person(node: Node) -> bool:
    """Whether a person (not a run on its own) approved this node."""
    return any(act.get("action") == "approve" for act in human_acts(node.data))


@dataclass
class Context:
    """Where the records come from, copied into each."""

    session: int
    """The session's id."""
    character: str = ""
    """The session's character (its slug), or '' (group chats: see `characters`)."""
    characters: dict[str, str] = field(default_factory=dict)
    """Group chats: persona path prefix (`director/<slug>`) -> the character's slug."""

    def character_of(self, persona: str) -> str:
        for prefix, slug in self.characters.items():
            if persona == prefix or persona.startswith(prefix + "/"):
                return slug
        return self.character


class TreeIndex:
    """A session's nodes with their children, for reading shapes."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = sorted(nodes, key=lambda n: n.seq)
        self.by_id = {n.id: n for n in self.nodes}
        self.children: dict[str | None, list[Node]] = {}
        for node in self.nodes:
            self.children.setdefault(node.parent_id, []).append(node)

    def kids(self, node: Node, kind: NodeKind, persona: str | None = None) -> list[Node]:
        return [
            c
            for c in self.children.get(node.id, [])
            if c.kind is kind and (persona is None or c.persona == persona)
        ]

    def prompt_node(self, node: Node) -> Node | None:
        """The LLM proposal whose messages are `node`'s prompt (itself, or for an edit the
        proposal it was edited from)."""
        seen: set[str] = set()
        current: Node | None = node
        while current is not None and current.id not in seen:
            if current.kind is NodeKind.PROPOSAL:
                return current if current.call is not None else None
            seen.add(current.id)
            origin = current.data.get("edited_from") or current.parent_id
            current = self.by_id.get(origin) if isinstance(origin, str) else None
        return None

    def accepted(self, node: Node) -> Node | None:
        """The accepted text below a proposal of this persona (see the module rules)."""
        seen: set[str] = set()
        current: Node | None = node
        while current is not None and current.id not in seen:
            seen.add(current.id)
            edits = self.kids(current, NodeKind.EDIT, current.persona)
            if edits:
                return edits[-1]
            if current.status is NodeStatus.APPROVED:
                return current
            current = self._next_take(current)
        return None

    def _next_take(self, node: Node) -> Node | None:
        if node.status is NodeStatus.REJECTED:
            again = self.kids(node, NodeKind.PROPOSAL, node.persona)
            return again[-1] if again else None
        for fb in reversed(self.kids(node, NodeKind.FEEDBACK)):
            again = self.kids(fb, NodeKind.PROPOSAL, node.persona)
            if again:
                return again[-1]
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _model(node: Node) -> str:
    return node.call.model if node.call is not None else ""


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _pair(
    index: TreeIndex, ctx: Context, rule: str, rejected: Node, chosen: Node, **extra: Any
) -> dict[str, Any] | None:
    prompt = index.prompt_node(rejected)
    if prompt is None or prompt.call is None or chosen.content == rejected.content:
        return None
    chosen_from = index.prompt_node(chosen)
    return {
        "prompt": [dict(m) for m in prompt.call.messages],
        "chosen": _assistant(chosen.content),
        "rejected": _assistant(rejected.content),
        "rule": rule,
        "persona": rejected.persona,
        "character": ctx.character_of(rejected.persona),
        "session": ctx.session,
        "prompt_node": prompt.id,
        "chosen_node": chosen.id,
        "rejected_node": rejected.id,
        "model": _model(prompt),
        "chosen_model": _model(chosen_from) if chosen_from is not None else "",
        "chosen_action": chosen.action.value if chosen.action else None,
        "rejected_action": rejected.action.value if rejected.action else None,
        "chosen_by": "edit" if chosen.kind is NodeKind.EDIT else "approval",
        "created_at": _iso(max(chosen.created_at, rejected.created_at)),
        **extra,
    }


def preference_pairs(nodes: Iterable[Node], ctx: Context) -> Iterator[dict[str, Any]]:
    """Every preference pair in one session's tree (rules 1 to 4), oldest first."""
    index = TreeIndex(nodes)
    made: set[tuple[str, str]] = set()

    def once(record: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        if record is not None:
            key = (record["rejected_node"], record["chosen_node"])
            if key not in made:
                made.add(key)
                yield record

    for node in index.nodes:
        if not node.is_proposal:
            continue
        persona = node.persona
        if node.status is NodeStatus.REJECTED:
            for again in index.kids(node, NodeKind.PROPOSAL, persona):
                if (chosen := index.accepted(again)) is not None:
                    yield from once(_pair(index, ctx, "rejected", node, chosen))
        for fb in index.kids(node, NodeKind.FEEDBACK):
            for again in index.kids(fb, NodeKind.PROPOSAL, persona):
                if (chosen := index.accepted(again)) is not None:
                    yield from once(
                        _pair(index, ctx, "feedback", node, chosen, feedback=fb.content)
                    )
        for edit in index.kids(node, NodeKind.EDIT, persona):
            yield from once(_pair(index, ctx, "edit", node, edit))
        yield from (r for r in _branch_pairs(index, ctx, node) for r in once(r))


def _branch_pairs(index: TreeIndex, ctx: Context, node: Node) -> Iterator[dict[str, Any] | None]:
    """Rule 4, read from the approved sibling's side."""
    if node.kind is not NodeKind.PROPOSAL or node.status is not NodeStatus.APPROVED:
        return
    for sibling in index.children.get(node.parent_id, []):
        if (
            sibling.id != node.id
            and sibling.kind is NodeKind.PROPOSAL
            and sibling.persona == node.persona
            and (
                sibling.status is NodeStatus.REJECTED
                or (sibling.status is NodeStatus.PROPOSED and sibling.seq < node.seq)
            )
        ):
            yield _pair(index, ctx, "branch", sibling, node)


def supervised_examples(
    nodes: Iterable[Node], ctx: Context, *, auto: bool = False
) -> Iterator[dict[str, Any]]:
    """Every supervised example in one session's tree (see the module rules), oldest first."""
    index = TreeIndex(nodes)
    for node in index.nodes:
        if node.kind is NodeKind.PROPOSAL:
            reviewed = approved_by_a_person(node)
            if node.status is not NodeStatus.APPROVED or not (reviewed or auto):
                continue
        elif node.kind is not NodeKind.EDIT:
            continue
        prompt = index.prompt_node(node)
        if prompt is None or prompt.call is None or not node.content.strip():
            continue
        yield {
            "messages": [dict(m) for m in prompt.call.messages] + _assistant(node.content),
            "persona": node.persona,
            "character": ctx.character_of(node.persona),
            "session": ctx.session,
            "node": node.id,
            "prompt_node": prompt.id,
            "model": _model(prompt),
            "action": node.action.value if node.action else None,
            "source": "edit" if node.kind is NodeKind.EDIT else "approval",
            "created_at": _iso(node.created_at),
        }
