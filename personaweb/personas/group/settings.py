"""How a group chat decides who speaks: its settings, and their stored JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from personaweb.llm.types import LLMProfile
from personaweb.personas.heat.decision import PolicySettings, ReplyPolicy
from personaweb.personas.heat.heuristic import HeatConfig
from personaweb.personas.heat.turns import DEFAULT_TURN_CAP, TurnOrder


def _prepass_profile() -> LLMProfile:
    return LLMProfile(temperature=0.0, max_tokens=120)


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
    prepass_profile: LLMProfile = field(default_factory=_prepass_profile)
    """The cheap model profile of the LLM pre-pass and the async ratings."""
    prepass_threshold: float = 0.6
    """Confidence minus fatigue penalty needed to speak, in the pre-pass."""
    history_window: int = 5
    """Recent messages the pre-pass and ratings see."""
    turn_cap: int = DEFAULT_TURN_CAP
    """At most this many character messages follow one user message."""


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
            else _prepass_profile()
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
