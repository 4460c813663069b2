"""Repeated samples: how N replies per script line live in one contender's conversation tree.

A comparison plays every script line N times per contender. The N samples are independent
replays of the same conversation prefix, never N conversations drifting apart. The rules, read
by the player (running.py) and the page (metrics.py) alike:

1. A *line* is a user message: an inbound node sent by the user.
2. **Sample 1 is the conversation.** Under a line, the newest child without a sample mark whose
   turn answered is where the conversation goes on (else, while none has answered, the newest
   unmarked child); the next line is sent under the end of that turn. "Answered" keeps a
   sample branch cut off by a crash before it got its mark from displacing a finished reply.
3. **Samples 2..N** of a line are branches from the same line (`Engine.branch`), made after
   sample 1 has answered. The first node of each carries `data["sample"] = k`; a retry of a
   failed first node carries the same mark, and the newest node with a mark is the one that
   counts. Branches a person makes in the debugger carry no mark and never count as samples
   (an unmarked branch made later becomes sample 1, as a replay with tweaks should).
4. **A turn ends** where its newest nodes end, short of the next line; from the end of a turn
   the conversation goes on at its newest line.

Nothing else is recorded: a run cut off mid-sample is resumed by reading the tree again.
"""

from __future__ import annotations

from collections.abc import Sequence

from personaweb.personas.state import USER
from personaweb.personas.tree import PROPOSAL_KINDS, Action, Node, NodeKind, NodeStatus

SAMPLE_KEY = "sample"
"""Node data key: which sample (2..N) a branch under a line is."""
MAX_SAMPLES = 20
"""Most samples per line a comparison may ask for."""
EMBEDDED_SAMPLES = 1
"""Default on the embedded model: it is slow on a laptop, and its replies vary little."""
REAL_MODEL_SAMPLES = 5
"""Default on a real endpoint: enough for an interval, affordable for a five-line script."""


def default_samples(embedded: bool) -> int:
    """How many samples a new comparison takes unless a person says otherwise."""
    return EMBEDDED_SAMPLES if embedded else REAL_MODEL_SAMPLES


def is_line(node: Node) -> bool:
    """A user message: where a script line enters the conversation."""
    return node.kind is NodeKind.INBOUND and node.sender == USER


def sample_mark(node: Node) -> int | None:
    """The sample number a branch's first node carries (None: unmarked, sample 1)."""
    mark = node.data.get(SAMPLE_KEY)
    return mark if isinstance(mark, int) and not isinstance(mark, bool) and mark >= 2 else None


def unmarked(children: Sequence[Node]) -> list[Node]:
    """Rule 2's candidates under a line, oldest first."""
    return [c for c in children if sample_mark(c) is None and not is_line(c)]


def answered(line: Node, end: Node) -> bool:
    """Whether a turn that ends at `end` answered `line`: the top persona's reply (or pass),
    applied."""
    return (
        end.persona == line.persona
        and end.kind in PROPOSAL_KINDS
        and end.action in (Action.REPLY, Action.PASS)
        and end.status is NodeStatus.APPROVED
    )


def choose_first(line: Node, turns: Sequence[tuple[Node, Node]]) -> Node | None:
    """Rule 2: from (unmarked child, end of its turn) pairs, oldest first, sample 1's child."""
    done = [child for child, end in turns if answered(line, end)]
    if done:
        return done[-1]
    return turns[-1][0] if turns else None


def other_samples(children: Sequence[Node], samples: int) -> dict[int, Node]:
    """Rule 3: the first node of each sample 2..`samples` that exists (the newest per mark)."""
    found: dict[int, Node] = {}
    for child in children:  # oldest first, so a later retry replaces its failed attempt
        mark = sample_mark(child)
        if mark is not None and mark <= samples:
            found[mark] = child
    return dict(sorted(found.items()))


def turn_step(children: Sequence[Node]) -> Node | None:
    """Rule 4: the next node of a turn (the newest child that is not a new line)."""
    return next((c for c in reversed(children) if not is_line(c)), None)


def next_line(children: Sequence[Node]) -> Node | None:
    """Rule 4: the line the conversation goes on with after a turn's end (the newest)."""
    return next((c for c in reversed(children) if is_line(c)), None)


def first_line(roots: Sequence[Node]) -> Node | None:
    """The comparison's first line: the oldest user message at the root of the tree."""
    return next((r for r in roots if is_line(r)), None)
