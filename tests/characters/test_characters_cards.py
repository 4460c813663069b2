"""Character Cards V2/V3 as JSON and PNG: round trips, unknown data kept, bad input refused."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from typing import Any

import pytest

from personaweb.characters import png
from personaweb.characters.cards import (
    MAX_CARD_BYTES,
    CardError,
    card_to_json,
    card_to_png,
    parse_card,
    parse_examples,
    sheet_to_card,
)
from personaweb.characters.sheet import CharacterSheet
from personaweb.llm.types import LLMProfile


@pytest.fixture
def sheet() -> CharacterSheet:
    return CharacterSheet(
        name="Bess Tolliver",
        description="Quartermaster of a pirate brigantine.",
        personality="Shrewd and loud.",
        mood="Suspicious.",
        goals=["Count the rum.", "Share the plunder fair."],
        sample_lines=["Ahoy, ye bilge rat!", "Shares be shares.\nNo more, no less."],
        greeting="State yer business.",
        strategy="linear",
        profiles={"responder": LLMProfile(model="m", temperature=0.9, max_tokens=99)},
        talkativeness=0.8,
        tags=["pirate"],
        scenario="On deck at dawn.",
        creator_notes="For tests.",
    ).validate()


def card_json(card: dict[str, Any]) -> bytes:
    return json.dumps(card).encode()


def png_with(entries: dict[str, bytes]) -> bytes:
    """A valid PNG carrying the given raw tEXt payloads."""
    chunks = png.read_chunks(png.solid_avatar("x", size=4))
    extra = [png.Chunk(b"tEXt", k.encode() + b"\x00" + v) for k, v in entries.items()]
    return png.write_chunks([*chunks[:-1], *extra, chunks[-1]])


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("container", ["json", "png"])
def test_a_sheet_survives_a_round_trip(sheet: CharacterSheet, version: int, container: str) -> None:
    if container == "json":
        data, filename = card_to_json(sheet, version), "bess.json"
    else:
        data, filename = card_to_png(sheet, version), "bess.png"
    assert parse_card(data, filename) == sheet


def test_the_card_uses_the_standard_fields(sheet: CharacterSheet) -> None:
    card = json.loads(card_to_json(sheet, 3))
    assert card["spec"] == "chara_card_v3"
    assert card["spec_version"] == "3.0"
    data = card["data"]
    assert data["name"] == "Bess Tolliver"
    assert data["first_mes"] == "State yer business."
    assert data["scenario"] == "On deck at dawn."
    assert data["mes_example"].startswith("<START>\n{{char}}: Ahoy, ye bilge rat!")
    assert data["group_only_greetings"] == []
    ours = data["extensions"]["personaweb"]
    assert ours["strategy"] == "linear"
    assert ours["profiles"]["responder"]["temperature"] == 0.9
    v2 = json.loads(card_to_json(sheet, 2))
    assert v2["spec"] == "chara_card_v2"
    assert "group_only_greetings" not in v2["data"]


@pytest.mark.parametrize("version", [2, 3])
def test_unknown_extensions_and_data_keys_survive_import_then_export(version: int) -> None:
    foreign: dict[str, Any] = {
        "spec": "chara_card_v3" if version == 3 else "chara_card_v2",
        "spec_version": "3.0" if version == 3 else "2.0",
        "data": {
            "name": "Foreign",
            "description": "Made elsewhere.",
            "personality": "",
            "scenario": "",
            "first_mes": "Hi.",
            "mes_example": "<START>\n{{user}}: Hello\n{{char}}: Well met.\n<START>\n"
            "Foreign: Second line\ncontinued here.",
            "creator": "someone",
            "character_version": "7",
            "character_book": {"entries": [{"keys": ["ship"], "content": "A boat."}]},
            "alternate_greetings": ["Yo."],
            "some_future_field": {"nested": [1, 2, 3]},
            "tags": ["a", "b"],
            "extensions": {"depth_prompt": {"depth": 4, "prompt": "p"}, "fav": True},
        },
    }
    sheet = parse_card(card_json(foreign), "foreign.json")
    assert sheet.sample_lines == ["Well met.", "Second line\ncontinued here."]
    assert sheet.greeting == "Hi."
    for exported in (card_to_json(sheet, version), card_to_png(sheet, version)):
        data = json.loads(exported) if exported[:1] == b"{" else _png_card(exported, version)
        data = data["data"]
        for key in ("creator", "character_version", "alternate_greetings", "mes_example"):
            assert data[key] == foreign["data"][key]
        # The book as it came, with the name and `use_regex` V3 requires of it.
        assert data["character_book"] == {
            "name": "Foreign's lorebook",
            "entries": [{"keys": ["ship"], "content": "A boat.", "use_regex": False}],
        }
        assert data["some_future_field"] == {"nested": [1, 2, 3]}
        assert data["extensions"]["depth_prompt"] == {"depth": 4, "prompt": "p"}
        assert data["extensions"]["fav"] is True
        assert parse_card(exported) == sheet


def _png_card(data: bytes, version: int) -> dict[str, Any]:
    keyword = "ccv3" if version == 3 else "chara"
    entries = png.text_chunks(png.read_chunks(data))
    card: dict[str, Any] = json.loads(base64.b64decode(entries[keyword]))
    return card


def test_ccv3_is_preferred_when_both_chunks_are_present(sheet: CharacterSheet) -> None:
    old = sheet_to_card(sheet.with_changes(name="Old Name", slug="old_name"), 2)
    new = sheet_to_card(sheet.with_changes(name="New Name", slug="new_name"), 3)
    # chara first in the file, so a reader taking the first chunk would get it wrong.
    data = png_with(
        {
            "chara": base64.b64encode(json.dumps(old).encode()),
            "ccv3": base64.b64encode(json.dumps(new).encode()),
        }
    )
    assert parse_card(data, "both.png").name == "New Name"


def test_a_v3_png_also_carries_a_v2_card_for_older_readers(sheet: CharacterSheet) -> None:
    entries = png.text_chunks(png.read_chunks(card_to_png(sheet, 3)))
    assert json.loads(base64.b64decode(entries["chara"]))["spec"] == "chara_card_v2"
    assert json.loads(base64.b64decode(entries["ccv3"]))["spec"] == "chara_card_v3"


def test_export_into_a_given_png_replaces_stale_cards_and_keeps_the_image(
    sheet: CharacterSheet,
) -> None:
    stale = card_to_png(sheet.with_changes(name="Stale", slug="stale"), 3)
    fresh = card_to_png(sheet, 2, image=stale)
    entries = png.text_chunks(png.read_chunks(fresh))
    assert "ccv3" not in entries  # a stale ccv3 would win over the new chara
    assert parse_card(fresh).name == "Bess Tolliver"
    idat = [c for c in png.read_chunks(fresh) if c.type == b"IDAT"]
    assert idat == [c for c in png.read_chunks(stale) if c.type == b"IDAT"]


def test_the_generated_avatar_is_a_decodable_64px_image(sheet: CharacterSheet) -> None:
    chunks = png.read_chunks(card_to_png(sheet))
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0].data[:10])
    assert (width, height, depth, colour) == (64, 64, 8, 2)
    pixels = zlib.decompress(b"".join(c.data for c in chunks if c.type == b"IDAT"))
    assert len(pixels) == 64 * (1 + 64 * 3)


def test_a_v1_card_is_read() -> None:
    v1 = {"name": "Oldie", "description": "d", "first_mes": "hey", "mes_example": ""}
    sheet = parse_card(card_json(v1))
    assert (sheet.name, sheet.greeting, sheet.slug) == ("Oldie", "hey", "oldie")


def test_mes_example_parsing_handles_bot_tags_and_user_turns() -> None:
    text = "<START>\n<USER>: hi\n<BOT>: first\n{{user}}: again\n{{CHAR}}: second\nmore"
    assert parse_examples(text) == ["first", "second\nmore"]


def _valid_png(sheet: CharacterSheet) -> bytes:
    return card_to_png(sheet)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s: b"not json at all", "not valid JSON"),
        (lambda s: b"\xff\xfe\x00garbage", "not UTF-8"),
        (lambda s: b"[1, 2, 3]", "must be a JSON object"),
        (lambda s: card_json({"spec": "chara_card_v9", "data": {"name": "x"}}), "unsupported"),
        (lambda s: card_json({"spec": "chara_card_v2", "data": "nope"}), "no 'data'"),
        (lambda s: card_json({"spec": "chara_card_v2", "data": {"name": ""}}), "no name"),
        (lambda s: card_json({"spec": "chara_card_v2", "data": {}}), "no name"),
        (
            lambda s: card_json({"spec": "chara_card_v2", "data": {"name": "x", "tags": "a"}}),
            "tags",
        ),
        (lambda s: png_with({"chara": b"!!!not-base64!!!"}), "not valid base64"),
        (lambda s: png_with({"chara": base64.b64encode(b"{broken")}), "not valid JSON"),
        (lambda s: png_with({"comment": b"hello"}), "no character card"),
        (lambda s: _valid_png(s)[:-20], "truncated"),
        (lambda s: _valid_png(s)[:40], "truncated"),
        (lambda s: png.SIGNATURE, "truncated"),
    ],
)
def test_malformed_cards_are_refused(sheet: CharacterSheet, make: Any, message: str) -> None:
    with pytest.raises(CardError, match=message):
        parse_card(make(sheet))


def test_a_png_with_a_bad_crc_is_refused(sheet: CharacterSheet) -> None:
    data = bytearray(card_to_png(sheet))
    data[40] ^= 0xFF  # inside the IHDR/IDAT region, after the signature
    with pytest.raises(CardError, match="bad CRC"):
        parse_card(bytes(data), "avatar.png")


def test_a_png_name_without_png_bytes_is_refused(sheet: CharacterSheet) -> None:
    with pytest.raises(CardError, match=r"^fake\.png: .*not a PNG"):
        parse_card(card_to_json(sheet), "fake.png")


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(CardError, match="at most"):
        parse_card(b" " * (MAX_CARD_BYTES + 1), "huge.json")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"description": "x" * 8001}, "description"),
        ({"name": "n" * 81}, "name"),
        ({"mes_example": "<START>\n{{char}}: " + "x" * 1001}, "sample_lines[0]"),
        ({"mes_example": "\n".join(["{{char}}: hi"] * 201)}, "sample_lines"),
        ({"extensions": {"personaweb": {"strategy": "psychic"}}}, "strategy"),
        (
            {"extensions": {"personaweb": {"profiles": {"responder": {"temperature": 9}}}}},
            "profiles.responder.temperature",
        ),
    ],
)
def test_fields_over_the_sheet_limits_are_refused(data: dict[str, Any], field: str) -> None:
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "x", **data}}
    with pytest.raises(CardError, match="^big\\.json: " + re.escape(field) + ":"):
        parse_card(card_json(card), "big.json")


def test_export_refuses_an_unknown_version(sheet: CharacterSheet) -> None:
    with pytest.raises(ValueError, match="2 or 3"):
        card_to_json(sheet, 4)


def test_export_into_something_that_is_not_a_png_is_refused(sheet: CharacterSheet) -> None:
    with pytest.raises(CardError, match="image: not a PNG"):
        card_to_png(sheet, image=b"GIF89a...")
