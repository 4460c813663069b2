"""Character Card import and export through the HTTP views: V2/V3, JSON/PNG, limits, round trips."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from personaweb.cast.store import sheet_of
from personaweb.characters import card_to_json, card_to_png, parse_card
from personaweb.characters.cards import MAX_CARD_BYTES
from personaweb.characters.png import solid_avatar, with_text
from personaweb.web.models import Character

pytestmark = pytest.mark.django_db

IMPORT = "cast:import"


def as_json(card: dict) -> bytes:
    return json.dumps(card).encode()


def upload(client: Client, name: str, data: bytes, content_type: str = "application/json"):
    return client.post(
        reverse(IMPORT), {"card": SimpleUploadedFile(name, data, content_type=content_type)}
    )


def export(client: Client, character: Character, fmt: str):
    return client.get(reverse("cast:export", args=[character.pk, fmt]))


# --- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "filename", "spec"),
    [
        ("v2.json", "application/json; charset=utf-8", "sara_wilcox.card-v2.json", "chara_card_v2"),
        ("v3.json", "application/json; charset=utf-8", "sara_wilcox.card-v3.json", "chara_card_v3"),
        ("v2.png", "image/png", "sara_wilcox.card-v2.png", "chara_card_v2"),
        ("v3.png", "image/png", "sara_wilcox.card-v3.png", "chara_card_v3"),
    ],
)
def test_it_exports_a_card_as_a_download(alice_client, sara, fmt, content_type, filename, spec):
    response = export(alice_client, sara, fmt)
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    body = response.content
    if fmt.endswith(".json"):
        assert json.loads(body)["spec"] == spec
    else:
        assert body.startswith(b"\x89PNG\r\n\x1a\n")
    assert parse_card(body, filename).to_dict() == sheet_of(sara).to_dict()


def test_an_unknown_export_format_is_a_404(alice_client, sara):
    assert export(alice_client, sara, "v4.json").status_code == 404


# --- import ----------------------------------------------------------------------------------


def test_it_imports_a_v2_json_card(alice_client, alice, v2_card):
    response = upload(alice_client, "mira.json", as_json(v2_card()))
    character = Character.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("cast:detail", args=[character.pk])
    sheet = sheet_of(character)
    assert (character.name, character.slug) == ("Mira Vance", "mira_vance")
    assert sheet.sample_lines == ["North is where I say it is."]
    assert sheet.greeting == "Charts first, questions later."
    assert sheet.talkativeness == 0.8  # SillyTavern's hint, read from extensions
    assert sheet.extensions["other_tool"] == {"x": [1, 2]}
    assert sheet.card_extras == {"creator": "tester", "character_version": "1"}


def test_it_imports_a_v3_json_card(alice_client, alice, v2_card):
    card = v2_card("Orla Finch")
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    card["data"]["group_only_greetings"] = ["Hello, all."]
    card["data"]["assets"] = [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]
    assert upload(alice_client, "orla.json", as_json(card)).status_code == 302
    sheet = sheet_of(Character.objects.get(owner=alice))
    assert sheet.name == "Orla Finch"
    assert sheet.group_greetings == ["Hello, all."]
    assert sheet.card_extras["assets"][0]["uri"] == "ccdefault:"


@pytest.mark.parametrize("version", [2, 3])
def test_it_imports_a_png_card(alice_client, alice, sara, version):
    png = card_to_png(sheet_of(sara), version)
    response = upload(alice_client, "sara.png", png, "image/png")
    assert response.status_code == 302
    imported = Character.objects.exclude(pk=sara.pk).get(owner=alice)
    # Alice already has a Sara: the import takes the next free name and slug, never fails.
    assert (imported.name, imported.slug) == ("Sara Wilcox (2)", "sara_wilcox_2")
    sheet = sheet_of(imported)
    assert sheet.sample_lines == sheet_of(sara).sample_lines
    assert sheet.extensions == sheet_of(sara).extensions


def test_a_png_cards_picture_goes_back_out_on_export(alice_client, alice, sara):
    from personaweb.characters.png import read_chunks

    picture = solid_avatar("a portrait of someone else entirely", size=32)
    upload(alice_client, "sara.png", card_to_png(sheet_of(sara), 3, image=picture), "image/png")
    imported = Character.objects.exclude(pk=sara.pk).get(owner=alice)
    exported = export(alice_client, imported, "v2.png").content

    def pixels(png: bytes) -> list[bytes]:
        return [c.data for c in read_chunks(png) if c.type in (b"IHDR", b"IDAT")]

    # The same image, carrying this character's card (and only one of each chunk).
    assert pixels(exported) == pixels(picture)
    assert parse_card(exported).name == imported.name
    # A character that never came as a PNG gets the generated avatar.
    assert pixels(export(alice_client, sara, "v2.png").content) != pixels(picture)


def test_a_png_prefers_the_v3_chunk(alice_client, alice, v2_card):
    import base64

    def chunk(card: dict) -> str:
        return base64.b64encode(json.dumps(card).encode()).decode()

    v3 = v2_card("Third Version")
    v3["spec"] = "chara_card_v3"
    png = with_text(
        solid_avatar("x"), {"chara": chunk(v2_card("Second Version")), "ccv3": chunk(v3)}
    )
    upload(alice_client, "both.png", png, "image/png")
    assert Character.objects.get(owner=alice).name == "Third Version"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        (
            "broken.json",
            b'{"spec": "chara_card_v2", "data": ',
            "broken.json: card is not valid JSON",
        ),
        ("nameless.json", b'{"spec": "chara_card_v2", "data": {}}', "card has no name"),
        ("odd.json", b'{"spec": "chara_card_v9", "data": {}}', "unsupported card spec"),
        ("list.json", b"[1, 2, 3]", "card must be a JSON object"),
        ("fake.png", b"not a png at all", "file is named .png but is not a PNG image"),
        ("plain.png", solid_avatar("x"), "PNG has no character card"),
        (
            "long.json",
            as_json({"spec": "chara_card_v2", "data": {"name": "x" * 81}}),
            "name: 81 characters, at most 80 allowed",
        ),
        (
            "bad_strategy.json",
            as_json(
                {
                    "spec": "chara_card_v2",
                    "data": {"name": "X", "extensions": {"personaweb": {"strategy": "wild"}}},
                }
            ),
            "strategy: &#x27;wild&#x27; is not one of single, nested, linear",
        ),
    ],
)
def test_a_malformed_card_is_refused_clearly_and_creates_nothing(
    alice_client, alice, sara, name, data, reason
):
    response = upload(alice_client, name, data)
    page = response.content.decode()
    assert response.status_code == 400
    assert "Import refused:" in page
    assert reason in page
    assert Character.objects.filter(owner=alice).count() == 1  # only sara


def test_an_empty_or_missing_file_is_refused(alice_client, alice, sara):
    for response in (
        upload(alice_client, "empty.json", b""),
        alice_client.post(reverse(IMPORT), {}),
    ):
        assert response.status_code == 400
        assert "choose a card file" in response.content.decode()
    assert Character.objects.filter(owner=alice).count() == 1


def test_an_oversized_card_is_refused_while_it_streams_in(alice_client, alice, sara, v2_card):
    # Valid JSON, only too big: the cap must refuse it on size alone, before parsing.
    card = v2_card(description="x" * 10)
    body = as_json(card)
    oversized = body[:-2] + b" " * (MAX_CARD_BYTES + 1 - len(body)) + body[-2:]
    assert len(oversized) == MAX_CARD_BYTES + 1
    response = upload(alice_client, "big.json", oversized)
    assert response.status_code == 400
    assert "Import refused: the card is larger than 8 MB" in response.content.decode()
    assert Character.objects.filter(owner=alice).count() == 1


def test_an_oversized_request_is_refused_before_its_body_is_parsed(alice_client, alice, sara):
    # The declared length is what counts; the test does not need to send 16 MB for it.
    response = alice_client.post(
        reverse(IMPORT),
        data=b"x" * 16,
        content_type="multipart/form-data; boundary=BoUnDaRy",
        CONTENT_LENGTH=str(MAX_CARD_BYTES * 2),
    )
    assert response.status_code == 400
    assert "Import refused: the upload is larger than 8 MB" in response.content.decode()
    assert Character.objects.filter(owner=alice).count() == 1


def test_a_card_just_under_the_limit_is_accepted(alice_client, alice, v2_card):
    body = as_json(v2_card())
    padded = body[:-2] + b" " * (MAX_CARD_BYTES - len(body)) + body[-2:]
    assert len(padded) == MAX_CARD_BYTES
    assert upload(alice_client, "padded.json", padded).status_code == 302
    assert Character.objects.filter(owner=alice).count() == 1


def test_import_needs_a_csrf_token(alice, v2_card):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    card = SimpleUploadedFile("m.json", as_json(v2_card()), content_type="application/json")
    assert strict.post(reverse(IMPORT), {"card": card}).status_code == 403
    assert not Character.objects.filter(owner=alice).exists()


def test_import_needs_a_login(client, v2_card):
    response = upload(client, "m.json", as_json(v2_card()))
    assert response.status_code == 302
    assert not Character.objects.exists()


def test_an_imported_card_is_escaped(alice_client, alice, v2_card):
    card = v2_card("<script>alert(1)</script>", description="<b onmouseover=alert(2)>hi</b>")
    upload(alice_client, "xss.json", as_json(card))
    character = Character.objects.get(owner=alice)
    for url in (reverse("cast:list"), reverse("cast:detail", args=[character.pk])):
        page = alice_client.get(url).content.decode()
        assert "<script>alert(1)" not in page
        assert "<b onmouseover" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["v2.json", "v3.json", "v2.png", "v3.png"])
def test_an_export_import_export_round_trip_keeps_unknown_extensions(
    alice_client, bob_client, bob, v2_card, fmt
):
    # A card from another tool, with extension keys and data keys PersonaWeb does not know.
    card = v2_card(
        "Mira Vance",
        character_book={"entries": [{"keys": ["sea"], "content": "salt"}]},
        extensions={"other_tool": {"x": [1, 2]}, "depth_prompt": {"depth": 4, "prompt": "p"}},
    )
    assert upload(bob_client, "mira.json", as_json(card)).status_code == 302
    first = Character.objects.get(owner=bob)

    exported = export(bob_client, first, fmt).content
    again = parse_card(exported, f"mira.{fmt}")
    assert again.extensions == {
        "other_tool": {"x": [1, 2]},
        "depth_prompt": {"depth": 4, "prompt": "p"},
    }
    # The book as it came, named and with the `use_regex` V3 requires (lorebook.complete_book).
    book = {"entries": [{"keys": ["sea"], "content": "salt", "use_regex": False}]}
    book["name"] = "Mira Vance's lorebook"
    assert again.character_book == book

    # Back in through the import view, and out once more: nothing lost on the way.
    content_type = "image/png" if fmt.endswith("png") else "application/json"
    name = f"mira.{fmt.split('.')[1]}"
    assert upload(bob_client, name, exported, content_type).status_code == 302
    second = Character.objects.get(owner=bob, name="Mira Vance (2)")
    final = json.loads(card_to_json(sheet_of(second), 2))["data"]
    assert final["extensions"]["other_tool"] == {"x": [1, 2]}
    assert final["extensions"]["depth_prompt"] == {"depth": 4, "prompt": "p"}
    assert final["character_book"] == book
    assert sheet_of(second).to_dict() | {"name": "", "slug": ""} == sheet_of(first).to_dict() | {
        "name": "",
        "slug": "",
    }


def test_an_edited_character_still_exports_its_unknown_extensions(alice_client, alice, v2_card):
    upload(alice_client, "mira.json", as_json(v2_card()))
    character = Character.objects.get(owner=alice)
    edit = alice_client.get(reverse("cast:edit", args=[character.pk]))
    data = {k: v for k, v in edit.context["form"].initial.items() if v is not None}
    data["mood"] = "seasick"
    assert alice_client.post(reverse("cast:edit", args=[character.pk]), data).status_code == 302
    card = json.loads(export(alice_client, character, "v3.json").content)
    assert card["data"]["extensions"]["other_tool"] == {"x": [1, 2]}
    assert card["data"]["extensions"]["personaweb"]["mood"] == "seasick"
    assert card["data"]["creator"] == "tester"
