"""Characters: sheets, bundled TOML files, Character Cards V2/V3 (with their macros, greetings
and lorebooks) and the style metric.

Pure Python: nothing here imports Django.
"""

from __future__ import annotations

from personaweb.characters.cards import CardError, card_to_json, card_to_png, parse_card
from personaweb.characters.sheet import (
    BUNDLED_DIR,
    STRATEGIES,
    CharacterError,
    CharacterSheet,
    load_bundled,
    load_sheet,
    slugify,
)
from personaweb.characters.style import StyleModel, StyleScore, heldout_accuracy

__all__ = [
    "BUNDLED_DIR",
    "STRATEGIES",
    "CardError",
    "CharacterError",
    "CharacterSheet",
    "StyleModel",
    "StyleScore",
    "card_to_json",
    "card_to_png",
    "heldout_accuracy",
    "load_bundled",
    "load_sheet",
    "parse_card",
    "slugify",
]
