"""The proposed response: what a persona wants to do next, before anyone applies it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from personaweb.llm.types import CallRecord
from personaweb.personas.tree import Action


@dataclass(frozen=True)
class ProposedResponse:
    """One proposal, always tagged with the persona that made it."""

    persona: str
    """Path of the proposing persona, e.g. `orchestrator/style_rewriter`."""
    action: Action
    """delegate to a child, reply to the caller, or pass (choose not to answer)."""
    content: str
    """The message to the child, or the reply text; empty for a pass."""
    target: str | None = None
    """For delegate: the child's name."""
    call: CallRecord | None = None
    """The LLM call that produced it; None when code or a person made it."""
    data: dict[str, Any] = field(default_factory=dict)
    """Extra facts worth showing on the node (scores, hints)."""

    def __post_init__(self) -> None:
        if self.action is Action.DELEGATE and not self.target:
            raise ValueError("a delegate proposal needs a target child")


class ProposalFailed(Exception):
    """A persona could not produce a valid proposal. Becomes a visible failed node."""

    def __init__(self, reason: str, call: CallRecord | None = None, retryable: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.call = call
        self.retryable = retryable


@dataclass(frozen=True)
class Deliberation:
    """A decision a persona records as its own node before proposing (e.g. one character's
    choice to speak or stay silent in a group chat)."""

    content: str
    """The reason, in one line a person can read."""
    data: dict[str, Any] = field(default_factory=dict)
    """The numbers behind it."""
    call: CallRecord | None = None
    """The LLM call behind it, if any (an LLM pre-pass)."""
