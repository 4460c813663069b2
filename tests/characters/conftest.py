"""Shared fixtures: the bundled cast, loaded once, a trained style model, and the voice pairs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from personaweb.characters.sheet import CharacterSheet, load_bundled
from personaweb.characters.style import StyleModel, VoicePair

DATA = Path(__file__).parent / "data"


def load_pairs(name: str) -> list[VoicePair]:
    """A voice-pair set from data/voice_pairs_<name>.toml (tune, dev or report)."""
    with open(DATA / f"voice_pairs_{name}.toml", "rb") as fh:
        rows = tomllib.load(fh)["pairs"]
    return [VoicePair(r["character"], r["voice"], r["other"], r["other_voice"]) for r in rows]


@pytest.fixture(scope="session")
def bundled() -> list[CharacterSheet]:
    return load_bundled()


@pytest.fixture(scope="session")
def cast(bundled: list[CharacterSheet]) -> dict[str, CharacterSheet]:
    return {sheet.slug: sheet for sheet in bundled}


@pytest.fixture(scope="session")
def style_model(bundled: list[CharacterSheet]) -> StyleModel:
    return StyleModel.train(bundled)
