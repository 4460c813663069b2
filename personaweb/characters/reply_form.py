"""A character's reply form: the shape its replies take, which belongs to the character.

- **spoken**: one short spoken line, the words said aloud and nothing else (PersonaWeb's bundled
  characters, and the style experiment, which compares voices line by line).
- **narrated**: roleplay as community cards are written: paragraphs that narrate the
  character's actions in `*asterisks*` around what they say.

The rules, applied here and nowhere else:
1. A character's form is the one it was given (the character page, a card's
   `extensions.personaweb.reply_form`); without one, it is read off what the card shows:
   narrated when its greeting or example lines have `*actions*`, narration outside speech or
   more than one paragraph; spoken when they show speech alone; narrated when they show
   nothing (a card without a greeting or examples was written for roleplay frontends).
2. The form decides what the personas that speak as the character are told, how many tokens
   they get and where a reply ends (`SPEC`); the style rewriter of a narrated character keeps
   the actions and narration and restyles only the speech.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SPOKEN = "spoken"
NARRATED = "narrated"
FORMS = (SPOKEN, NARRATED)
LABELS = {
    SPOKEN: "a spoken line (the words said aloud)",
    NARRATED: "narrated roleplay (paragraphs, *actions* and speech)",
}

_ACTION = re.compile(r"(?<![*\w])\*[^*\n]{2,}\*(?![*\w])")
"""`*leans on the rail*`: an action in asterisks (not `**bold**`, not a lone `*`)."""
_PARAGRAPH = re.compile(r"\n\s*\n")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class FormSpec:
    """What a form asks of the personas that speak as the character."""

    max_tokens: int
    """Room for one reply (a spoken line is short; a narrated reply runs to paragraphs)."""
    stop: tuple[str, ...]
    """Where a reply ends: a spoken line at a blank line (small models ramble on)."""


SPEC = {
    # 160: one to three sentences with room to spare (at 120, two of five bundled replies were
    # cut off).
    SPOKEN: FormSpec(max_tokens=160, stop=("\n\n",)),
    # Three paragraphs of narration and speech; no blank-line stop, as paragraphs are the form.
    NARRATED: FormSpec(max_tokens=450, stop=()),
}


def shows_narration(text: str) -> bool:
    """Whether a greeting or an example line is narrated roleplay rather than speech alone."""
    if _ACTION.search(text) or _PARAGRAPH.search(text.strip()):
        return True
    # Prose with the speech in quotes ("She smiles. "Come in," she says.") is narration too.
    outside = re.sub(r"\"[^\"]*\"|“[^”]*”", " ", text)
    return '"' in text and len(_WORDS.findall(outside)) >= 4


def detect(greeting: str, examples: Iterable[str]) -> str:
    """The form a card shows (rule 1): narrated unless what it shows is speech alone."""
    shown = [t for t in (greeting, *examples) if t and t.strip()]
    if not shown:
        return NARRATED
    return NARRATED if any(shows_narration(t) for t in shown) else SPOKEN


def form_of(chosen: str, greeting: str, examples: Iterable[str]) -> str:
    """The character's form: the chosen one, else the one its card shows."""
    return chosen if chosen in FORMS else detect(greeting, examples)
