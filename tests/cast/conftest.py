"""Fixtures for the Characters pages. The user cast (alice owns, bob does not) comes from
tests/conftest.py; here: logged-in clients, one character of alice's, and card builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from personaweb.characters.sheet import CharacterSheet
from personaweb.web.models import Character


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def sara(alice) -> Character:
    """Alice's character, with card data PersonaWeb does not model (it must survive edits)."""
    sheet = CharacterSheet(
        name="Sara Wilcox",
        description="A proud lady of a northern house.",
        personality="commanding",
        mood="impatient",
        goals=["See Thomas rise."],
        sample_lines=["Leave all the rest to me.", "What's done is done."],
        strategy="nested",
        tags=["drama"],
        extensions={"depth_prompt": {"prompt": "stay cold", "depth": 4}},
        card_extras={"creator": "someone", "character_version": "7"},
    ).validate()
    return Character.objects.create(
        owner=alice, name=sheet.name, slug=sheet.slug, data=sheet.to_dict()
    )


@pytest.fixture
def v2_card() -> Callable[..., dict[str, Any]]:
    """A Character Card V2 dict as another tool would write it (no PersonaWeb extension)."""

    def make(name: str = "Mira Vance", **data: Any) -> dict[str, Any]:
        return {
            "spec": "chara_card_v2",
            "spec_version": "2.0",
            "data": {
                "name": name,
                "description": "A ship's cartographer.",
                "personality": "dry, exact",
                "scenario": "",
                "first_mes": "Charts first, questions later.",
                "mes_example": "<START>\n{{user}}: hi\n{{char}}: North is where I say it is.",
                "creator_notes": "",
                "system_prompt": "",
                "post_history_instructions": "",
                "alternate_greetings": [],
                "tags": ["sea"],
                "creator": "tester",
                "character_version": "1",
                "extensions": {"talkativeness": "0.8", "other_tool": {"x": [1, 2]}},
                **data,
            },
        }

    return make
