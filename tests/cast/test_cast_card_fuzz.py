"""Card import through the view, fuzzed: arbitrary JSON and mutated PNGs never give a 500 and
never leave a half-made character. An import either creates one whole character, whose page
opens and whose every export reads back as the same sheet, or refuses with a 400 and creates
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings

from personaweb.cast.store import sheet_of
from personaweb.characters import parse_card
from personaweb.web.models import Character
from tests.cardfuzz import CARD, JSON, encode, mutated_pngs

pytestmark = pytest.mark.django_db

# Each example is a whole HTTP import (and four exports): fewer of them than in the pure tests.
VIEWS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FORMATS = ("v2.json", "v3.json", "v2.png", "v3.png")


def imports_whole_or_not_at_all(client: Client, owner: Any, name: str, data: bytes) -> None:
    # The test client re-raises a view's exception: a 500 fails the test with its traceback.
    kind = "image/png" if name.endswith(".png") else "application/json"
    response = client.post(
        reverse("cast:import"), {"card": SimpleUploadedFile(name, data, content_type=kind)}
    )
    assert response.status_code in (302, 400)
    made = list(Character.objects.filter(owner=owner))
    if response.status_code == 400:
        assert "Import refused:" in response.content.decode()
        assert made == []
        return
    [character] = made
    try:
        sheet = sheet_of(character)  # the stored sheet is valid
        assert client.get(reverse("cast:detail", args=[character.pk])).status_code == 200
        for fmt in FORMATS:
            body = client.get(reverse("cast:export", args=[character.pk, fmt])).content
            assert parse_card(body, f"x.{fmt.split('.')[1]}").to_dict() == sheet.to_dict()
    finally:
        character.delete()  # each example starts with no characters


@VIEWS
@given(value=JSON)
def test_arbitrary_json_never_gives_a_500_or_half_a_character(alice_client, alice, value):
    imports_whole_or_not_at_all(alice_client, alice, "x.json", encode(value))


@VIEWS
@given(card=CARD)
def test_card_shaped_json_never_gives_a_500_or_half_a_character(alice_client, alice, card):
    imports_whole_or_not_at_all(alice_client, alice, "card.json", encode(card))


@VIEWS
@given(data=mutated_pngs())
def test_a_mutated_png_never_gives_a_500_or_half_a_character(alice_client, alice, data):
    imports_whole_or_not_at_all(alice_client, alice, "card.png", data)
