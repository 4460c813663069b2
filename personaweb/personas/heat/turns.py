"""Turn order among characters (after SillyTavern's group chats) and the hard cap on turns.

`speaking_order()` answers "who of those who want to speak goes first", for the orders a
session may pick; `natural_draft()` is the natural order's draft by mentions and talkativeness.
`TurnGuard` is the last safety net: however hot the characters are, no more than so many
character messages follow one user message.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from personaweb.personas.heat.chat import (
    USER,
    GroupMessage,
    Member,
    since_last_user_message,
    turns_since_user,
)
from personaweb.personas.heat.decision import Decision, rank_speakers
from personaweb.personas.heat.mentions import parse_mentions


class TurnOrder(StrEnum):
    """How the next speakers are drafted."""

    NATURAL = "natural"
    """Mentioned characters first, then each by a talkativeness roll (else one at random);
    then anyone else who wants to speak, the hottest first."""
    LIST = "list"
    """Every character, in member-list order."""
    POOLED = "pooled"
    """Only those who have not spoken since the user's last message, the hottest first."""
    MANUAL = "manual"
    """Only the character the user picks."""


def speaking_order(
    order: TurnOrder,
    members: Sequence[Member],
    history: Sequence[GroupMessage],
    decisions: Iterable[Decision],
    *,
    rng: random.Random | None = None,
) -> list[str]:
    """Those who want to speak (`decisions` that say so), in the order they would speak after
    the last message of `history`: the one turn order of a group chat.

    - list: member-list order;
    - pooled: only those who have not spoken since the user's last message, hottest first;
    - natural: the natural draft first (`natural_draft`, reproducible with `rng`), then the
      others who want to speak, hottest first;
    - manual: the user's pick is the only one who wants to speak (the decisions say so), so
      whoever wants to, in member order.
    """
    willing = [d for d in decisions if d.speak]
    if not willing:
        return []
    wanting = {d.character for d in willing}
    if order in (TurnOrder.LIST, TurnOrder.MANUAL):
        return [m.slug for m in members if m.slug in wanting]
    if order is TurnOrder.POOLED:
        spoken = {m.speaker for m in since_last_user_message(history)}
        return rank_speakers([d for d in willing if d.character not in spoken])
    drafted = [s for s in natural_draft(members, history, rng=rng) if s in wanting]
    return drafted + [s for s in rank_speakers(willing) if s not in drafted]


def natural_draft(
    members: Sequence[Member],
    history: Sequence[GroupMessage],
    *,
    rng: random.Random | None = None,
) -> list[str]:
    """The natural order's draft after the last message of `history` (after SillyTavern):
    the characters it mentions, then each other by a talkativeness roll; one at random when
    nobody is drafted. The character who wrote the last message is never drafted (it would be
    answering itself). `rng` makes it reproducible."""
    rng = rng or random.Random()
    if not members:
        return []
    slugs = [m.slug for m in members]
    last = history[-1] if history else None
    banned = last.speaker if last is not None and last.speaker != USER else None
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


DEFAULT_TURN_CAP = 6
"""Character messages allowed after one user message when nothing else stops them (a group
chat's default turn cap)."""


@dataclass(frozen=True)
class TurnGuard:
    """The hard cap on character turns per user message, counted from the chat history."""

    max_turns: int = DEFAULT_TURN_CAP
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
