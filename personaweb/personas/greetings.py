"""Opening a session with greetings: the nodes that state.py reads as characters' first lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from personaweb.personas.tree import Node, NodeKind, NodeStatus, new_id


@dataclass(frozen=True)
class Opening:
    """One character's opening line."""

    persona: str
    """The character's top persona: the root, or `director/<slug>` in a group."""
    text: str
    """What it says (macros already replaced)."""
    choice: str
    """Which greeting it was ("greeting", "alternate 2"...), for the inspector."""


def greeting_nodes(openings: Sequence[Opening], parent_id: str | None = None) -> list[Node]:
    """One greeting node per opening, each the child of the one before (the first under
    `parent_id`, None for a new tree): one path, in the order the characters speak."""
    nodes: list[Node] = []
    for opening in openings:
        node = Node(
            id=new_id(),
            parent_id=nodes[-1].id if nodes else parent_id,
            persona=opening.persona,
            kind=NodeKind.GREETING,
            status=NodeStatus.RECORDED,
            content=opening.text,
            data={"greeting": opening.choice},
        )
        nodes.append(node)
    return nodes
