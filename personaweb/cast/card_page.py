"""What the character page shows of a card: its text as the person will meet it (macros
replaced), the example lines it hides outside `mes_example`, its lorebook, and warnings about
what will not work as the author meant."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from personaweb.cast.sessions import macros_for
from personaweb.characters.cards import FoundLine, lines_elsewhere
from personaweb.characters.lorebook import Lorebook, read_book
from personaweb.characters.macros import Macros, card_macros
from personaweb.characters.sheet import CharacterSheet
from personaweb.personas.card_prompt import CharacterNote
from personaweb.web.models import Character

ORIGINAL_SHOWN = "[PersonaWeb's own instructions]"
"""How `{{original}}` reads on the page (the prompt puts the instructions there)."""
NO_SAMPLES = (
    "No sample lines. The nested and linear strategies' style rewriter has no voice to "
    "imitate, and the style score (Compare) cannot be measured for this character."
)
_LEFT = re.compile(r"\{\{[^{}]{1,40}\}\}")


@dataclass
class CardShown:
    """A sheet's card text as the page shows it."""

    macros: Macros
    """What the macros stood for (for the note under the text)."""
    texts: dict[str, str]
    """description, personality, scenario, greeting, system_prompt, post_history_instructions:
    expanded."""
    alternate_greetings: list[str]
    group_greetings: list[str]
    sample_lines: list[str]
    found_lines: list[FoundLine] = field(default_factory=list)
    """Example lines in the description or greeting, offered as sample lines (only when the
    sheet has none), with their macros replaced for reading."""
    book: Lorebook | None = None
    """The card's own lorebook, read."""
    warnings: list[str] = field(default_factory=list)
    note: CharacterNote | None = None
    """The card's character note (`extensions.depth_prompt`), as the prompts get it."""


def shown(sheet: CharacterSheet, user: str) -> CardShown:
    macros = macros_for(sheet, user)
    texts = {
        key: macros.expand(getattr(sheet, key), original=ORIGINAL_SHOWN)
        for key in (
            "description",
            "personality",
            "scenario",
            "greeting",
            "system_prompt",
            "post_history_instructions",
        )
    }
    page = CardShown(
        macros=macros,
        texts=texts,
        alternate_greetings=macros.expand_all(sheet.alternate_greetings),
        group_greetings=macros.expand_all(sheet.group_greetings),
        sample_lines=macros.expand_all(sheet.sample_lines),
        note=CharacterNote.of(sheet.extensions.get("depth_prompt"), macros.expand),
    )
    if not sheet.sample_lines:
        page.found_lines = [
            FoundLine(macros.expand(f.line), f.source) for f in lines_elsewhere(sheet)
        ]
        page.warnings.append(NO_SAMPLES)
    if sheet.character_book is not None:
        page.book = read_book(sheet.character_book, f"{sheet.name}'s lorebook").expanded(macros)
        page.warnings += [f"Lorebook: {problem}." for problem in page.book.problems]
    left = sorted(
        {m for text in [*texts.values(), *page.sample_lines] for m in _LEFT.findall(text)}
    )
    if left:
        page.warnings.append(
            f"Macros PersonaWeb does not know reach the prompt as written: {', '.join(left)}."
        )
    return page


def description(character: Character, user: str) -> str:
    """A stored character's description as the list shows it (macros filled in). Read off the
    row's data without validating the whole sheet: a list must show even a broken row."""
    data = character.data or {}
    extras = data.get("card_extras")
    macros = card_macros(character.name, extras if isinstance(extras, dict) else None, user)
    text = data.get("description")
    return macros.expand(text) if isinstance(text, str) else ""
