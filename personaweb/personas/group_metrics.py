"""What each reply policy costs, measured from the nodes of a group chat.

For every policy: how many messages it decided on, the LLM calls and tokens spent deciding, and
the latency deciding added to the reply path. Heuristic heat costs nothing; the pre-pass adds
its (concurrent) calls before anyone speaks; the null action spends whole reply calls that end
in a pass; async ratings spend calls off the reply path (no added latency).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from personaweb.personas.tree import Action, Node, NodeKind


@dataclass
class PolicyCost:
    """The cost of one reply policy over a conversation."""

    policy: str
    """heuristic, prepass, null_action or async_rating."""
    messages: int = 0
    """Messages this policy decided on (for at least one character)."""
    decisions: int = 0
    """Per-character decisions made."""
    llm_calls: int = 0
    """LLM calls spent on deciding (not on the replies people read)."""
    tokens: int = 0
    """Prompt plus completion tokens of those calls."""
    added_latency_s: float = 0.0
    """Seconds those calls held up the reply path."""

    def per_message(self, value: float) -> float:
        return value / self.messages if self.messages else 0.0

    @property
    def calls_per_message(self) -> float:
        return self.per_message(self.llm_calls)

    @property
    def tokens_per_message(self) -> float:
        return self.per_message(self.tokens)

    @property
    def latency_per_message_s(self) -> float:
        return self.per_message(self.added_latency_s)


def _tokens(node: Node) -> int:
    if node.call is None:
        return 0
    return (node.call.prompt_tokens or 0) + (node.call.completion_tokens or 0)


def policy_costs(nodes: Iterable[Node]) -> list[PolicyCost]:
    """Costs per policy, from a group chat's nodes (a path or a whole tree)."""
    ordered = sorted(nodes, key=lambda n: n.seq)
    by_id = {n.id: n for n in ordered}
    costs: dict[str, PolicyCost] = {}
    rounds: dict[str, set[str]] = defaultdict(set)
    prepass_latency: dict[tuple[str, str], float] = defaultdict(float)

    def cost(policy: str) -> PolicyCost:
        return costs.setdefault(policy, PolicyCost(policy))

    for node in ordered:
        if node.kind is not NodeKind.DECISION or "policy" not in node.data:
            continue
        policy = str(node.data["policy"])
        entry = cost(policy)
        entry.decisions += 1
        rounds[policy].add(str(node.data.get("heard", node.parent_id)))
        numbers = node.data.get("numbers") or {}
        if node.call is not None:
            entry.llm_calls += 1
            entry.tokens += _tokens(node)
            # The pre-pass calls of one round run concurrently: the round waits for the slowest.
            key = (policy, str(node.data.get("heard", node.parent_id)))
            prepass_latency[key] = max(prepass_latency[key], node.call.latency_s)
        if "rating_tokens" in numbers:
            entry.llm_calls += 1
            entry.tokens += int(numbers["rating_tokens"])

    for (policy, _round), latency in prepass_latency.items():
        cost(policy).added_latency_s += latency

    # Null action: a character's whole reply subtree that ended in a pass was spent deciding.
    for node in ordered:
        if node.action is not Action.PASS or node.persona.count("/") != 1:
            continue
        if not node.persona.startswith("director/"):
            continue
        entry = cost("null_action")
        current: Node | None = node
        while current is not None and not (
            current.kind is NodeKind.INBOUND and current.persona == node.persona
        ):
            if current.persona.startswith(node.persona) and current.call is not None:
                entry.llm_calls += 1
                entry.tokens += _tokens(current)
                entry.added_latency_s += current.call.latency_s
            current = by_id.get(current.parent_id) if current.parent_id else None

    for policy, heard in rounds.items():
        cost(policy).messages = len(heard)
    return sorted(costs.values(), key=lambda c: c.policy)
