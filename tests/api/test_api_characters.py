"""Characters over the API: the sheet saved as the page saves it, cards out and back in."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from personaweb.web.models import Character
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db

JON = {
    "name": "Jon Johns",
    "description": "A sailor.",
    "mood": "gruff",
    "goals": ["find the ship"],
    "sample_lines": ["Aye, that'll be the tide."],
    "talkativeness": 0.8,
}


def send(client, method: str, url: str, token: str, body: dict | None = None):
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(
        url, *([body] if body is not None else []), headers=bearer(token), **kwargs
    )


def test_a_character_is_created_read_edited_and_deleted(client, alice, alice_token):
    made = send(client, "post", "/api/characters", alice_token, JON)
    assert made.status_code == 201
    character = made.json()
    assert character["slug"] == "jon_johns"
    assert {k: character["sheet"][k] for k in JON} == JON
    row = Character.objects.get(pk=character["id"], owner=alice)
    assert row.data["sample_lines"] == JON["sample_lines"]
    url = f"/api/characters/{character['id']}"
    # The same name twice is refused, as on the page.
    assert send(client, "post", "/api/characters", alice_token, JON).status_code == 409
    # An edit replaces the sheet and keeps the slug, the id group chats know it by.
    edited = send(client, "put", url, alice_token, {**JON, "name": "Captain Jon", "mood": "calm"})
    assert edited.status_code == 200
    assert edited.json()["name"] == "Captain Jon" and edited.json()["slug"] == "jon_johns"
    assert send(client, "get", url, alice_token).json()["sheet"]["mood"] == "calm"
    assert send(client, "delete", url, alice_token).status_code == 204
    assert send(client, "get", url, alice_token).status_code == 404


def test_a_card_exported_over_the_api_imports_back_as_a_new_character(client, alice, alice_token):
    character = send(client, "post", "/api/characters", alice_token, JON).json()
    for fmt in ("v2.json", "v3.json", "v2.png", "v3.png"):
        card = client.get(
            f"/api/characters/{character['id']}/card/{fmt}", headers=bearer(alice_token)
        )
        assert card.status_code == 200
        assert card["Content-Type"].startswith(
            "image/png" if fmt.endswith("png") else "application/json"
        )
        upload = SimpleUploadedFile(f"jon.{fmt}", card.content)
        back = client.post("/api/characters/import", {"card": upload}, headers=bearer(alice_token))
        assert back.status_code == 201, back.content
        sheet = back.json()["sheet"]
        assert sheet["name"].startswith("Jon Johns (")  # the name was taken: numbered
        assert sheet["sample_lines"] == JON["sample_lines"] and sheet["mood"] == "gruff"


def test_a_file_that_is_no_card_is_refused_and_creates_nothing(client, alice, alice_token):
    before = Character.objects.count()
    upload = SimpleUploadedFile("card.json", b'{"spec": "chara_card_v2", "data": NaN}')
    response = client.post("/api/characters/import", {"card": upload}, headers=bearer(alice_token))
    assert response.status_code == 400 and response.json()["detail"].startswith("Import refused")
    assert Character.objects.count() == before
