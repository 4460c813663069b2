"""Async heat updates: after each message, a background LLM call rates the character's mood.

The rating (interest, boredom, how long to wait) nudges the heuristic heat. It runs beside
the conversation, never in front of a reply: the caller schedules `run_rating()` as its own
task and applies the result whenever it lands, so a slow or failed rating costs no latency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personaweb.llm import calls
from personaweb.llm.types import CallRecord, ChatMessage, ChatModel, LLMProfile
from personaweb.personas.heat.chat import GroupMessage, Member, display_name
from personaweb.personas.heat.heuristic import HeatConfig, HeatState, heat_at

RATING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "interest": {"type": "number", "minimum": 0, "maximum": 1},
        "boredom": {"type": "number", "minimum": 0, "maximum": 1},
        "wait_seconds": {"type": "number", "minimum": 0},
    },
    "required": ["interest", "boredom", "wait_seconds"],
    "additionalProperties": False,
}
"""The JSON schema a heat rating must satisfy."""
RATING_SCHEMA_NAME = "heat_rating"
DEFAULT_HISTORY_LENGTH = 5
"""How many recent messages the rating prompt quotes."""


@dataclass(frozen=True)
class HeatRating:
    """How a character feels about the conversation right now, as rated by an LLM."""

    interest: float
    """0..1: how much the character wants to take part."""
    boredom: float
    """0..1: how tired of the topic or the exchange it is."""
    wait_seconds: float
    """How long it would hold back before speaking again, unless addressed."""


def _number(value: Mapping[str, Any], key: str, upper: float | None) -> float:
    number = value.get(key)
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError(f"{key} must be a number")
    if not math.isfinite(number) or number < 0 or (upper is not None and number > upper):
        bound = f"0..{upper:g}" if upper is not None else "≥ 0"
        raise ValueError(f"{key} must be {bound}, got {number}")
    return float(number)


def parse_rating(value: Any) -> HeatRating:
    """Check a parsed rating; ValueError says what is wrong (LLM output is untrusted)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return HeatRating(
        interest=_number(value, "interest", 1.0),
        boredom=_number(value, "boredom", 1.0),
        wait_seconds=_number(value, "wait_seconds", None),
    )


def apply_rating(
    state: HeatState, rating: HeatRating, now: float, config: HeatConfig | None = None
) -> HeatState:
    """The heat state after a rating lands at `now`.

    Interest warms, boredom cools (by the config's weights), and the wait replaces any earlier
    one: the latest rating is the character's current mood. The wait is capped, because a
    model that answers "wait 1e9 seconds" must not silence a character for good.
    """
    config = config or HeatConfig()
    delta = config.interest_weight * rating.interest - config.boredom_weight * rating.boredom
    heat = min(config.max_heat, max(0.0, heat_at(state, now, config) + delta))
    wait = min(rating.wait_seconds, config.max_wait_s)
    return HeatState(heat=heat, at=now, quiet_until=now + wait)


def build_rating_messages(
    character: Member,
    history: Sequence[GroupMessage],
    members: Sequence[Member],
    *,
    history_length: int = DEFAULT_HISTORY_LENGTH,
) -> list[ChatMessage]:
    """The rating prompt for `character` after the last message of `history`. Pure."""
    me = character.name
    recent = history[-history_length:] if history_length > 0 else []
    transcript = "\n".join(
        f"- {display_name(members, m.speaker)}: {' '.join(m.text.split())}" for m in recent
    )
    system = (
        f"You track the mood of {me}, a character in a group chat, between messages. "
        f"You never speak for {me}. Rate {me}'s state of mind right now as one JSON object:\n"
        f'- "interest": 0 to 1, how much {me} wants to take part in what is being discussed;\n'
        f'- "boredom": 0 to 1, how tired {me} is of this topic or of the same back-and-forth;\n'
        f'- "wait_seconds": how many seconds {me} would let pass before speaking again '
        "unless someone addresses them directly (0 means ready now).\n"
        f"Base the rating only on {me}'s persona and the messages shown."
    )
    persona = character.persona.strip() or "(no description)"
    user = (
        f"Character: {me} (@{character.slug})\n"
        f"Persona: {persona}\n\n"
        f"Recent messages, oldest first:\n{transcript or '- (no messages yet)'}\n\n"
        f"Rate {me} now."
    )
    return [ChatMessage("system", system), ChatMessage("user", user)]


@dataclass(frozen=True)
class RatingResult:
    """What a background rating call produced."""

    rating: HeatRating | None
    """The checked rating, or None when the call failed or its answer was unusable."""
    record: CallRecord | None
    """The call as a person should see it, when there was a response."""
    error: str = ""
    """Why there is no rating."""


async def run_rating(
    model: ChatModel,
    profile: LLMProfile,
    character: Member,
    history: Sequence[GroupMessage],
    members: Sequence[Member],
    *,
    history_length: int = DEFAULT_HISTORY_LENGTH,
    retry: calls.RetryPolicy = calls.DEFAULT_RETRY,
) -> RatingResult:
    """Ask the model for a rating; never raises an LLMError (a lost rating changes nothing)."""
    result = await calls.structured(
        model,
        build_rating_messages(character, history, members, history_length=history_length),
        profile,
        RATING_SCHEMA,
        check=_problems,
        max_attempts=1,
        policy=retry,
        schema_name=RATING_SCHEMA_NAME,
        what="rating",
    )
    if isinstance(result, calls.Failure):
        what = "answer unusable" if result.kind == "invalid" else "call failed"
        return RatingResult(None, result.record, f"rating {what}: {result.detail}")
    return RatingResult(parse_rating(result.value), result.record)


def _problems(value: Any) -> list[str]:
    try:
        parse_rating(value)
    except ValueError as exc:
        return [str(exc)]
    return []
