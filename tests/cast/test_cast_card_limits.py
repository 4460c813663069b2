"""Cards that Python's json reads but nothing can store or write back are refused clearly, and
whatever PersonaWeb stores, it can export and import back: the largest allowed card round-trips
as PNG and as JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from personaweb.cast.store import sheet_of
from personaweb.characters import parse_card, png
from personaweb.characters.cards import (
    EXPORT_HEADROOM,
    MAX_CARD_BYTES,
    CardError,
    card_to_json,
    card_to_png,
    export_size,
)
from personaweb.characters.sheet import CharacterSheet
from personaweb.web.models import Character
from tests.cardkit import as_json, as_png, community_card

pytestmark = pytest.mark.django_db

FORMATS = ("v2.json", "v3.json", "v2.png", "v3.png")


def upload(client: Client, name: str, data: bytes) -> Any:
    kind = "image/png" if name.endswith(".png") else "application/json"
    file = SimpleUploadedFile(name, data, content_type=kind)
    return client.post(reverse("cast:import"), {"card": file})


def raw_card(data_json: str) -> bytes:
    """A V2 card whose `data` object is the given JSON text (so it can hold what json.dumps
    would not write)."""
    return b'{"spec": "chara_card_v2", "spec_version": "2.0", "data": ' + data_json.encode() + b"}"


# --- values nothing can store -------------------------------------------------------------------

BAD = [
    ('{"name": "\\ud800"}', "name: holds a lone surrogate (U+D800)"),
    ('{"name": "Ok", "description": "a \\udfff b"}', "description: holds a lone surrogate"),
    ('{"name": "Ok", "extensions": {"x": ["\\ud800"]}}', "data.extensions.x[0]: holds a lone"),
    (
        '{"name": "Ok", "character_book": {"entries": [{"keys": ["k"], "content": "\\ud83d"}]}}',
        "data.character_book.entries[0].content: holds a lone surrogate",
    ),
    ('{"name": "Ok", "extensions": {"\\ud800": 1}}', "(a key): holds a lone surrogate"),
    ('{"name": "Ok", "extensions": {"talkativeness": NaN}}', "NaN is not a number JSON allows"),
    ('{"name": "Ok", "extensions": {"w": Infinity}}', "Infinity is not a number JSON allows"),
    ('{"name": "Ok", "extensions": {"w": -Infinity}}', "-Infinity is not a number JSON allows"),
    ('{"name": "Ok", "extensions": {"w": 1e400}}', "the number 1e400 is too large"),
    ('{"name": "Ok", "creator": "a\\u0000b"}', "holds a NUL character"),
    ('{"name": "Ok", "extensions": {"n": ' + "9" * 5000 + "}}", "not valid JSON"),
    ('{"name": "Ok", "extensions": ' + "[" * 100 + "]" * 100 + "}", "nested more than 64"),
]


@pytest.mark.parametrize("container", ["json", "png"])
@pytest.mark.parametrize(("data", "reason"), BAD)
def test_a_card_nothing_could_store_is_a_clear_400_and_creates_nothing(
    alice_client, alice, container, data, reason
):
    body = raw_card(data)
    if container == "png":
        import base64

        body = png.with_text(png.solid_avatar("x"), {"chara": base64.b64encode(body).decode()})
    response = upload(alice_client, f"bad.{container}", body)
    page = response.content.decode()
    assert response.status_code == 400
    assert "Import refused:" in page
    assert reason.replace("'", "&#x27;") in page, page[page.index("Import refused") :][:300]
    assert not Character.objects.exists()


def test_a_valid_surrogate_pair_is_just_an_emoji(alice_client, alice):
    response = upload(alice_client, "ok.json", raw_card('{"name": "Sm\\ud83d\\ude00le"}'))
    assert response.status_code == 302
    character = Character.objects.get(owner=alice)
    assert character.name == "Sm\U0001f600le"
    for fmt in FORMATS:
        assert alice_client.get(reverse("cast:export", args=[character.pk, fmt])).status_code == 200


# --- round trips at the limit ------------------------------------------------------------------


def padded(size_wanted: int, picture: bytes | None = None) -> CharacterSheet:
    """The community card with kept data padded so that its largest export is as close to
    `size_wanted` bytes as the padding allows, without going over."""
    base = parse_card(as_json(community_card()), "mira.json")

    def sheet(pad: int) -> CharacterSheet:
        return base.with_changes(card_extras={**base.card_extras, "padding": "p" * pad})

    low, high = 0, size_wanted
    while low < high:  # the largest padding whose export still fits
        middle = (low + high + 1) // 2
        if export_size(sheet(middle), picture) <= size_wanted:
            low = middle
        else:
            high = middle - 1
    return sheet(low)


LARGEST = MAX_CARD_BYTES - EXPORT_HEADROOM
"""The largest export a stored character may have."""


def test_the_largest_allowed_card_round_trips_as_png_and_json(alice_client, alice):
    largest = padded(LARGEST)
    assert LARGEST - 8 <= export_size(largest) <= LARGEST
    # In as JSON (the smallest way in), then out in every format and back in again.
    assert upload(alice_client, "big.json", card_to_json(largest, 3)).status_code == 302
    character = Character.objects.get(owner=alice)
    for fmt in FORMATS:
        body = alice_client.get(reverse("cast:export", args=[character.pk, fmt])).content
        assert len(body) <= MAX_CARD_BYTES, fmt
        assert parse_card(body, f"x.{fmt.split('.')[1]}").to_dict() == sheet_of(character).to_dict()
    # The largest file of all, the V3 PNG, imports through the view too, even into the same
    # account, where it must be renamed.
    body = alice_client.get(reverse("cast:export", args=[character.pk, "v3.png"])).content
    response = upload(alice_client, "big.png", body)
    assert response.status_code == 302, response.content.decode().split("Import refused")[-1][:400]
    again = Character.objects.filter(owner=alice).latest("pk")
    assert again.name == "Mira Vance (2)"
    assert sheet_of(again).card_extras["padding"] == largest.card_extras["padding"]


def test_a_card_that_would_export_too_large_is_refused_with_the_reason(alice_client, alice):
    over = padded(LARGEST)
    over = over.with_changes(
        card_extras={**over.card_extras, "padding": over.card_extras["padding"] + "p" * 8}
    )
    body = card_to_json(over, 2)
    assert len(body) < LARGEST < export_size(over)  # it fits in, but not back out
    response = upload(alice_client, "over.json", body)
    page = response.content.decode()
    assert response.status_code == 400
    size = export_size(over)
    assert (
        f"the character would export as a {size:,}-byte card file (8.0 MB), over the "
        f"{LARGEST:,} bytes that can be imported back (8.0 MB, less 2 KB kept for a rename"
    ) in page
    assert not Character.objects.exists()


def test_a_picture_too_large_to_go_back_out_is_dropped_not_the_card(alice_client, alice):
    # A big picture and a small card: the PNG fits the limit, its export (two card chunks
    # and the picture) would not. The card is kept, the picture is not, and the person is told.
    def with_picture(size: int) -> bytes:
        picture = png.write_chunks(
            [
                *png.read_chunks(png.solid_avatar("x"))[:-1],
                png.Chunk(b"tEXt", b"Comment\x00" + b"z" * size),
                png.Chunk(b"IEND", b""),
            ]
        )
        return as_png(community_card(), image=picture)

    small = len(with_picture(0))
    body = with_picture(MAX_CARD_BYTES - small - 100)
    assert MAX_CARD_BYTES - 200 < len(body) <= MAX_CARD_BYTES
    response = alice_client.post(
        reverse("cast:import"),
        {"card": SimpleUploadedFile("big.png", body, content_type="image/png")},
        follow=True,
    )
    assert "Its picture was not kept" in response.content.decode()
    character = Character.objects.get(owner=alice)
    assert character.avatar is None
    assert (
        len(alice_client.get(reverse("cast:export", args=[character.pk, "v3.png"])).content)
        < 100_000
    )


def test_an_edit_that_would_export_too_large_is_refused_and_saves_nothing(alice_client, alice):
    near = padded(LARGEST - 2_000)
    upload(alice_client, "near.json", card_to_json(near, 2))
    character = Character.objects.get(owner=alice)
    url = reverse("cast:edit", args=[character.pk])
    data = {k: v for k, v in alice_client.get(url).context["form"].initial.items() if v}
    data["description"] = "d" * 8000  # within the field's limit, over the export limit
    response = alice_client.post(url, data)
    assert response.status_code == 400
    assert "would export as a" in response.content.decode()
    character.refresh_from_db()
    assert sheet_of(character).description == near.description


def test_export_size_is_what_export_writes() -> None:
    sheet = parse_card(as_json(community_card()), "m.json")
    assert export_size(sheet) == max(
        len(card_to_png(sheet, 3)), len(card_to_json(sheet, 3)), len(card_to_json(sheet, 2))
    )
    assert len(card_to_png(sheet, 2)) < len(card_to_png(sheet, 3))


def test_a_sheet_holding_a_lone_surrogate_is_invalid_however_it_was_made() -> None:
    # Not only imports: every way in validates (a row edited by hand, a TOML file...).
    with pytest.raises(CardError):
        parse_card(json.dumps({"name": "x", "tags": ["\ud800"]}).encode())
    sheet = CharacterSheet(name="x", extensions={"k": float("nan")})
    with pytest.raises(ValueError, match=r"extensions\.k: nan is not a number"):
        sheet.validate()
