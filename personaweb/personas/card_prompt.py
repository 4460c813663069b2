"""The prompt of a persona that speaks as a character, with what the character's card adds.

Character Card V2 says where a card's fields go; these are the rules, applied here and nowhere
else (for the single strategy's one persona and for the in-character responder of nested and
linear, in a chat of one or in a group):

1. **Macros.** Every card text reaches the prompt with its macros replaced (`{{char}}`,
   `{{user}}`...; characters/macros.py): `character_fields` does it once, when a session's
   character is read, so nothing downstream sees a raw `{{user}}`.
2. **System prompt.** A card's `system_prompt` takes the place of PersonaWeb's own instructions
   (who you are, stay in character, one short spoken line); `{{original}}` in it stands for
   them. The character's definition (description, personality, mood, goals, scenario) and, in
   the single prompt, the sample lines follow as always: in SillyTavern too a card's system
   prompt replaces the main prompt, not the character.
3. **Definition.** Description, personality, mood, goals and scenario ("The situation: ..."),
   each under its label; a part the card leaves empty is left out, label and all: no prompt
   carries an empty label or a "(none given)".
4. **Lore.** Lorebook entries that the recent messages trigger (characters/lorebook.py) go
   before or after the definition, within a lore budget: a quarter of the model's context
   window (DEFAULT_LORE_BUDGET when the window is unknown), and each book's own token_budget.
   The proposal's node says which entries fired and why (`data["lore"]`).
5. **Post-history instructions** are the last message of the prompt, a system message after
   the history. They belong to the latest turn, which fitting the prompt to the context window
   always keeps (llm/budget.py). `{{original}}` in them is empty: PersonaWeb has no
   post-history instructions of its own.
6. The stateless **style rewriter** gets none of this: only the line to rewrite and the sample
   lines. A character with no sample lines is flagged on each of its proposals
   (`data["warning"]`): the rewriter had no voice to imitate.
7. **Character note.** A card's `extensions.depth_prompt` goes into the history at its depth
   and role (0: after the latest message), for the single prompt and the responder (not the
   orchestrator), macros replaced; the node records it (`data["character_note"]`).
8. **Reply form.** What the character is asked to write, in the instructions above and in
   `{{original}}`, follows its reply form (characters/reply_form.py): one short spoken line,
   or a narrated reply with *actions* and speech.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from personaweb.characters.lorebook import (
    DEFAULT_SCAN_DEPTH,
    Lorebook,
    LoreScan,
    Position,
    distinct_books,
    read_book,
    scan,
)
from personaweb.characters.macros import DEFAULT_USER, card_macros, fill_original
from personaweb.characters.reply_form import NARRATED, form_of
from personaweb.llm.types import ChatMessage, LLMProfile
from personaweb.personas.persona import (
    BasicPersona,
    Prompt,
    ProposeContext,
    basic_messages,
    render_events,
)
from personaweb.personas.state import Event

DEFAULT_LORE_BUDGET = 1024
"""Tokens lore may take when the model's context window is unknown."""
LORE_SHARE = 4
"""Lore takes at most 1/LORE_SHARE of the context window."""
MAX_SAMPLES = 25
"""Sample lines a prompt shows (the first ones)."""
MAX_NOTE_DEPTH = 1000
NoteRole = Literal["system", "user", "assistant"]
NOTE_ROLES: tuple[NoteRole, ...] = ("system", "user", "assistant")


class CharacterLike(Protocol):
    """What the dialogue personas need of a character (dialogue.SimpleCharacter has it all)."""

    name: str
    description: str
    personality: str
    mood: str
    goals: list[str]
    sample_lines: list[str]
    scenario: str
    system_prompt: str
    post_history_instructions: str
    lorebooks: tuple[Lorebook, ...]
    user: str
    reply_form: str
    note: CharacterNote | None


@dataclass(frozen=True)
class CharacterNote:
    """A card's character note (`extensions.depth_prompt`): text put into the conversation at a
    depth (0: after the latest message; N: before the last N messages) as `role` (rule 7)."""

    text: str
    depth: int = 4
    role: NoteRole = "system"

    @classmethod
    def of(cls, raw: Any, expand: Callable[[str], str]) -> CharacterNote | None:
        """The note a card's `depth_prompt` extension holds, or None (no note, or not one)."""
        if not isinstance(raw, Mapping):
            return None
        text = raw.get("prompt")
        if not isinstance(text, str) or not text.strip():
            return None
        depth = raw.get("depth", 4)
        if isinstance(depth, bool) or not isinstance(depth, int):
            depth = 4
        role: NoteRole = "system"
        for known in NOTE_ROLES:
            if raw.get("role") == known:
                role = known
        return cls(expand(text.strip()), max(0, min(depth, MAX_NOTE_DEPTH)), role)


def character_fields(
    data: Mapping[str, Any],
    *,
    user: str = DEFAULT_USER,
    group: Sequence[str] = (),
    books: Sequence[tuple[str, Any]] = (),
) -> dict[str, Any]:
    """A character's fields from a sheet's dict (CharacterSheet.to_dict), as one chat meets
    them: macros replaced for the person `user` (and the group's `group` of names), the card's
    own lorebook and the `books` attached to it or to the session ((name, stored book) pairs)
    read and expanded. `{{original}}` stays for the prompt to fill (rule 2)."""
    name = str(data.get("name") or "Character")
    extras = data.get("card_extras")
    extras = extras if isinstance(extras, Mapping) else {}
    macros = card_macros(name, extras, user, group)

    def text(key: str) -> str:
        # Sheets stored before the card fields were modelled keep them among the extras.
        value = data.get(key, extras.get(key))
        return macros.expand(value) if isinstance(value, str) else ""

    def lines(key: str) -> list[str]:
        return [macros.expand(str(v)) for v in data.get(key) or []]

    extensions = data.get("extensions")
    extensions = extensions if isinstance(extensions, Mapping) else {}
    samples = lines("sample_lines")
    own = data.get("character_book", extras.get("character_book"))
    stored = ([(f"{name}'s lorebook", own)] if isinstance(own, Mapping) else []) + list(books)
    return {
        "name": name,
        "description": text("description"),
        "personality": text("personality"),
        "mood": text("mood"),
        "goals": lines("goals"),
        "sample_lines": samples,
        "scenario": text("scenario"),
        "system_prompt": text("system_prompt"),
        "post_history_instructions": text("post_history_instructions"),
        "lorebooks": distinct_books([read_book(r, t).expanded(macros) for t, r in stored]),
        "user": macros.user,
        "reply_form": form_of(str(data.get("reply_form") or ""), text("greeting"), samples),
        "note": CharacterNote.of(extensions.get("depth_prompt"), macros.expand),
    }


# --- the system prompt --------------------------------------------------------------------------


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _intro(character: CharacterLike) -> str:
    where = "in a roleplay" if character.reply_form == NARRATED else "in a conversation"
    intro = f"You are {character.name}, speaking {where}. Stay in character at all times."
    if character.user and character.user != DEFAULT_USER:
        intro += f" You are talking with {character.user}."
    return intro


def _closing(character: CharacterLike, samples: bool) -> str:
    if character.reply_form == NARRATED:
        other = character.user or DEFAULT_USER
        voice = " in that voice" if samples and character.sample_lines else ""
        return (
            f"Write {character.name}'s next reply{voice}: narrate what {character.name} does "
            "in *asterisks* around what they say, in one to three paragraphs, fitting the "
            f"situation. Write only {character.name}'s part: never speak or act for {other}."
        )
    voice = " in that voice" if samples and character.sample_lines else ""
    return (
        f"Answer the latest message with one short spoken line (one to three sentences){voice}"
        f"{_serving(character)}. Write only the words you say aloud."
    )


def _serving(character: CharacterLike) -> str:
    """What a spoken line should serve, as far as the character says (nothing left empty)."""
    parts = (["fitting your mood"] if character.mood.strip() else []) + (
        ["serving your goals"] if character.goals else []
    )
    return ", " + " and ".join(parts) if parts else ""


def own_instructions(character: CharacterLike, *, samples: bool) -> str:
    """PersonaWeb's own instructions: what `{{original}}` in a card's system prompt stands for."""
    return f"{_intro(character)} {_closing(character, samples)}"


def definition(character: CharacterLike) -> str:
    """The character's definition (rule 3): each part the character has, under its label; a
    part left empty is left out, label and all."""
    parts = [
        ("Who you are", character.description),
        ("Personality", character.personality),
        ("Your mood right now", character.mood),
    ]
    text = "".join(f"{label}: {value.strip()}\n" for label, value in parts if value.strip())
    if character.goals:
        text += f"What you want:\n{_bullets(character.goals)}\n"
    if character.scenario.strip():
        text += f"The situation: {character.scenario.strip()}\n"
    return text


def character_prompt(
    character: CharacterLike, *, samples: bool, lore: LoreScan | None = None
) -> str:
    """The system prompt of a persona speaking as `character` (rules 2 to 4); `samples` adds
    the sample lines (the single strategy)."""
    before = "".join(f"{t}\n" for t in lore.texts(Position.BEFORE)) if lore else ""
    after = "".join(f"{t}\n" for t in lore.texts(Position.AFTER)) if lore else ""
    voice = ""
    if samples and character.sample_lines:
        lines = _bullets(character.sample_lines[:MAX_SAMPLES])
        voice = f"\nThis is how you talk; match this voice closely:\n{lines}\n"
    body = f"{before}{definition(character)}{after}{voice}"
    if character.system_prompt.strip():
        own = own_instructions(character, samples=samples)
        return f"{fill_original(character.system_prompt, own)}\n\n{body}".rstrip()
    return f"{_intro(character)}\n{body}\n{_closing(character, samples)}"


def with_note(messages: list[ChatMessage], note: CharacterNote | None) -> list[ChatMessage]:
    """The history with the character's note at its depth (rule 7)."""
    if note is None:
        return messages
    at = max(0, len(messages) - note.depth)
    return [*messages[:at], ChatMessage(note.role, note.text), *messages[at:]]


def responder_prompt(character: CharacterLike) -> str:
    """The in-character responder's system prompt, before any lore."""
    return character_prompt(character, samples=False)


def single_prompt(character: CharacterLike) -> str:
    """The single strategy's system prompt, before any lore."""
    return character_prompt(character, samples=True)


def lore_budget(window: int | None) -> int:
    """Tokens the lore of one prompt may take (rule 4)."""
    return window // LORE_SHARE if window else DEFAULT_LORE_BUDGET


# --- the personas -------------------------------------------------------------------------------


class InCharacterPersona(BasicPersona):
    """A basic persona that speaks as a character: its prompt follows the card (the rules)."""

    role_kind: ClassVar[str] = "basic"

    def __init__(
        self,
        name: str,
        *,
        character: CharacterLike,
        samples: bool,
        description: str = "",
        profile: LLMProfile | None = None,
        can_pass: bool = False,
        display_name: str = "",
    ) -> None:
        super().__init__(
            name,
            system_prompt=character_prompt(character, samples=samples),
            description=description,
            profile=profile,
            can_pass=can_pass,
            display_name=display_name,
        )
        self.character = character
        self.samples = samples
        self._system = ChatMessage("system", self.system_prompt)
        """The system message when no lore fires (most calls): made once."""
        self._scan_depth = max(
            (
                entry.scan_depth or book.scan_depth or DEFAULT_SCAN_DEPTH
                for book in character.lorebooks
                for entry in book.entries
            ),
            default=0,
        )
        """How many of the latest messages a lore scan reads (its deepest entry's depth)."""

    def compose(self, events: Sequence[Event], window: int | None = None) -> Prompt:
        """The prompt for these events, pure: the system prompt with the lore the recent
        messages trigger, the history, the post-history instructions last."""
        history = render_events(events, basic_messages)
        # Only the latest messages can trigger lore: a scan reads no more than those, so a
        # long history costs nothing here.
        recent = history[-self._scan_depth :] if self._scan_depth else []
        lore = scan(
            self.character.lorebooks, [m.content for m in recent], budget=lore_budget(window)
        )
        if lore.kept:
            text = character_prompt(self.character, samples=self.samples, lore=lore)
            system = ChatMessage("system", text)
        else:
            system = self._system
        messages = [system, *with_note(history, self.character.note)]
        after = fill_original(self.character.post_history_instructions, "").strip()
        if after:
            messages.append(ChatMessage("system", after))
        data: dict[str, Any] = {}
        found = lore.note()
        if found:
            data["lore"] = found
        if self.character.note is not None:
            note = self.character.note
            data["character_note"] = {"depth": note.depth, "role": note.role, "text": note.text}
        return Prompt(messages, data)

    def build_messages(self, events: Sequence[Event]) -> list[ChatMessage]:
        return self.compose(events).messages

    async def prompt(self, ctx: ProposeContext, events: Sequence[Event]) -> Prompt:
        window = None
        if self.character.lorebooks:
            window = await ctx.model.context_window(self.profile)
        return self.compose(events, window)


class SampleLineRewriter(BasicPersona):
    """The stateless style rewriter (rule 6): one line in, the line in the character's voice
    out. Without sample lines it has nothing to imitate, and every proposal says so."""

    def __init__(
        self,
        name: str,
        *,
        system_prompt: str,
        character: CharacterLike,
        description: str = "",
        profile: LLMProfile | None = None,
    ) -> None:
        super().__init__(
            name,
            system_prompt=system_prompt,
            description=description,
            profile=profile,
            stateless=True,
        )
        self.warning = (
            ""
            if character.sample_lines
            else f"{character.name} has no sample lines: the rewriter had no voice to imitate"
        )

    async def prompt(self, ctx: ProposeContext, events: Sequence[Event]) -> Prompt:
        prompt = await super().prompt(ctx, events)
        if self.warning:
            prompt.data["warning"] = self.warning
        return prompt
