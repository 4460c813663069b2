"""Heuristic heat: whether a character speaks, from counting and timing messages, no LLM.

Every message a character hears warms it up; names, questions to the room, long messages,
media and links warm it more. Heat cools exponentially with time, and answering the same
speaker again and again (or talking a lot since the user last spoke) tires the character,
so that conversations among characters die down by themselves. A character speaks when its
heat reaches its threshold, and speaking cools it down.

The functions here are pure: state in, state and a Decision out. `HeatBoard` strings them
together for a whole chat, with the clock injected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from personaweb.personas.heat.chat import (
    USER,
    GroupMessage,
    Member,
    exchanges_with,
    member_by_slug,
    turns_since_user,
)
from personaweb.personas.heat.clock import Clock, monotonic_clock
from personaweb.personas.heat.decision import Decision, ReplyPolicy, fmt
from personaweb.personas.heat.mentions import is_group_question, parse_mentions


@dataclass(frozen=True)
class HeatConfig:
    """The knobs of heuristic heat for one character (or a whole session)."""

    half_life_s: float = 30.0
    """Seconds after which untouched heat has halved."""
    threshold: float = 0.6
    """The character speaks when its heat reaches this."""
    message_bump: float = 0.2
    """Heat every heard message adds, whoever wrote it."""
    from_user_boost: float = 0.2
    """Extra heat when the human wrote it: characters attend to the user more than to each other."""
    mention_boost: float = 0.6
    """Extra heat when the message names or @mentions this character."""
    group_question_boost: float = 0.35
    """Extra heat for a question to the whole group."""
    elsewhere_penalty: float = 0.15
    """Heat taken off when the message names other members but not this one."""
    length_boost_per_100_chars: float = 0.05
    """Extra heat per 100 characters of message: long messages invite an answer."""
    max_length_boost: float = 0.15
    """Ceiling of the length boost."""
    media_boost: float = 0.1
    """Extra heat for an image, video or audio."""
    link_boost: float = 0.1
    """Extra heat for a web link."""
    exchange_fatigue: float = 0.1
    """Fatigue per time this character answered the same speaker in the fatigue window."""
    turn_fatigue: float = 0.15
    """Fatigue per message this character wrote since the user's last message."""
    fatigue_window: int = 6
    """How many recent messages the back-and-forth count looks at."""
    retain_after_speaking: float = 0.25
    """Share of its heat a character keeps once it has spoken."""
    max_heat: float = 1.5
    """Heat never climbs above this, so a burst of mentions cannot keep a character hot forever."""
    interest_weight: float = 0.3
    """Async ratings: heat added per unit of rated interest."""
    boredom_weight: float = 0.4
    """Async ratings: heat removed per unit of rated boredom."""
    max_wait_s: float = 120.0
    """Async ratings: the longest wait a rating may impose (LLM output is untrusted)."""

    def __post_init__(self) -> None:
        if self.half_life_s <= 0:
            raise ValueError(f"half_life_s must be positive: got {self.half_life_s}")
        if not 0.0 <= self.retain_after_speaking <= 1.0:
            raise ValueError("retain_after_speaking must be within 0..1")
        if self.fatigue_window < 2:
            raise ValueError("fatigue_window must cover at least two messages")
        negative = [f.name for f in fields(self) if getattr(self, f.name) < 0]
        if negative:
            raise ValueError(f"heat settings must not be negative: {', '.join(negative)}")


@dataclass(frozen=True)
class HeatState:
    """One character's heat, as of a moment."""

    heat: float = 0.0
    """Heat at time `at`; it has decayed since."""
    at: float = 0.0
    """When `heat` was last set, in seconds on the session clock."""
    quiet_until: float = 0.0
    """An async rating asked the character to hold back until then, unless mentioned."""


@dataclass(frozen=True)
class Boosts:
    """What one message adds to a character's heat, by cause."""

    message: float = 0.0
    """Any heard message."""
    from_user: float = 0.0
    """The human wrote it."""
    mention: float = 0.0
    """It names this character."""
    group_question: float = 0.0
    """It asks the whole group."""
    length: float = 0.0
    """It is long."""
    media: float = 0.0
    """It carries media."""
    link: float = 0.0
    """It carries a link."""
    elsewhere: float = 0.0
    """It names others but not this character (zero or negative)."""

    @property
    def total(self) -> float:
        return math.fsum(getattr(self, f.name) for f in fields(self))

    def as_numbers(self) -> dict[str, float]:
        """`boost_<cause>` for every cause, and `boost` for the sum."""
        numbers = {f"boost_{f.name}": getattr(self, f.name) for f in fields(self)}
        numbers["boost"] = self.total
        return numbers


@dataclass(frozen=True)
class Fatigue:
    """How tired a character is of the current conversation."""

    exchanges: int = 0
    """Times it answered the current speaker in the fatigue window."""
    own_turns: int = 0
    """Messages it wrote since the user's last message."""
    value: float = 0.0
    """The heat this much fatigue takes off a message's boosts."""


def decayed(heat: float, elapsed_s: float, half_life_s: float) -> float:
    """Heat after `elapsed_s` seconds of exponential decay with the given half-life."""
    if elapsed_s <= 0:
        return heat
    return heat * 0.5 ** (elapsed_s / half_life_s)


def heat_at(state: HeatState, now: float, config: HeatConfig) -> float:
    """A character's heat at `now`."""
    return decayed(state.heat, now - state.at, config.half_life_s)


def compute_boosts(
    message: GroupMessage,
    character: str,
    members: Sequence[Member],
    config: HeatConfig,
    mentions: set[str] | None = None,
) -> Boosts:
    """What hearing `message` adds to `character`'s heat, before fatigue."""
    if mentions is None:
        mentions = parse_mentions(message.text, members)
    mentioned = character in mentions
    group_question = is_group_question(message.text, members)
    length = min(
        config.max_length_boost, len(message.text.strip()) / 100 * config.length_boost_per_100_chars
    )
    return Boosts(
        message=config.message_bump,
        from_user=config.from_user_boost if message.from_user else 0.0,
        mention=config.mention_boost if mentioned else 0.0,
        group_question=config.group_question_boost if group_question else 0.0,
        length=length,
        media=config.media_boost if message.has_media else 0.0,
        link=config.link_boost if message.has_link else 0.0,
        elsewhere=-config.elsewhere_penalty if mentions and not mentioned else 0.0,
    )


def heuristic_fatigue(
    history: Sequence[GroupMessage], character: str, config: HeatConfig
) -> Fatigue:
    """Fatigue of `character` on hearing the last message of `history`.

    Two things tire it: answering the same speaker over and over (back-and-forth), and talking
    a lot since the user last spoke. The second is what ends a round of characters answering
    each other in turn, where no single pair goes back and forth much.
    """
    if not history:
        return Fatigue()
    speaker = history[-1].speaker
    exchanges = exchanges_with(history, character, speaker, config.fatigue_window)
    own_turns = turns_since_user(history, character)
    value = exchanges * config.exchange_fatigue + own_turns * config.turn_fatigue
    return Fatigue(exchanges=exchanges, own_turns=own_turns, value=value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def hear(
    state: HeatState,
    history: Sequence[GroupMessage],
    character: str,
    members: Sequence[Member],
    config: HeatConfig | None = None,
    *,
    now: float | None = None,
    policy: ReplyPolicy = ReplyPolicy.HEURISTIC,
) -> tuple[HeatState, Decision]:
    """`character` hears the last message of `history`: its new heat, and whether it speaks.

    `now` defaults to the message's timestamp. Fatigue is taken off the boosts, never off the
    heat already there, so a tired character still cools down at the normal rate.
    """
    if not history:
        raise ValueError("hear() needs a history ending with the message heard")
    message = history[-1]
    if message.speaker == character:
        raise ValueError(f"{character} does not hear its own message; use after_speaking()")
    config = config or HeatConfig()
    now = message.timestamp if now is None else now
    mentions = parse_mentions(message.text, members)
    mentioned = character in mentions
    boosts = compute_boosts(message, character, members, config, mentions)
    fatigue = heuristic_fatigue(history, character, config)
    before = heat_at(state, now, config)
    gain = max(0.0, boosts.total - fatigue.value)
    heat = min(config.max_heat, before + gain)
    new_state = replace(state, heat=heat, at=now)

    comparison = (
        f"heat {fmt(heat)} ≥ {fmt(config.threshold)}"
        if heat >= config.threshold
        else f"heat {fmt(heat)} below {fmt(config.threshold)}"
    )
    if mentioned:
        reason = f"mentioned by @{message.speaker}: {comparison}"
    elif boosts.group_question:
        reason = f"question to the group: {comparison}"
    else:
        reason = f"{comparison}, not mentioned"
    if fatigue.value > 0:
        reason += (
            f", fatigue {fmt(fatigue.value)} ({_count(fatigue.exchanges, 'exchange')} with"
            f" @{message.speaker}, {_count(fatigue.own_turns, 'own turn')} since the user)"
        )
    speak = heat >= config.threshold
    wait = max(0.0, state.quiet_until - now)
    if speak and wait > 0 and not mentioned:
        speak = False
        reason = f"holding back {wait:.0f} s more after a rating: {reason}"

    numbers: dict[str, float] = {
        "heat": heat,
        "heat_before": before,
        "threshold": config.threshold,
        **boosts.as_numbers(),
        "fatigue": fatigue.value,
        "exchanges": float(fatigue.exchanges),
        "own_turns": float(fatigue.own_turns),
        "gain": gain,
        "mentioned": 1.0 if mentioned else 0.0,
        "wait_s": wait,
    }
    return new_state, Decision(character, speak, policy, reason, numbers)


def after_speaking(state: HeatState, now: float, config: HeatConfig | None = None) -> HeatState:
    """The character has just spoken: it keeps only part of its heat, and any wait is over."""
    config = config or HeatConfig()
    return HeatState(heat=heat_at(state, now, config) * config.retain_after_speaking, at=now)


@dataclass
class HeatBoard:
    """The heat of every character in one group chat, with the clock injected.

    Feed it every message with `hear()`; it returns each other character's Decision. Its
    state is a fold over the chat history, so `HeatBoard.replay()` rebuilds it from the path.
    """

    members: Sequence[Member]
    """The characters in the chat (the human is implied)."""
    config: HeatConfig = field(default_factory=HeatConfig)
    """The session's settings."""
    overrides: Mapping[str, HeatConfig] = field(default_factory=dict)
    """Character slug -> settings that replace the session's for that character."""
    clock: Clock = monotonic_clock
    """Where `now` comes from when a call does not pass it."""
    policy: ReplyPolicy = ReplyPolicy.HEURISTIC
    """The policy named on the decisions (ASYNC_RATING when ratings feed this board)."""
    states: dict[str, HeatState] = field(default_factory=dict)
    """Character slug -> its heat state."""
    history: list[GroupMessage] = field(default_factory=list)
    """Every message heard so far."""

    def __post_init__(self) -> None:
        for member in self.members:
            self.states.setdefault(member.slug, HeatState(at=self.clock()))

    def config_for(self, slug: str) -> HeatConfig:
        """The settings that apply to one character."""
        return self.overrides.get(slug, self.config)

    def heat(self, slug: str, now: float | None = None) -> float:
        """A character's heat now."""
        now = self.clock() if now is None else now
        return heat_at(self.states[slug], now, self.config_for(slug))

    def hear(self, message: GroupMessage, now: float | None = None) -> dict[str, Decision]:
        """Everyone hears `message`: the speaker cools down, every other character decides."""
        now = self.clock() if now is None else now
        self.history.append(message)
        decisions: dict[str, Decision] = {}
        for member in self.members:
            slug = member.slug
            if slug == message.speaker:
                self.states[slug] = after_speaking(self.states[slug], now, self.config_for(slug))
                continue
            self.states[slug], decisions[slug] = hear(
                self.states[slug],
                self.history,
                slug,
                self.members,
                self.config_for(slug),
                now=now,
                policy=self.policy,
            )
        return decisions

    def say(self, speaker: str, text: str) -> tuple[GroupMessage, dict[str, Decision]]:
        """Convenience: `speaker` says `text` now; returns the message and the decisions."""
        if speaker != USER:
            member_by_slug(self.members, speaker)  # fail early on a typo
        message = GroupMessage(speaker=speaker, text=text, timestamp=self.clock())
        return message, self.hear(message, now=message.timestamp)

    def set_state(self, slug: str, state: HeatState) -> None:
        """Replace one character's state (e.g. after an async rating was applied)."""
        self.states[slug] = state

    @classmethod
    def replay(
        cls,
        members: Sequence[Member],
        history: Iterable[GroupMessage],
        config: HeatConfig | None = None,
        overrides: Mapping[str, HeatConfig] | None = None,
        clock: Clock = monotonic_clock,
    ) -> HeatBoard:
        """A board rebuilt from a chat history, each message heard at its own timestamp."""
        messages = list(history)
        start = messages[0].timestamp if messages else clock()
        board = cls(
            members=members,
            config=config or HeatConfig(),
            overrides=dict(overrides or {}),
            clock=clock,
            states={m.slug: HeatState(at=start) for m in members},
        )
        for message in messages:
            board.hear(message, now=message.timestamp)
        return board
