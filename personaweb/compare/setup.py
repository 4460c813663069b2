"""Creating a comparison: one autonomous dialogue session per contender.

Pure ORM work, no LLM calls; `running.start` then plays the script in every session.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from personaweb.compare.models import Comparison, Contender
from personaweb.compare.samples import MAX_SAMPLES
from personaweb.llm.types import LLMProfile
from personaweb.personas import dialogue_hierarchy
from personaweb.personas.dialogue import chat_character
from personaweb.web.models import Character, ChatSession, Hierarchy, Mode

MAX_CONTENDERS = 4
MAX_LINES = 20
MAX_LINE_CHARS = 2000

# Written for PersonaWeb: an introduction, ambition, a weighty topic, an insult, small talk.
DEFAULT_SCRIPT = (
    "Evening. I'm Priya, I only moved here last week. Who might you be?",
    "Tell me, what are you after in life? What would you give anything to have?",
    "I can't stop thinking about the floods up north. Are we ruining the planet for good?",
    "Honestly, you sound like a pompous windbag.",
    "Anyway. Lovely rain today, isn't it? Good for the gardens.",
)


@dataclass(frozen=True)
class ContenderSpec:
    """What a person chose for one column."""

    strategy: str
    """single, nested or linear."""
    model: str = ""
    """Model name; empty means the endpoint's default."""
    temperature: float = 0.7
    """Sampling temperature for every persona of the strategy."""

    def label(self) -> str:
        return f"{self.strategy} · {self.model or 'default model'} · t={self.temperature:g}"


def persona_profiles(character_data: dict[str, Any], spec: ContenderSpec) -> dict[str, dict]:
    """The contender's model and temperature for every LLM-calling persona of its strategy,
    keyed by persona path (the session stores profiles that way). Each persona keeps its own
    token limit: the orchestrator's JSON and the rewriter's line need different room."""
    root = dialogue_hierarchy(chat_character(character_data), strategy=spec.strategy)
    profiles = {}
    for persona in root.walk():
        if persona.role_kind == "code":
            continue  # code-managed (the linear pipeline): it calls no model
        profile = LLMProfile(
            model=spec.model,
            temperature=spec.temperature,
            max_tokens=persona.profile.max_tokens,
            timeout_s=persona.profile.timeout_s,
        )
        profiles[persona.path] = profile.to_dict()
    return profiles


def create_comparison(
    owner: User,
    character: Character,
    script: Sequence[str],
    specs: Sequence[ContenderSpec],
    *,
    blind: bool = False,
    title: str = "",
    samples: int = 1,
) -> Comparison:
    """The comparison, its contenders and their sessions, in one transaction."""
    if not 1 <= len(script) <= MAX_LINES:
        raise ValueError(f"a script has 1 to {MAX_LINES} lines")
    if not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"a comparison takes 1 to {MAX_SAMPLES} samples per line")
    if not 2 <= len(specs) <= MAX_CONTENDERS:
        raise ValueError(f"a comparison has 2 to {MAX_CONTENDERS} contenders")
    positions = list(range(len(specs)))
    if blind:
        # Otherwise column A would always be the first row of the form, which a person
        # remembers: the blind order is random.
        secrets.SystemRandom().shuffle(positions)
    with transaction.atomic():
        comparison = Comparison.objects.create(
            owner=owner,
            title=title or f"{character.name} · {len(specs)} contenders",
            character=character,
            script=list(script),
            samples=samples,
            blind=blind,
        )
        for spec, position in zip(specs, positions, strict=True):
            session = ChatSession.objects.create(
                owner=owner,
                title=f"{comparison.title} · {spec.label()}",
                character=character,
                hierarchy=Hierarchy.DIALOGUE,
                strategy=spec.strategy,
                mode=Mode.AUTONOMOUS,
                profiles=persona_profiles(character.data, spec),
            )
            Contender.objects.create(
                comparison=comparison,
                position=position,
                label=spec.label(),
                strategy=spec.strategy,
                model=spec.model,
                temperature=spec.temperature,
                session=session,
            )
    return comparison


def specs_of(comparison: Comparison) -> list[ContenderSpec]:
    """The contenders' settings, in column order (for re-runs)."""
    return [
        ContenderSpec(c.strategy, c.model, c.temperature)
        for c in comparison.contenders.order_by("position")
    ]
