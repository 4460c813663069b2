"""Group chats: a director persona on top applies the reply policy; each character under it is a
whole dialogue hierarchy (director -> character -> responder / rewriter).

Every message is heard by every other character. After each one the director records, as
decision nodes, who would speak and why (with the numbers), then delegates to the next speaker
or passes when everyone is quiet. Its children's replies are relayed into the conversation.
Conversations between characters end by themselves through fatigue; a turn cap per user
message is the last guard.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from personaweb.llm.types import CallRecord, LLMProfile
from personaweb.personas.dialogue import CharacterLike, dialogue_hierarchy
from personaweb.personas.heat.chat import USER, GroupMessage, Member, since_last_user_message
from personaweb.personas.heat.decision import Decision, PolicySettings, ReplyPolicy, rank_speakers
from personaweb.personas.heat.heuristic import HeatBoard, HeatConfig
from personaweb.personas.heat.mentions import parse_mentions
from personaweb.personas.heat.null_action import pass_instruction
from personaweb.personas.heat.prepass import run_prepass
from personaweb.personas.heat.rating import RatingResult, apply_rating, run_rating
from personaweb.personas.heat.turns import TurnGuard, TurnOrder, next_speakers
from personaweb.personas.persona import ProposeContext, ResponseDrivenPersona
from personaweb.personas.proposal import Deliberation, ProposedResponse
from personaweb.personas.state import Event, EventKind
from personaweb.personas.tree import Action

DIRECTOR = "director"
"""The group director's name: the top persona of every group chat."""
DEFAULT_TURN_CAP = 6
GROUP_MAX_STEPS = 400
"""A RunConfig.max_steps that fits a group turn: every message costs a decision per
character, and every character turn a whole dialogue hierarchy's steps, up to the turn cap."""


@dataclass(frozen=True)
class GroupSettings:
    """How a group chat decides who speaks."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    """The session's reply policy, with per-character overrides."""
    order: TurnOrder = TurnOrder.NATURAL
    """Among those who want to speak, who goes first."""
    heat: HeatConfig = field(default_factory=HeatConfig)
    """Heuristic heat settings for the session."""
    heat_overrides: Mapping[str, HeatConfig] = field(default_factory=dict)
    """Per character slug: heat settings replacing the session's."""
    prepass_profile: LLMProfile = field(
        default_factory=lambda: LLMProfile(temperature=0.0, max_tokens=120)
    )
    """The cheap model profile of the LLM pre-pass and the async ratings."""
    prepass_threshold: float = 0.6
    """Confidence minus fatigue penalty needed to speak, in the pre-pass."""
    history_window: int = 5
    """Recent messages the pre-pass and ratings see."""
    turn_cap: int = DEFAULT_TURN_CAP
    """At most this many character messages follow one user message."""


class RatingBook:
    """Background heat ratings, keyed by (message node id, character slug).

    Ratings run after a message without holding up the reply path; a later decision uses those
    that have landed, and records on its node which rating it used. Kept in memory: a lost
    rating only means the heat was not nudged."""

    def __init__(self, keep: int = 500) -> None:
        self.keep = keep
        """How many ratings to remember (oldest dropped first): only recent ones matter."""
        self.results: dict[tuple[str, str], RatingResult] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def schedule(self, key: tuple[str, str], coro: Any) -> None:
        if key in self.results or key in self.tasks:
            coro.close()
            return

        async def runner() -> None:
            try:
                self.results[key] = await coro
            except Exception as exc:  # a lost rating changes nothing; never an orphan error
                self.results[key] = RatingResult(None, None, f"{type(exc).__name__}: {exc}")
            finally:
                self.tasks.pop(key, None)
                while len(self.results) > self.keep:
                    self.results.pop(next(iter(self.results)))

        self.tasks[key] = asyncio.get_running_loop().create_task(runner())

    async def settle(self) -> None:
        """Wait for ratings still running (tests and shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)


@dataclass(frozen=True)
class Heard:
    """The group conversation as the director reads it off its path."""

    messages: list[GroupMessage]
    """Every message, oldest first."""
    node_ids: list[str]
    """The node each message came from."""
    picked: str | None
    """In manual order: the speaker the user picked with their last message."""
    passed: frozenset[str] = frozenset()
    """Characters who chose not to answer the last message (null action)."""


def _member(character: CharacterLike, slug: str, talkativeness: float) -> Member:
    return Member(
        slug=slug,
        name=character.name,
        talkativeness=talkativeness,
        persona=f"{character.description} {character.personality}".strip()[:600],
    )


class GroupDirector(ResponseDrivenPersona):
    """The top of a group chat. Code-managed: the policy decides, not an LLM's whim."""

    role_kind: ClassVar[str] = "code"

    def __init__(
        self,
        members: Sequence[tuple[str, CharacterLike, ResponseDrivenPersona]],
        settings: GroupSettings | None = None,
        *,
        ratings: RatingBook | None = None,
        talkativeness: Mapping[str, float] | None = None,
    ) -> None:
        # No members is allowed: a group whose characters were all deleted still opens, and
        # its director simply has nobody to ask (every message passes).
        roots = []
        for slug, _character, root in members:
            root.name = slug
            roots.append(root)
        super().__init__(
            DIRECTOR,
            description="Decides who in the group speaks next.",
            children=roots,
            display_name="Group",
        )
        talk = dict(talkativeness or {})
        self.members = [_member(c, slug, talk.get(slug, 0.5)) for slug, c, _root in members]
        self.settings = settings or GroupSettings()
        self.ratings = ratings or RatingBook()

    def speakers(self) -> frozenset[str]:
        """Every character speaks in the conversation: their replies are its lines."""
        return frozenset(child.path for child in self.children.values())

    # -- reading the conversation off the path -----------------------------------------

    def heard(self, history: Sequence[Event]) -> Heard:
        messages: list[GroupMessage] = []
        ids: list[str] = []
        picked: str | None = None
        passed: set[str] = set()
        for event in history:
            if event.kind is EventKind.INBOUND and event.sender == USER:
                messages.append(GroupMessage(USER, event.text, event.created_at))
                ids.append(event.node_id)
                picked = str(event.data.get("speaker") or "") or None
                passed = set()
            elif event.kind is EventKind.CHILD_RESULT and event.target is not None:
                if event.action is Action.PASS:
                    passed.add(event.target)
                    continue
                messages.append(GroupMessage(event.target, event.text, event.created_at))
                ids.append(event.node_id)
                passed = set()
        return Heard(messages, ids, picked, frozenset(passed))

    def name_of(self, slug: str) -> str:
        if slug == USER:
            return "User"
        return next((m.name for m in self.members if m.slug == slug), slug)

    # -- deciding ----------------------------------------------------------------------

    async def deliberate(self, ctx: ProposeContext) -> list[Deliberation]:
        heard = self.heard(ctx.history)
        if not heard.messages or self.settled(ctx.history, heard) is not None:
            return []  # decided already (resumed after a restart, or a person reviewed it)
        decisions = await self.decide_all(ctx, heard)
        chosen = self.choose(decisions, heard)
        shown = [m for m in self.members if m.slug in decisions]
        out = []
        for index, member in enumerate(shown):
            decision = decisions[member.slug]
            speaks = member.slug == chosen
            verb = (
                "speaks"
                if speaks
                else ("would speak, but waits" if decision.speak else "stays silent")
            )
            data: dict[str, Any] = {
                **decision.to_dict(),
                "chosen": speaks,
                "order": self.settings.order.value,
                "heard": heard.node_ids[-1],
                # Written one node at a time: the count tells a complete set from one cut
                # short by a stopped process (or a branch from a middle decision).
                "index": index,
                "of": len(shown),
            }
            call = decision.call if isinstance(decision, _CalledDecision) else None
            out.append(Deliberation(f"{member.name} {verb}: {decision.reason}", data, call))
        return out

    def settled(self, history: Sequence[Event], heard: Heard) -> list[Event] | None:
        """The complete set of decisions taken on the last message, oldest first, if the path
        holds one after it (reviews of the director's choice may follow it); else None."""
        tail = list(history)
        while tail and tail[-1].kind in (
            EventKind.REJECTED,
            EventKind.FEEDBACK,
            EventKind.SUPERSEDED,
        ):
            tail.pop()
        newest: list[Event] = []
        while tail and tail[-1].kind is EventKind.DECISION:
            newest.append(tail.pop())
        if not newest:
            return None
        last = newest[0].data
        if last.get("heard") != heard.node_ids[-1] or last.get("index") != last.get("of", 0) - 1:
            return None
        return list(reversed(newest[: int(last["of"])]))

    async def decide_all(self, ctx: ProposeContext, heard: Heard) -> dict[str, Decision]:
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
            return {
                m.slug: Decision(m.slug, False, policy.for_character(m.slug), reason, numbers)
                for m in listeners
            }
        if self.settings.order is TurnOrder.MANUAL:
            return self._manual(listeners, heard)
        if heard.passed:
            # Whoever already chose not to answer this message is not asked again.
            answered = self._after_passes(listeners, heard)
            if answered is not None:
                return answered

        board = self._board(heard)
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
                decisions[member.slug] = board.last_decisions[member.slug]
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
                decisions[member.slug] = _CalledDecision.of(decision, call)
        self._schedule_ratings(ctx, heard)
        for slug in heard.passed:
            if slug in decisions and decisions[slug].speak:
                decisions[slug] = decisions[slug].silenced("chose not to answer this message")
        return {m.slug: decisions[m.slug] for m in listeners if m.slug in decisions}

    def _after_passes(self, listeners: list[Member], heard: Heard) -> dict[str, Decision] | None:
        policy = self.settings.policy
        remaining = [m for m in listeners if m.slug not in heard.passed]
        if any(policy.for_character(m.slug) is not ReplyPolicy.NULL_ACTION for m in remaining):
            return None  # other policies decide afresh below; passes are filtered there
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

    def _board(self, heard: Heard) -> _ReplayedBoard:
        """Heat replayed over the whole conversation, each message at its own time, with the
        async ratings that have landed applied where they were asked for."""
        policy = self.settings.policy
        board = HeatBoard(
            members=self.members,
            config=self.settings.heat,
            overrides=dict(self.settings.heat_overrides),
            states={},
            clock=lambda: heard.messages[0].timestamp,
        )
        used: dict[str, RatingResult] = {}
        last: dict[str, Decision] = {}
        for message, node_id in zip(heard.messages, heard.node_ids, strict=True):
            last = board.hear(message, now=message.timestamp)
            for member in self.members:
                if policy.for_character(member.slug) is not ReplyPolicy.ASYNC_RATING:
                    continue
                result = self.ratings.results.get((node_id, member.slug))
                if (
                    result is not None
                    and result.rating is not None
                    and message is not heard.messages[-1]
                ):
                    state = apply_rating(
                        board.states[member.slug],
                        result.rating,
                        message.timestamp,
                        board.config_for(member.slug),
                    )
                    board.set_state(member.slug, state)
                    used[member.slug] = result
        for slug, decision in list(last.items()):
            if policy.for_character(slug) is ReplyPolicy.ASYNC_RATING:
                numbers = dict(decision.numbers)
                result = used.get(slug)
                if result is not None and result.rating is not None:
                    numbers.update(
                        rating_interest=result.rating.interest,
                        rating_boredom=result.rating.boredom,
                        rating_wait_s=result.rating.wait_seconds,
                    )
                    if result.record is not None:
                        numbers.update(
                            rating_tokens=float(
                                (result.record.prompt_tokens or 0)
                                + (result.record.completion_tokens or 0)
                            ),
                            rating_latency_s=result.record.latency_s,
                        )
                last[slug] = Decision(
                    slug, decision.speak, ReplyPolicy.ASYNC_RATING, decision.reason, numbers
                )
        return _ReplayedBoard(board, last)

    def _schedule_ratings(self, ctx: ProposeContext, heard: Heard) -> None:
        policy = self.settings.policy
        node_id = heard.node_ids[-1]
        for member in self.members:
            if policy.for_character(member.slug) is not ReplyPolicy.ASYNC_RATING:
                continue
            if member.slug == heard.messages[-1].speaker:
                continue
            self.ratings.schedule(
                (node_id, member.slug),
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
        """Who speaks next among those who want to, by the session's turn order."""
        willing = [d for d in decisions.values() if d.speak]
        if not willing:
            return None
        order = self.settings.order
        if order is TurnOrder.LIST:
            slugs = {d.character for d in willing}
            return next(m.slug for m in self.members if m.slug in slugs)
        if order is TurnOrder.POOLED:
            spoken = {m.speaker for m in since_last_user_message(heard.messages)}
            fresh = [d for d in willing if d.character not in spoken]
            ranked = rank_speakers(fresh)
            return ranked[0] if ranked else None
        # Natural order: the mentioned first, then a talkativeness draw (seeded by the message,
        # so a replay of the same path draws the same); the hottest willing one otherwise.
        seed = int(hashlib.sha1(heard.node_ids[-1].encode()).hexdigest()[:12], 16)
        drafted = next_speakers(
            TurnOrder.NATURAL, self.members, heard.messages, rng=random.Random(seed)
        )
        wanting = {d.character for d in willing}
        for slug in drafted:
            if slug in wanting:
                return slug
        ranked = rank_speakers(willing)
        return ranked[0] if ranked else None

    # -- proposing ---------------------------------------------------------------------

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        heard = self.heard(ctx.history)
        decided = self.settled(ctx.history, heard) or []
        reviews = self._reviews_since(ctx.history)
        rejected = {e.target for e in reviews if e.kind is EventKind.REJECTED and e.target}
        notes = " ".join(e.text for e in reviews if e.kind is EventKind.FEEDBACK)
        asked = [m.slug for m in self.members if m.slug in parse_mentions(notes, self.members)]
        if asked:
            # "Let Bob answer": a reviewer naming a character overrules the policy.
            slug = asked[0]
            return self._delegate(ctx, slug, heard, f"the reviewer asked for {self.name_of(slug)}")
        if rejected or notes:
            # A reviewed choice: pick again among the others who wanted to speak.
            willing = {
                str(e.data["character"]): Decision.from_dict(e.data)
                for e in decided
                if e.data.get("speak") and e.data.get("character") not in rejected
            }
            again = self.choose(willing, heard) if willing else None
            if again is None:
                why = "nobody else wants to speak"
                return ProposedResponse(ctx.persona, Action.PASS, "", data={"reason": why})
            return self._delegate(ctx, again, heard, "chosen again after a review", notes)
        chosen = next((e for e in decided if e.data.get("chosen")), None)
        if chosen is None:
            why = "everyone stays quiet" if decided else "nothing to answer"
            return ProposedResponse(ctx.persona, Action.PASS, "", data={"reason": why})
        return self._delegate(ctx, str(chosen.data["character"]), heard, chosen.text)

    def _delegate(
        self, ctx: ProposeContext, slug: str, heard: Heard, reason: str, note: str = ""
    ) -> ProposedResponse:
        message = self.message_for(slug, heard)
        if note:
            message += f"\n\n(Reviewer note: {note})"
        data = {"reason": reason}
        return ProposedResponse(ctx.persona, Action.DELEGATE, message, target=slug, data=data)

    @staticmethod
    def _reviews_since(history: Sequence[Event]) -> list[Event]:
        """Rejections and feedback on the director's proposals after its last decisions."""
        out: list[Event] = []
        for event in reversed(history):
            if (
                event.kind in (EventKind.REJECTED, EventKind.SUPERSEDED)
                or event.kind is EventKind.FEEDBACK
            ):
                out.append(event)
            else:
                break
        return out

    def message_for(self, slug: str, heard: Heard) -> str:
        """What a character is told when its turn comes: what was said since it last spoke."""
        since: list[GroupMessage] = []
        for message in reversed(heard.messages):
            if message.speaker == slug:
                break
            since.append(message)
        since.reverse()
        roster = ", ".join(["the user", *(m.name for m in self.members if m.slug != slug)])
        # Quoted, one per line: a chat transcript in "Name: text" form invites a model to
        # continue it, writing everyone's lines instead of its own.
        lines = "\n".join(f"- {self.name_of(m.speaker)} said: \u201c{m.text}\u201d" for m in since)
        text = (
            f"You are in a group chat with {roster}. Since you last spoke:\n{lines}\n\n"
            "Say your next line to the group: only your own words, one short line, "
            "without your name in front."
        )
        if self.settings.policy.for_character(slug) is ReplyPolicy.NULL_ACTION:
            text += " " + pass_instruction(self.name_of(slug))
        return text


@dataclass
class _ReplayedBoard:
    board: HeatBoard
    last_decisions: dict[str, Decision]

    def heat(self, slug: str, now: float) -> float:
        return self.board.heat(slug, now)


@dataclass(frozen=True)
class _CalledDecision(Decision):
    """A Decision that came with an LLM call (the pre-pass)."""

    call: CallRecord | None = None

    @classmethod
    def of(cls, decision: Decision, call: CallRecord | None) -> _CalledDecision:
        return cls(
            decision.character,
            decision.speak,
            decision.policy,
            decision.reason,
            dict(decision.numbers),
            call,
        )


def group_hierarchy(
    characters: Sequence[tuple[str, CharacterLike]],
    settings: GroupSettings | None = None,
    *,
    strategy: str = "nested",
    profile: LLMProfile | None = None,
    talkativeness: Mapping[str, float] | None = None,
    ratings: RatingBook | None = None,
) -> GroupDirector:
    """A director over one dialogue hierarchy per (slug, character). Characters whose policy is
    the null action get a persona tree that can pass."""
    settings = settings or GroupSettings()
    members = []
    for slug, character in characters:
        can_pass = settings.policy.for_character(slug) is ReplyPolicy.NULL_ACTION
        root = dialogue_hierarchy(character, strategy=strategy, profile=profile, can_pass=can_pass)
        members.append((slug, character, root))
    return GroupDirector(members, settings, ratings=ratings, talkativeness=talkativeness)


def group_settings_from_dict(data: Mapping[str, Any]) -> GroupSettings:
    """GroupSettings from stored JSON: {"policy", "overrides", "order", "half_life_s",
    "threshold", "turn_cap", "prepass_threshold", "history_window", "prepass_profile"}.
    Unknown values raise ValueError with the field's name."""
    try:
        policy = ReplyPolicy(data.get("policy") or ReplyPolicy.HEURISTIC)
        overrides = {str(k): ReplyPolicy(v) for k, v in dict(data.get("overrides") or {}).items()}
        order = TurnOrder(data.get("order") or TurnOrder.NATURAL)
    except ValueError as exc:
        raise ValueError(f"group settings: {exc}") from None
    try:
        heat = HeatConfig(
            half_life_s=_number(data, "half_life_s", HeatConfig.half_life_s),
            threshold=_number(data, "threshold", HeatConfig.threshold),
        )
    except ValueError as exc:
        raise ValueError(f"group settings: {exc}") from None
    profile = data.get("prepass_profile")
    return GroupSettings(
        policy=PolicySettings(default=policy, overrides=overrides),
        order=order,
        heat=heat,
        prepass_profile=(
            LLMProfile.from_dict(dict(profile))
            if isinstance(profile, Mapping)
            else LLMProfile(temperature=0.0, max_tokens=120)
        ),
        prepass_threshold=_number(data, "prepass_threshold", 0.6),
        history_window=int(_number(data, "history_window", 5, minimum=1)),
        turn_cap=int(_number(data, "turn_cap", DEFAULT_TURN_CAP, minimum=1)),
    )


def _number(data: Mapping[str, Any], key: str, default: float, *, minimum: float = 0.0) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"group settings: {key} must be a number, not {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"group settings: {key} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number < minimum:
        raise ValueError(f"group settings: {key} must be a finite number ≥ {minimum:g}")
    return number


def group_settings_to_dict(settings: GroupSettings) -> dict[str, Any]:
    return {
        "policy": settings.policy.default.value,
        "overrides": {k: v.value for k, v in settings.policy.overrides.items()},
        "order": settings.order.value,
        "half_life_s": settings.heat.half_life_s,
        "threshold": settings.heat.threshold,
        "prepass_profile": settings.prepass_profile.to_dict(),
        "prepass_threshold": settings.prepass_threshold,
        "history_window": settings.history_window,
        "turn_cap": settings.turn_cap,
    }
