"""The greetings a character can open a chat with, and a person's choice among them.

A choice is named by a value: `first` (the card's `first_mes`), `alt:N` (its Nth alternate
greeting), `group:N` (its Nth group-only greeting, V3) or `none`. What is offered, and the
default:

- a chat with one character: `first_mes` and the alternates; the default is `first_mes`;
- a group chat: each character's group-only greetings, then its ordinary ones; the default is
  its first group-only greeting, or none (a group opens only with the lines their authors
  wrote for groups, as the V3 spec means `group_only_greetings`).

Texts are as the card wrote them; macros are replaced where the greeting is said.
"""

from __future__ import annotations

from dataclasses import dataclass

from personaweb.characters.sheet import CharacterSheet

NONE = "none"


@dataclass(frozen=True)
class Greeting:
    """One greeting a person can choose."""

    value: str
    """How the choice is named in a form: first, alt:N or group:N."""
    label: str
    """How it is shown: "greeting", "alternate 2", "group greeting 1"."""
    text: str
    """The greeting as the card wrote it."""


def greetings_of(sheet: CharacterSheet, *, group: bool = False) -> list[Greeting]:
    """Every greeting on offer, in the order shown (see the module's rules)."""
    ordinary = [Greeting("first", "greeting", sheet.greeting)] if sheet.greeting.strip() else []
    ordinary += [
        Greeting(f"alt:{i}", f"alternate {i}", text)
        for i, text in enumerate(sheet.alternate_greetings, 1)
    ]
    if not group:
        return ordinary
    for_groups = [
        Greeting(f"group:{i}", f"group greeting {i}", text)
        for i, text in enumerate(sheet.group_greetings, 1)
    ]
    return for_groups + ordinary


def default_greeting(sheet: CharacterSheet, *, group: bool = False) -> str:
    """The value chosen unless the person picks another."""
    offered = greetings_of(sheet, group=group)
    if group:
        return next((g.value for g in offered if g.value.startswith("group:")), NONE)
    return offered[0].value if offered else NONE


def choose(sheet: CharacterSheet, value: str, *, group: bool = False) -> Greeting | None:
    """The greeting a value names (None for `none`); ValueError for one not on offer."""
    if value == NONE:
        return None
    for greeting in greetings_of(sheet, group=group):
        if greeting.value == value:
            return greeting
    raise ValueError(f"{sheet.name} has no greeting {value!r}")
