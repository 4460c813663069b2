"""Character dialogue: three strategies for making a character speak in its own voice.

- single: one prompt holding the sheet, mood, goals and sample lines.
- nested: an LLM orchestrator over an in-character responder (stateful) and a stateless style
  rewriter that knows only the sample lines.
- linear: the same two children run by code (responder, then rewriter), then a goal-alignment
  check over the character's last five lines; when it finds drift, the next turn's responder
  gets a steering hint. The scores are kept on the nodes.

What a character's card adds to the prompts that speak as it (scenario, the card's own system
prompt, post-history instructions, lorebooks, macros) is card_prompt.py's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from personaweb.characters.lorebook import Lorebook
from personaweb.characters.macros import DEFAULT_USER
from personaweb.characters.reply_form import NARRATED, SPEC, SPOKEN
from personaweb.characters.sheet import CharacterSheet
from personaweb.llm.types import LLMProfile
from personaweb.personas.card_prompt import (
    CharacterLike,
    CharacterNote,
    InCharacterPersona,
    SampleLineRewriter,
    character_fields,
)
from personaweb.personas.card_prompt import responder_prompt as responder_prompt
from personaweb.personas.card_prompt import single_prompt as single_prompt
from personaweb.personas.delegating import INBOUND, CodePersona, DelegatingPersona, Move, Plan
from personaweb.personas.persona import BasicPersona, ResponseDrivenPersona, apply_profiles
from personaweb.personas.proposal import ProposedResponse
from personaweb.personas.state import Event, EventKind
from personaweb.personas.structured import StructuredPersona
from personaweb.personas.tree import Action

STRATEGIES = ("single", "nested", "linear")


def form_profile(form: str) -> LLMProfile:
    """The default profile of the personas that speak as a character of this reply form: its
    room and where a reply ends (characters/reply_form.py)."""
    spec = SPEC[form if form in SPEC else SPOKEN]
    return LLMProfile(max_tokens=spec.max_tokens, stop=spec.stop)


LINE_PROFILE = form_profile(SPOKEN)
"""The default for personas that speak a line: one to three sentences, and a blank line ends a
spoken line (small models ramble on in paragraphs)."""
ALIGNMENT_WINDOW = 5
DRIFT_THRESHOLD = 0.5


@dataclass
class SimpleCharacter:
    """A character as the dialogue personas meet it in one chat (made by `chat_character`;
    tests build small ones directly)."""

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
    scenario: str = ""
    """The situation the chat starts in."""
    system_prompt: str = ""
    """The card's own system prompt (see card_prompt.py); `{{original}}` stands for ours."""
    post_history_instructions: str = ""
    """What the card says after the conversation (see card_prompt.py)."""
    lorebooks: tuple[Lorebook, ...] = ()
    """The card's lorebook and those attached to the character or the session."""
    user: str = DEFAULT_USER
    """Who the character talks to (what the card's `{{user}}` became)."""
    reply_form: str = SPOKEN
    """The shape of its replies: spoken or narrated (characters/reply_form.py)."""
    note: CharacterNote | None = None
    """The card's character note, put into the history at its depth (card_prompt.py, rule 7)."""


def chat_character(
    source: CharacterSheet | Mapping[str, Any],
    *,
    user: str = DEFAULT_USER,
    group: Sequence[str] = (),
    books: Sequence[tuple[str, Any]] = (),
) -> SimpleCharacter:
    """The one way a stored character reaches the core: a sheet (or a sheet's dict, as the
    database keeps it) as one chat meets it, its card's macros replaced for the person `user`
    (and the group's names), its lorebooks read (see card_prompt.character_fields). The web,
    the API, the console and compare_strategies all come through here."""
    data = source.to_dict() if isinstance(source, CharacterSheet) else source
    return SimpleCharacter(**character_fields(data, user=user, group=group, books=books))


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def rewriter_prompt(character: CharacterLike, *, max_samples: int = 25) -> str:
    """The style rewriter's prompt: only the sample lines (rule 6 of card_prompt.py). A
    narrated reply keeps its actions and narration; only what the character says is restyled."""
    name = character.name
    samples = character.sample_lines[:max_samples]
    voice = (
        f"Here is how {name} talks:\n{_bullets(samples)}\n\n"
        if samples
        else f"You have no example of how {name} talks: keep the wording natural for them.\n\n"
    )
    if character.reply_form == NARRATED:
        return (
            f"You rewrite roleplay replies so that {name}'s speech sounds exactly like "
            f"{name}.\n{voice}"
            "You will get one reply. Keep every *action* in asterisks and all the narration as "
            f"it is; rewrite only the words {name} says aloud, in that voice: same meaning, "
            "their vocabulary, rhythm, dialect and attitude. Answer with the whole reply only."
        )
    return (
        f"You rewrite single lines of dialogue so they sound exactly like {name}.\n{voice}"
        "You will get one line. Rewrite it in that voice: same meaning, their vocabulary, "
        "rhythm, dialect and attitude. Keep it about as long as the original. Answer with the "
        "rewritten line only."
    )


ALIGNMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "drifting": {"type": "boolean"},
        "hint": {"type": "string", "maxLength": 400},
    },
    "required": ["score", "drifting", "hint"],
    "additionalProperties": False,
}


def alignment_prompt(character: CharacterLike) -> str:
    goals = (
        f"{character.name}'s goals:\n{_bullets(character.goals)}\n\n"
        if character.goals
        else f"{character.name} states no goals: judge whether the lines keep to the character "
        "and to what the conversation is about.\n\n"
    )
    return (
        f"You judge whether {character.name}'s recent lines pursue their goals.\n{goals}"
        "You get their most recent lines, oldest first. Answer with one JSON object: "
        '{"score": 0 to 1, how well the lines as a whole serve the goals; "drifting": true when '
        "the character has wandered from the goals; "
        '"hint": one sentence telling the character how to steer back (empty if not drifting)}.'
    )


def _responder(
    character: CharacterLike, profile: LLMProfile, can_pass: bool = False
) -> BasicPersona:
    return InCharacterPersona(
        "responder",
        character=character,
        samples=False,
        description=(
            f"Speaks as {character.name}, in character, with their mood, goals and the "
            "conversation so far. Send it the latest message to answer."
        ),
        profile=profile,
        can_pass=can_pass,
    )


def _rewriter(character: CharacterLike, profile: LLMProfile) -> BasicPersona:
    return SampleLineRewriter(
        "style_rewriter",
        system_prompt=rewriter_prompt(character),
        character=character,
        description=(
            f"Rewrites one line in {character.name}'s own voice. Send it the line to rewrite; "
            "it remembers nothing."
        ),
        profile=profile,
    )


def single_strategy(
    character: CharacterLike, profile: LLMProfile, can_pass: bool = False
) -> ResponseDrivenPersona:
    return InCharacterPersona(
        "character",
        character=character,
        samples=True,
        description=f"Speaks as {character.name} from one prompt.",
        profile=profile,
        display_name=character.name,
        can_pass=can_pass,
    )


def nested_strategy(
    character: CharacterLike, profile: LLMProfile, can_pass: bool = False
) -> ResponseDrivenPersona:
    # The same instructions for either form; only the word for what is produced differs.
    narrated = character.reply_form == NARRATED
    line, where = ("reply", "a roleplay") if narrated else ("line", "a conversation")
    instructions = (
        f"You produce {character.name}'s next {line} in {where}. First delegate the "
        f"incoming message to the responder. Then delegate the responder's {line} to the "
        f"style_rewriter. Then reply to your caller with the rewritten {line}, unchanged."
    )
    if can_pass:
        instructions += " If the responder chose not to answer, pass."
    return DelegatingPersona(
        "orchestrator",
        instructions=instructions,
        allow_pass=can_pass,
        plan=NESTED_PLAN_WITH_PASS if can_pass else NESTED_PLAN,
        children=[_responder(character, profile, can_pass), _rewriter(character, profile)],
        description=f"Produces {character.name}'s next line.",
        # Steering, not speaking: cool, room for a whole reply in JSON, no stop at blank lines.
        profile=replace(profile, temperature=0.2, max_tokens=profile.max_tokens + 240, stop=()),
        display_name=character.name,
    )


NESTED_PLAN = Plan(
    steps=(
        (Move(Action.DELEGATE, "responder", relay=INBOUND),),
        (Move(Action.DELEGATE, "style_rewriter", relay="responder"),),
        (Move(Action.REPLY, relay="style_rewriter"),),
    )
)
"""What the nested orchestrator is told to do, as moves: the message to the responder, the
responder's line to the rewriter, and the rewritten line to the caller, each unchanged."""
NESTED_PLAN_WITH_PASS = Plan(steps=NESTED_PLAN.steps, after_pass=(Move(Action.PASS),))
"""The same in a group chat, where a responder that chooses not to answer ends the turn."""


def parse_alignment(text: str) -> dict[str, Any] | None:
    """The alignment checker's JSON reply, or None if unreadable."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("score"), int | float):
        return None
    return value


class LinearDialoguePersona(CodePersona):
    """Code-managed dialogue: responder, then rewriter, then a goal-alignment check of the last
    five lines. A drifting verdict becomes a steering hint in the next turn's responder message."""

    role_kind: ClassVar[str] = "code"

    def __init__(
        self, character: CharacterLike, profile: LLMProfile, can_pass: bool = False
    ) -> None:
        checker = StructuredPersona(
            "alignment",
            system_prompt=alignment_prompt(character),
            schema=ALIGNMENT_SCHEMA,
            description="Scores how well the recent lines serve the character's goals.",
            profile=replace(profile, temperature=0.0, max_tokens=200, stop=()),
        )
        super().__init__(
            "pipeline",
            description=f"Produces {character.name}'s next line, step by step.",
            children=[
                _responder(character, profile, can_pass),
                _rewriter(character, profile),
                checker,
            ],
            display_name=character.name,
        )

    def decide(self, turn: list[Event], history: Sequence[Event]) -> ProposedResponse:
        inbound = next(e for e in turn if e.kind is EventKind.INBOUND)
        results = [e for e in turn if e.kind is EventKind.CHILD_RESULT]
        if not results:
            message = inbound.text
            hint = self.steering_hint(history, inbound.activation)
            if hint:
                message = f"{message}\n\n(Direction for your answer: {hint})"
            return ProposedResponse(self.path, Action.DELEGATE, message, target="responder")
        latest = results[-1]
        if latest.action is Action.PASS:
            return ProposedResponse(self.path, Action.PASS, "", data={"passed_by": latest.target})
        if latest.target == "responder":
            return ProposedResponse(self.path, Action.DELEGATE, latest.text, "style_rewriter")
        # The rewritten line, or (if a person redirected a step) the newest line there is.
        styled = next(
            (e.text for e in reversed(results) if e.target == "style_rewriter"),
            next((e.text for e in reversed(results) if e.target == "responder"), latest.text),
        )
        if latest.target == "style_rewriter":
            lines = [*self.recent_lines(history, inbound.activation), styled]
            window = lines[-ALIGNMENT_WINDOW:]
            message = "\n".join(f"{i}. {line}" for i, line in enumerate(window, 1))
            return ProposedResponse(
                self.path, Action.DELEGATE, message, "alignment", data={"window": len(window)}
            )
        verdict = parse_alignment(latest.text) or {}
        data = {
            "alignment": verdict.get("score"),
            "drifting": bool(verdict.get("drifting")) or _low(verdict.get("score")),
            "hint": verdict.get("hint", ""),
        }
        return ProposedResponse(self.path, Action.REPLY, styled, data=data)

    @staticmethod
    def recent_lines(history: Sequence[Event], activation: int) -> list[str]:
        """The character's own earlier lines (applied replies of earlier turns)."""
        return [
            e.text
            for e in history
            if e.kind is EventKind.OWN and e.action is Action.REPLY and e.activation < activation
        ]

    @staticmethod
    def steering_hint(history: Sequence[Event], activation: int) -> str:
        """The last alignment verdict of an earlier turn, if it found drift."""
        for event in reversed(history):
            if event.activation >= activation:
                continue
            if event.kind is EventKind.CHILD_RESULT and event.target == "alignment":
                verdict = parse_alignment(event.text)
                if verdict and (verdict.get("drifting") or _low(verdict.get("score"))):
                    return str(verdict.get("hint") or "steer back towards your goals")
                return ""
        return ""


def _low(score: Any) -> bool:
    return isinstance(score, int | float) and score < DRIFT_THRESHOLD


def linear_strategy(
    character: CharacterLike, profile: LLMProfile, can_pass: bool = False
) -> ResponseDrivenPersona:
    return LinearDialoguePersona(character, profile, can_pass)


def dialogue_hierarchy(
    character: CharacterLike,
    *,
    strategy: str = "nested",
    profile: LLMProfile | None = None,
    profiles: Mapping[str, LLMProfile] | None = None,
    can_pass: bool = False,
) -> ResponseDrivenPersona:
    """A character's persona tree for a strategy. `profiles` may be keyed by persona path
    (`orchestrator/responder`) or by role name (`responder`). With `can_pass` the character
    may choose not to answer (the null action of group chats)."""
    base = profile or form_profile(character.reply_form)
    builders = {"single": single_strategy, "nested": nested_strategy, "linear": linear_strategy}
    if strategy not in builders:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return apply_profiles(builders[strategy](character, base, can_pass), profiles or {})
