"""Shared fixtures: the bundled cast, loaded once, and a trained style model."""

from __future__ import annotations

import pytest

from personaweb.characters.sheet import CharacterSheet, load_bundled
from personaweb.characters.style import StyleModel


@pytest.fixture(scope="session")
def bundled() -> list[CharacterSheet]:
    return load_bundled()


@pytest.fixture(scope="session")
def cast(bundled: list[CharacterSheet]) -> dict[str, CharacterSheet]:
    return {sheet.slug: sheet for sheet in bundled}


@pytest.fixture(scope="session")
def style_model(bundled: list[CharacterSheet]) -> StyleModel:
    return StyleModel.train(bundled)
