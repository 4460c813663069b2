"""The two demo hierarchies: character dialogue and code writing.

Prompts are written for this project. Each builder returns a fresh persona tree; LLM profiles
can be overridden per persona path afterwards with `with_profiles`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from personaweb.characters.sheet import CharacterSheet
from personaweb.llm.types import LLMProfile
from personaweb.personas.delegating import DelegatingPersona, LoopPersona, Move, Plan
from personaweb.personas.dialogue import (
    STRATEGIES,
    CharacterLike,
    chat_character,
    dialogue_hierarchy,
)
from personaweb.personas.persona import BasicPersona, ResponseDrivenPersona, apply_profiles
from personaweb.personas.tree import Action


def code_hierarchy(
    *,
    profile: LLMProfile | None = None,
    profiles: Mapping[str, LLMProfile] | None = None,
) -> ResponseDrivenPersona:
    """A lead over a planner, a coder and a reviewer. The coder is itself a coordinator (a code
    managed loop of an implementer and a tester), which makes three levels."""
    base = profile or LLMProfile(max_tokens=512)
    planner = BasicPersona(
        "planner",
        system_prompt=(
            "You plan small programming tasks. Given a request, list the steps to implement it "
            "as a short numbered list. No code."
        ),
        description="Turns a request into a short numbered plan. Send it the request.",
        profile=base,
    )
    implementer = BasicPersona(
        "implementer",
        system_prompt=(
            "You write Python. Given a task (and maybe a tester's complaints), answer with one "
            "complete Python code block and nothing else."
        ),
        description="Writes the code.",
        profile=base,
    )
    tester = BasicPersona(
        "tester",
        system_prompt=(
            "You check Python code against its task. If it does the task correctly, answer "
            "with the single word APPROVED. Otherwise list the problems briefly."
        ),
        description="Checks the code; answers APPROVED or lists problems.",
        profile=replace(base, temperature=0.0, max_tokens=256),
        stateless=True,
    )
    coder = LoopPersona(
        "coder",
        worker=implementer,
        checker=tester,
        max_rounds=2,
        description=(
            "Writes and tests code for one plan; answers with the final code. "
            "Send it the task together with the plan."
        ),
    )
    reviewer = BasicPersona(
        "reviewer",
        system_prompt=(
            "You review code for a request. Point out bugs and risks in at most five bullets, "
            "then say whether it is ready to ship."
        ),
        description="Reviews finished code. Send it the request and the code.",
        profile=base,
        stateless=True,
    )
    lead = DelegatingPersona(
        "lead",
        instructions=(
            "You lead a small coding team. For a request: ask the planner for a plan, give the "
            "coder the request and the plan, send the reviewer the request and the code, then "
            "reply to your caller with the code and the review's verdict."
        ),
        children=[planner, coder, reviewer],
        description="Leads the coding team.",
        profile=replace(base, temperature=0.2, max_tokens=600),
        display_name="Lead",
        plan=CODE_PLAN,
    )
    return apply_profiles(lead, profiles or {})


CODE_PLAN = Plan(
    steps=(
        (Move(Action.DELEGATE, "planner"),),
        (Move(Action.DELEGATE, "coder"),),
        (Move(Action.DELEGATE, "reviewer"),),
        # A real choice: ship it, or send the review back to the coder.
        (Move(Action.REPLY), Move(Action.DELEGATE, "coder")),
    )
)
"""The lead's expected moves; the messages are the model's own."""

HIERARCHIES = ("dialogue", "code")
__all__ = ["HIERARCHIES", "STRATEGIES", "build_hierarchy", "code_hierarchy", "dialogue_hierarchy"]


def build_hierarchy(
    kind: str,
    *,
    character: CharacterLike | CharacterSheet | Mapping[str, Any] | None = None,
    strategy: str = "nested",
    profile: LLMProfile | None = None,
    profiles: Mapping[str, LLMProfile] | None = None,
) -> ResponseDrivenPersona:
    """A fresh persona tree by name (and, for dialogue, by strategy). A sheet or a sheet's dict
    is met through `chat_character` with the default user; pass its result to name the person."""
    if kind == "dialogue":
        if character is None:
            raise ValueError("the dialogue hierarchy needs a character")
        if isinstance(character, CharacterSheet | Mapping):
            character = chat_character(character)
        return dialogue_hierarchy(character, strategy=strategy, profile=profile, profiles=profiles)
    if kind == "code":
        return code_hierarchy(profile=profile, profiles=profiles)
    raise ValueError(f"unknown hierarchy {kind!r}; choose one of {', '.join(HIERARCHIES)}")
