"""Conversation heat: whether, and in which order, characters in a group chat speak.

Pure core (no Django): group-chat messages and mention parsing, four reply policies
(heuristic heat, LLM pre-pass, null action, async ratings), turn order, and the turn cap.
Every decision is a `Decision` value with a readable reason and its numbers.
"""

from __future__ import annotations

from personaweb.personas.heat.chat import (
    USER,
    GroupMessage,
    Member,
    detect_link,
    detect_media,
    exchanges_with,
    since_last_user_message,
    turns_since_user,
)
from personaweb.personas.heat.clock import Clock, ManualClock, monotonic_clock
from personaweb.personas.heat.decision import Decision, PolicySettings, ReplyPolicy, rank_speakers
from personaweb.personas.heat.heuristic import (
    Boosts,
    Fatigue,
    HeatBoard,
    HeatConfig,
    HeatState,
    after_speaking,
    compute_boosts,
    decayed,
    hear,
    heat_at,
    heuristic_fatigue,
)
from personaweb.personas.heat.mentions import (
    addresses_group,
    is_group_question,
    parse_mentions,
)
from personaweb.personas.heat.null_action import (
    PASS_MARKER,
    interpret_reply,
    is_pass,
    pass_instruction,
)
from personaweb.personas.heat.prepass import (
    PREPASS_SCHEMA,
    PrepassVerdict,
    build_prepass_messages,
    decide_from_prepass,
    fatigue_penalty,
    parse_prepass,
    run_prepass,
)
from personaweb.personas.heat.rating import (
    RATING_SCHEMA,
    HeatRating,
    RatingResult,
    apply_rating,
    build_rating_messages,
    parse_rating,
    run_rating,
)
from personaweb.personas.heat.turns import (
    DEFAULT_TURN_CAP,
    TurnGuard,
    TurnOrder,
    natural_draft,
    speaking_order,
)

__all__ = [
    "DEFAULT_TURN_CAP",
    "PASS_MARKER",
    "PREPASS_SCHEMA",
    "RATING_SCHEMA",
    "USER",
    "Boosts",
    "Clock",
    "Decision",
    "Fatigue",
    "GroupMessage",
    "HeatBoard",
    "HeatConfig",
    "HeatRating",
    "HeatState",
    "ManualClock",
    "Member",
    "PolicySettings",
    "PrepassVerdict",
    "RatingResult",
    "ReplyPolicy",
    "TurnGuard",
    "TurnOrder",
    "addresses_group",
    "after_speaking",
    "apply_rating",
    "build_prepass_messages",
    "build_rating_messages",
    "compute_boosts",
    "decayed",
    "decide_from_prepass",
    "detect_link",
    "detect_media",
    "exchanges_with",
    "fatigue_penalty",
    "hear",
    "heat_at",
    "heuristic_fatigue",
    "interpret_reply",
    "is_group_question",
    "is_pass",
    "monotonic_clock",
    "natural_draft",
    "parse_mentions",
    "parse_prepass",
    "parse_rating",
    "pass_instruction",
    "rank_speakers",
    "run_prepass",
    "run_rating",
    "since_last_user_message",
    "speaking_order",
    "turns_since_user",
]
