"""The two demo hierarchies: character dialogue and code writing.

Prompts are written for this project. Each builder returns a fresh persona tree; LLM profiles
can be overridden per persona path afterwards with `with_profiles`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from personaweb.llm.types import LLMProfile
from personaweb.personas.delegating import DelegatingPersona, LoopPersona
from personaweb.personas.persona import BasicPersona, ResponseDrivenPersona


class CharacterLike(Protocol):
    """What the dialogue personas need of a character sheet."""

    name: str
    description: str
    personality: str
    mood: str
    goals: list[str]
    sample_lines: list[str]


@dataclass
class SimpleCharacter:
    """A minimal character, for the console and tests when no sheet is at hand."""

    name: str
    """Display name."""
    description: str = ""
    """Who they are."""
    personality: str = ""
    """How they behave."""
    mood: str = ""
    """How they feel right now."""
    goals: list[str] = field(default_factory=list)
    """What they want."""
    sample_lines: list[str] = field(default_factory=list)
    """Lines in their voice."""


def character_from_mapping(data: Mapping[str, Any]) -> SimpleCharacter:
    return SimpleCharacter(
        name=str(data.get("name") or "Character"),
        description=str(data.get("description") or ""),
        personality=str(data.get("personality") or ""),
        mood=str(data.get("mood") or ""),
        goals=[str(g) for g in data.get("goals") or []],
        sample_lines=[str(s) for s in data.get("sample_lines") or []],
    )


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items) or "- (none given)"


def responder_prompt(character: CharacterLike) -> str:
    return (
        f"You are {character.name}, speaking in a conversation. Stay in character at all times.\n"
        f"Who you are: {character.description}\n"
        f"Personality: {character.personality}\n"
        f"Your mood right now: {character.mood}\n"
        f"What you want:\n{_bullets(character.goals)}\n\n"
        "Answer the latest message with one short spoken line (one to three sentences) that "
        "fits your mood and serves your goals. Write only the words you say aloud."
    )


def rewriter_prompt(character: CharacterLike, *, max_samples: int = 25) -> str:
    samples = character.sample_lines[:max_samples]
    return (
        f"You rewrite single lines of dialogue so they sound exactly like {character.name}.\n"
        f"Here is how {character.name} talks:\n{_bullets(samples)}\n\n"
        "You will get one line. Rewrite it in that voice: same meaning, their vocabulary, "
        "rhythm, dialect and attitude. Keep it about as long as the original. Answer with the "
        "rewritten line only."
    )


def dialogue_hierarchy(
    character: CharacterLike,
    *,
    profile: LLMProfile | None = None,
    profiles: Mapping[str, LLMProfile] | None = None,
) -> ResponseDrivenPersona:
    """An LLM orchestrator over an in-character responder (stateful: mood, goals, history) and a
    stateless style rewriter that knows only the character's sample lines."""
    base = profile or LLMProfile()
    responder = BasicPersona(
        "responder",
        system_prompt=responder_prompt(character),
        description=(
            f"Speaks as {character.name}, in character, with their mood, goals and the "
            "conversation so far. Send it the latest message to answer."
        ),
        profile=base,
    )
    rewriter = BasicPersona(
        "style_rewriter",
        system_prompt=rewriter_prompt(character),
        description=(
            f"Rewrites one line in {character.name}'s own voice. Send it the line to rewrite; "
            "it remembers nothing."
        ),
        profile=base,
        stateless=True,
    )
    root = DelegatingPersona(
        "orchestrator",
        instructions=(
            f"You produce {character.name}'s next line in a conversation. First delegate the "
            "incoming message to the responder. Then delegate the responder's line to the "
            "style_rewriter. Then reply to your caller with the rewritten line, unchanged."
        ),
        children=[responder, rewriter],
        description=f"Produces {character.name}'s next line.",
        profile=LLMProfile(
            model=base.model, temperature=0.2, max_tokens=400, base_url=base.base_url
        ),
        display_name=character.name,
    )
    if profiles:
        root.with_profiles(dict(profiles))
    return root


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
        profile=LLMProfile(model=base.model, temperature=0.0, max_tokens=256),
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
        profile=LLMProfile(model=base.model, temperature=0.2, max_tokens=600),
        display_name="Lead",
    )
    if profiles:
        lead.with_profiles(dict(profiles))
    return lead


HIERARCHIES = ("dialogue", "code")


def build_hierarchy(
    kind: str,
    *,
    character: CharacterLike | Mapping[str, Any] | None = None,
    profile: LLMProfile | None = None,
    profiles: Mapping[str, LLMProfile] | None = None,
) -> ResponseDrivenPersona:
    """A fresh persona tree by name."""
    if kind == "dialogue":
        if character is None:
            raise ValueError("the dialogue hierarchy needs a character")
        if isinstance(character, Mapping):
            character = character_from_mapping(character)
        return dialogue_hierarchy(character, profile=profile, profiles=profiles)
    if kind == "code":
        return code_hierarchy(profile=profile, profiles=profiles)
    raise ValueError(f"unknown hierarchy {kind!r}; choose one of {', '.join(HIERARCHIES)}")
