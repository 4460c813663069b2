"""Deciding who in a group speaks after a message: each character's `Decision` by its reply
policy, and who goes first among those who want to (the session's turn order).

In this order, first match wins: the turn cap silences everyone; in manual order only the
user's pick speaks; once characters passed on a message (null action), they are not asked
again. Otherwise heat is replayed over the whole conversation (with the background ratings
that landed), the pre-pass characters are asked in one concurrent round, and ratings of the
new message are asked for in the background.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from personaweb.llm.types import CallRecord
from personaweb.personas.group.conversation import Heard
from personaweb.personas.group.ratings import BackgroundRatings, LandedRating, on_path
from personaweb.personas.group.settings import GroupSettings
from personaweb.personas.heat.chat import Member
from personaweb.personas.heat.decision import Decision, ReplyPolicy
from personaweb.personas.heat.heuristic import HeatBoard
from personaweb.personas.heat.prepass import run_prepass
from personaweb.personas.heat.rating import apply_rating, run_rating
from personaweb.personas.heat.turns import TurnGuard, TurnOrder, speaking_order
from personaweb.personas.persona import ProposeContext
from personaweb.personas.state import Event


@dataclass(frozen=True)
class CalledDecision(Decision):
    """A Decision that came with an LLM call (the pre-pass)."""

    call: CallRecord | None = None

    @classmethod
    def of(cls, decision: Decision, call: CallRecord | None) -> CalledDecision:
        return cls(
            decision.character,
            decision.speak,
            decision.policy,
            decision.reason,
            dict(decision.numbers),
            call,
        )


@dataclass(frozen=True)
class Round:
    """The decisions on one message."""

    decisions: dict[str, Decision]
    """Per listening character, in member order."""
    ratings: Mapping[str, list[LandedRating]] = field(default_factory=dict)
    """Per character: the landed ratings this round applied that its path did not hold yet
    (its decision node writes them: see ratings.py)."""


class Decider:
    """Decides for one group's characters by its settings."""

    def __init__(
        self, members: Sequence[Member], settings: GroupSettings, ratings: BackgroundRatings
    ) -> None:
        self.members = list(members)
        self.settings = settings
        self.ratings = ratings

    async def decide(self, ctx: ProposeContext, heard: Heard) -> Round:
        history = heard.messages
        last = history[-1]
        listeners = [m for m in self.members if m.slug != last.speaker]
        policy = self.settings.policy
        guard = TurnGuard(self.settings.turn_cap)
        if guard.exhausted(history):
            turns = guard.turns(history)
            reason = (
                f"turn cap: {turns} character messages since the user's last "
                f"message (cap {self.settings.turn_cap})"
            )
            numbers = {"turns": float(turns), "max_turns": float(self.settings.turn_cap)}
            return Round(
                {
                    m.slug: Decision(m.slug, False, policy.for_character(m.slug), reason, numbers)
                    for m in listeners
                }
            )
        if self.settings.order is TurnOrder.MANUAL:
            return Round(self._manual(listeners, heard))
        if heard.passed:
            # Whoever already chose not to answer this message is not asked again.
            answered = self._after_passes(listeners, heard)
            if answered is not None:
                return Round(answered)

        board, last_decisions, fresh = self._board(ctx.history, heard)
        decisions: dict[str, Decision] = {}
        prepass: list[Member] = []
        for member in listeners:
            kind = policy.for_character(member.slug)
            if kind is ReplyPolicy.PREPASS:
                prepass.append(member)
            elif kind is ReplyPolicy.NULL_ACTION:
                decisions[member.slug] = Decision(
                    member.slug,
                    True,
                    kind,
                    "null action: the character's own reply call may pass",
                    {"heat": board.heat(member.slug, last.timestamp), "threshold": 0.0},
                )
            else:
                decisions[member.slug] = last_decisions[member.slug]
        if prepass:
            results = await asyncio.gather(
                *(
                    run_prepass(
                        ctx.model,
                        self.settings.prepass_profile,
                        member,
                        history,
                        self.members,
                        threshold=self.settings.prepass_threshold,
                        history_length=self.settings.history_window,
                        retry=ctx.retry,
                    )
                    for member in prepass
                )
            )
            for member, (decision, call) in zip(prepass, results, strict=True):
                decisions[member.slug] = CalledDecision.of(decision, call)
        self._ask_ratings(ctx, heard)
        for slug in heard.passed:
            if slug in decisions and decisions[slug].speak:
                decisions[slug] = decisions[slug].silenced("chose not to answer this message")
        return Round(
            {m.slug: decisions[m.slug] for m in listeners if m.slug in decisions},
            fresh,
        )

    def _after_passes(self, listeners: list[Member], heard: Heard) -> dict[str, Decision] | None:
        policy = self.settings.policy
        remaining = [m for m in listeners if m.slug not in heard.passed]
        if any(policy.for_character(m.slug) is not ReplyPolicy.NULL_ACTION for m in remaining):
            return None  # other policies decide afresh; passes are filtered there
        out = {}
        for member in listeners:
            kind = policy.for_character(member.slug)
            if member.slug in heard.passed:
                out[member.slug] = Decision(
                    member.slug, False, kind, "chose not to answer this message (null action)"
                )
            else:
                out[member.slug] = Decision(
                    member.slug, True, kind, "null action: the character's own reply call may pass"
                )
        return out

    def _manual(self, listeners: list[Member], heard: Heard) -> dict[str, Decision]:
        last = heard.messages[-1]
        out = {}
        for member in listeners:
            if last.from_user and member.slug == heard.picked:
                out[member.slug] = Decision(
                    member.slug, True, ReplyPolicy.HEURISTIC, "manual order: the user picked them"
                )
            else:
                why = (
                    "manual order: the user did not pick them"
                    if last.from_user
                    else "manual order: the user picks who speaks next"
                )
                out[member.slug] = Decision(member.slug, False, ReplyPolicy.HEURISTIC, why)
        return out

    def _board(
        self, history: Sequence[Event], heard: Heard
    ) -> tuple[HeatBoard, dict[str, Decision], dict[str, list[LandedRating]]]:
        """Heat replayed over the whole conversation, each message at its own time, with the
        background ratings that landed applied where they were asked for: the board, the
        decisions on the last message, and the ratings applied that the path did not hold."""
        policy = self.settings.policy
        board = HeatBoard(
            members=self.members,
            config=self.settings.heat,
            overrides=dict(self.settings.heat_overrides),
            states={},
            clock=lambda: heard.messages[0].timestamp,
        )
        rated = [
            m.slug for m in self.members if policy.for_character(m.slug) is ReplyPolicy.ASYNC_RATING
        ]
        known, fresh = self._landed(history, heard, rated) if rated else ({}, {})
        used: dict[str, LandedRating] = {}
        last: dict[str, Decision] = {}
        for message, node_id in zip(heard.messages, heard.node_ids, strict=True):
            last = board.hear(message, now=message.timestamp)
            if message is heard.messages[-1]:
                continue  # its ratings were only just asked for
            for slug in rated:
                landed = known.get((node_id, slug))
                if landed is None:
                    continue
                state = apply_rating(
                    board.states[slug], landed.rating, message.timestamp, board.config_for(slug)
                )
                board.set_state(slug, state)
                used[slug] = landed
        for slug in rated:
            decision = last.get(slug)
            if decision is None:
                continue
            numbers = dict(decision.numbers)
            if slug in used:
                numbers.update(used[slug].numbers())
            last[slug] = Decision(
                slug, decision.speak, ReplyPolicy.ASYNC_RATING, decision.reason, numbers
            )
        return board, last, fresh

    def _landed(
        self, history: Sequence[Event], heard: Heard, rated: Sequence[str]
    ) -> tuple[dict[tuple[str, str], LandedRating], dict[str, list[LandedRating]]]:
        """The landed ratings of the conversation's messages, by (message node, slug): those
        on the path, and those that landed in this process since; the latter also by slug (this
        round's decision nodes write them on the path)."""
        known = on_path(history)
        fresh: dict[str, list[LandedRating]] = {}
        for rating in self.ratings.landed(set(heard.node_ids[:-1])):
            if rating.key not in known and rating.character in rated:
                known[rating.key] = rating
                fresh.setdefault(rating.character, []).append(rating)
        return known, fresh

    def _ask_ratings(self, ctx: ProposeContext, heard: Heard) -> None:
        policy = self.settings.policy
        node_id = heard.node_ids[-1]
        for member in self.members:
            if policy.for_character(member.slug) is not ReplyPolicy.ASYNC_RATING:
                continue
            if member.slug == heard.messages[-1].speaker:
                continue
            self.ratings.schedule(
                node_id,
                member.slug,
                run_rating(
                    ctx.model,
                    self.settings.prepass_profile,
                    member,
                    list(heard.messages),
                    self.members,
                    history_length=self.settings.history_window,
                    retry=ctx.retry,
                ),
            )

    def choose(self, decisions: Mapping[str, Decision], heard: Heard) -> str | None:
        """Who speaks next among those who want to, by the session's turn order (natural
        order draws by talkativeness seeded by the message, so a replay draws the same)."""
        seed = int(hashlib.sha1(heard.node_ids[-1].encode()).hexdigest()[:12], 16)
        order = speaking_order(
            self.settings.order,
            self.members,
            heard.messages,
            decisions.values(),
            rng=random.Random(seed),
        )
        return order[0] if order else None
