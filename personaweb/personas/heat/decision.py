"""The value every reply policy produces: who would speak, and why, with the numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ReplyPolicy(StrEnum):
    """How a character in a group chat decides whether to speak at all."""

    HEURISTIC = "heuristic"
    """Heat from counting and timing messages; no LLM call."""
    PREPASS = "prepass"
    """A cheap structured LLM call decides before the reply call is made."""
    NULL_ACTION = "null_action"
    """The reply call itself may answer with a pass marker."""
    ASYNC_RATING = "async_rating"
    """Heuristic heat, nudged by LLM ratings that run in the background after each message."""


@dataclass(frozen=True)
class Decision:
    """Whether one character speaks next, and the reasoning a person can read."""

    character: str
    """Slug of the character the decision is about."""
    speak: bool
    """True when the character should answer."""
    policy: ReplyPolicy
    """The policy that decided."""
    reason: str
    """One line a person can read, e.g. "heat 0.31 below 0.60, not mentioned"."""
    numbers: dict[str, float] = field(default_factory=dict)
    """Everything that went into it: heat, threshold, boosts, fatigue, confidence, penalty."""

    def silenced(self, reason: str, **numbers: float) -> Decision:
        """The same decision turned silent, with `reason` in front of the original one."""
        return Decision(
            character=self.character,
            speak=False,
            policy=self.policy,
            reason=f"{reason} (was: {self.reason})" if self.reason else reason,
            numbers={**self.numbers, **numbers},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "character": self.character,
            "speak": self.speak,
            "policy": self.policy.value,
            "reason": self.reason,
            "numbers": dict(self.numbers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            character=str(data["character"]),
            speak=bool(data["speak"]),
            policy=ReplyPolicy(data["policy"]),
            reason=str(data.get("reason", "")),
            numbers={str(k): float(v) for k, v in dict(data.get("numbers", {})).items()},
        )


@dataclass(frozen=True)
class PolicySettings:
    """The session's reply policy, with per-character overrides."""

    default: ReplyPolicy = ReplyPolicy.HEURISTIC
    """The policy for every character without an override."""
    overrides: Mapping[str, ReplyPolicy] = field(default_factory=dict)
    """Character slug -> the policy that character uses instead."""

    def for_character(self, slug: str) -> ReplyPolicy:
        """The policy that applies to one character."""
        return self.overrides.get(slug, self.default)


def fmt(value: float) -> str:
    """Two decimals: the precision every reason line uses."""
    return f"{value:.2f}"


def rank_speakers(decisions: Mapping[str, Decision] | list[Decision]) -> list[str]:
    """The slugs of the characters who want to speak, hottest (or most confident) first.

    Ties keep the given order, so member order breaks them deterministically.
    """
    items = list(decisions.values()) if isinstance(decisions, Mapping) else list(decisions)
    speaking = [d for d in items if d.speak]

    def strength(decision: Decision) -> float:
        numbers = decision.numbers
        if "heat" in numbers:
            return numbers["heat"] - numbers.get("threshold", 0.0)
        return numbers.get("confidence", 0.0) - numbers.get("penalty", 0.0)

    return [d.character for d in sorted(speaking, key=strength, reverse=True)]
