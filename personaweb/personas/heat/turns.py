"""Turn order among characters (after SillyTavern's group chats) and the hard cap on turns.

`next_speakers()` answers "who is drafted to speak next", for the orders a session may pick.
`TurnGuard` is the last safety net: however hot the characters are, no more than so many
character messages follow one user message.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from personaweb.personas.heat.chat import (
    USER,
    GroupMessage,
    Member,
    since_last_user_message,
    turns_since_user,
)
from personaweb.personas.heat.decision import Decision
from personaweb.personas.heat.mentions import parse_mentions


class TurnOrder(StrEnum):
    """How the next speakers are drafted."""

    NATURAL = "natural"
    """Mentioned characters first, then each by a talkativeness roll; else one at random."""
    LIST = "list"
    """Every character, in member-list order."""
    POOLED = "pooled"
    """Only those who have not spoken since the user's last message (next_speakers draws one
    at random; the group director takes the hottest of them who wants to speak)."""
    MANUAL = "manual"
    """Only the character the user picks."""


def next_speakers(
    order: TurnOrder,
    members: Sequence[Member],
    history: Sequence[GroupMessage],
    *,
    rng: random.Random | None = None,
    chosen: str | None = None,
    allow_self_responses: bool = False,
) -> list[str]:
    """The slugs drafted to speak after the last message of `history`, in speaking order.

    `rng` makes the natural and pooled orders reproducible; `chosen` is the user's pick in
    manual order. Unless `allow_self_responses`, the character who wrote the last message is
    not drafted again in natural and pooled order (it would be answering itself).
    """
    rng = rng or random.Random()
    if not members:
        return []
    slugs = [m.slug for m in members]
    last = history[-1] if history else None
    banned = (
        last.speaker
        if last is not None and last.speaker != USER and not allow_self_responses
        else None
    )

    if order is TurnOrder.MANUAL:
        return [chosen] if chosen in slugs else []
    if order is TurnOrder.LIST:
        return slugs
    if order is TurnOrder.POOLED:
        spoken = {m.speaker for m in since_last_user_message(history)}
        pool = [s for s in slugs if s not in spoken and s != banned]
        if not pool:
            # Everyone had a turn: anyone but the last speaker, so nobody answers themselves.
            pool = [s for s in slugs if s != banned] or slugs
        return [rng.choice(pool)]

    # Natural order.
    drafted: list[str] = []
    if last is not None:
        mentioned = parse_mentions(last.text, members)
        drafted = [s for s in slugs if s in mentioned and s != banned]
    # Shuffled so that member-list position gives no one an edge in the talkativeness round.
    shuffled = list(members)
    rng.shuffle(shuffled)
    for member in shuffled:
        if member.slug in drafted or member.slug == banned:
            continue
        if rng.random() < member.talkativeness:
            drafted.append(member.slug)
    if not drafted:
        pool = [s for s in slugs if s != banned] or slugs
        drafted = [rng.choice(pool)]
    return drafted


DEFAULT_MAX_TURNS = 8
"""Character messages allowed after one user message when nothing else stops them."""


@dataclass(frozen=True)
class TurnGuard:
    """The hard cap on character turns per user message, counted from the chat history."""

    max_turns: int = DEFAULT_MAX_TURNS
    """How many character messages may follow one user message."""

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be at least 1: got {self.max_turns}")

    def turns(self, history: Sequence[GroupMessage]) -> int:
        """Character messages since the user's last message."""
        return turns_since_user(history)

    def remaining(self, history: Sequence[GroupMessage]) -> int:
        """How many more character messages the cap allows."""
        return max(0, self.max_turns - self.turns(history))

    def exhausted(self, history: Sequence[GroupMessage]) -> bool:
        """True once the characters have used up their turns until the user speaks again."""
        return self.remaining(history) == 0

    def check(self, decision: Decision, history: Sequence[GroupMessage]) -> Decision:
        """The decision, silenced if the cap is reached; unchanged otherwise."""
        if not decision.speak or not self.exhausted(history):
            return decision
        return decision.silenced(
            f"turn cap {self.max_turns} reached since the user's last message",
            turns=float(self.turns(history)),
            max_turns=float(self.max_turns),
        )

    def limit(self, speakers: Sequence[str], history: Sequence[GroupMessage]) -> list[str]:
        """The first speakers that still fit under the cap."""
        return list(speakers[: self.remaining(history)])
