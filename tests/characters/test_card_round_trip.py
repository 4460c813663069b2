"""Community cards, in the form they were written for, out and back in whole.

The cards here are written in the community's style (none taken from elsewhere): narrated, with
`*actions*` throughout, long greetings of several paragraphs, example dialogue in the description
as `<START>` blocks, `{{char}}` / `{{user}}` / `<BOT>` / `<USER>` macros, bracketed metadata
lines, a four-entry character_book, alternate greetings, tags, creator notes and another tool's
extension. Each goes in, out and in again, as V2 and V3, JSON and PNG, and must come back the
same sheet, field by field; the exported file must be what SillyTavern reads back whole: the
example dialogue with its user turns, the V1 fields at the top level, a named book whose V3
entries carry `use_regex`.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from personaweb.cast.forms import CharacterForm, initial_from_sheet
from personaweb.cast.models import Lorebook
from personaweb.characters import png
from personaweb.characters.cards import (
    CardError,
    card_to_json,
    card_to_png,
    examples_for_card,
    format_examples,
    lines_elsewhere,
    parse_card,
    sheet_to_card,
)
from personaweb.characters.lorebook import normalise_book, read_book
from personaweb.characters.sheet import MAX_MES_EXAMPLE, CharacterError, CharacterSheet
from tests.cardkit import lore_entry

NAME = "Isolde Wrenn"

DESCRIPTION = (
    "[Genre: fantasy; Scenario: a storm at sea]\n"
    "[{{char}}'s personality: wry, watchful, loyal to her crew]\n"
    "{{char}} is the captain of the *Kestrel*, a cutter that runs salt and secrets between the "
    "marsh towns. She is forty, weathered, and tired of men who think the sea owes them "
    "anything.\n"
    "\n"
    "*She keeps a knife in her boot and a ledger in her coat, and she trusts neither to anyone "
    "else.*\n"
    "<START>\n"
    "{{user}}: Where are we headed?\n"
    "{{char}}: *She taps the chart without looking at it.* Wherever the wind lets us, sailor.\n"
    "[{{char}}'s clothes: an oilskin coat, salt-stiff]\n"
    "<START>\n"
    "<USER>: Can I trust you?\n"
    "<BOT>: *A short laugh.* Trust the tide, {{user}}. It comes back.\n"
)

FIRST_MES = (
    "*The storm found the Kestrel an hour past midnight. Rain comes sideways across the deck, "
    "and {{char}} stands at the wheel as if the weather were a rude guest she has decided to "
    "ignore.*\n"
    "\n"
    "*She sees {{user}} clinging to the mainmast and raises her voice over the wind.* You! "
    "The new hand! If you're going to be sick, do it to leeward.\n"
    "\n"
    "*A wave breaks over the bow. She doesn't flinch.* And when you're done, take the "
    "second line. We're not losing the jib tonight."
)

MES_EXAMPLE = (
    "<START>\n"
    "<USER>: Who are you?\n"
    "<BOT>: *She doesn't look up from the ledger.* Someone busy. Next question.\n"
    "<START>\n"
    "{{user}}: Why do you keep the ledger?\n"
    "{{char}}: *She closes it, slowly.* Because the sea forgets, and I don't.\n"
    "*She tucks it back inside her coat.* Every debt, {{user}}. Every name.\n"
    "<START>\n"
    "{{user}}: *offers her a flask*\n"
    "{{char}}: *She takes it, drinks, hands it back.* You'll do.\n"
)
CHARACTER_LINES = [
    "*She doesn't look up from the ledger.* Someone busy. Next question.",
    "*She closes it, slowly.* Because the sea forgets, and I don't.\n"
    "*She tucks it back inside her coat.* Every debt, {{user}}. Every name.",
    "*She takes it, drinks, hands it back.* You'll do.",
]


def atlas() -> dict[str, Any]:
    """Four entries, as a V2 card often has them: no `use_regex` (V2 has none)."""
    return {
        "name": "Saltmarsh Atlas",
        "description": "The marsh towns and their debts.",
        "scan_depth": 3,
        "token_budget": 500,
        "recursive_scanning": True,
        "extensions": {"other_tool": {"kept": True}},
        "entries": [
            lore_entry(["ledger"], "{{char}}'s ledger holds every debt owed to the Kestrel.", id=1),
            lore_entry(
                ["Greyhaven", "grey haven"],
                "Greyhaven: a salt town on stilts, ruled by the Tithe Guild.",
                id=2,
                comment="a place",
                selective=True,
                secondary_keys=["guild"],
                position="after_char",
            ),
            lore_entry([], "It is the wet season; storms come every night.", id=3, constant=True),
            lore_entry(
                ["mutiny"], "An old wound: {{char}} was mutinied on, once.", id=4, enabled=False
            ),
        ],
    }


def st_extensions() -> dict[str, Any]:
    """SillyTavern's own extension keys, and another tool's."""
    return {
        "talkativeness": "0.7",
        "fav": False,
        "world": "Saltmarsh Atlas",
        "depth_prompt": {"prompt": "{{char}} never apologises.", "depth": 4, "role": "system"},
        "chub": {"full_path": "someone/isolde-wrenn", "id": 4242, "expressions": None},
    }


def v2_card(**data: Any) -> dict[str, Any]:
    """A V2 card as SillyTavern writes it: the V1 fields at the top level too."""
    fields: dict[str, Any] = {
        "name": NAME,
        "description": DESCRIPTION,
        "personality": "Wry and watchful; {{char}} gives {{user}} nothing for free.",
        "scenario": "A storm at sea. {{user}} signed on to the Kestrel two days ago.",
        "first_mes": FIRST_MES,
        "mes_example": MES_EXAMPLE,
        "creator_notes": "Slow-burn. She warms up to {{user}} only if earned.\n\nV2 of the card.",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [
            "*Dawn. The storm is gone, and so is the jib.* Well, {{user}}. You're still here.\n\n"
            "*She throws a coil of rope at your feet.* Splice that.",
            "*The tavern in Greyhaven is loud. {{char}} sits alone, the ledger open.* "
            "You're blocking my light.",
        ],
        "tags": ["female", "sea", "fantasy", "slow burn"],
        "creator": "someone",
        "character_version": "2",
        "character_book": atlas(),
        "extensions": st_extensions(),
    }
    fields.update(data)
    return {
        "name": fields["name"],
        "description": fields["description"],
        "personality": fields["personality"],
        "scenario": fields["scenario"],
        "first_mes": fields["first_mes"],
        "mes_example": fields["mes_example"],
        "creatorcomment": fields["creator_notes"],
        "avatar": "none",
        "talkativeness": "0.7",
        "fav": False,
        "tags": list(fields["tags"]),
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": fields,
        "create_date": "2024-5-4 @17h 02m 11s 003ms",
    }


def v3_card(**data: Any) -> dict[str, Any]:
    """The same character as a V3 card: group greetings, V3's own fields, `use_regex` on each
    entry (one of them a regex)."""
    card = v2_card(**data)
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    book = card["data"]["character_book"]
    for item in book["entries"]:
        item["use_regex"] = False
    book["entries"][3]["use_regex"] = True
    book["entries"][3]["keys"] = ["/mutin(y|ied)/i"]
    card["data"].update(
        group_only_greetings=["*{{char}} counts heads on deck.* {{group}}. All here. Good."],
        nickname="the Captain",
        creator_notes_multilingual={"fr": "Lente. Elle se réchauffe lentement."},
        source=["https://example.invalid/isolde"],
        assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        creation_date=1714842131,
        modification_date=1714842199,
    )
    return card


def to_bytes(card: dict[str, Any], container: str) -> bytes:
    if container == "json":
        return json.dumps(card, ensure_ascii=False, indent=4).encode()
    entries = {}
    if card["spec"] == "chara_card_v3":
        # As SillyTavern writes a V3 PNG: the V3 card in `ccv3`, a V2 one in `chara`.
        v2 = {**copy.deepcopy(card), "spec": "chara_card_v2", "spec_version": "2.0"}
        entries["chara"] = base64.b64encode(json.dumps(v2).encode()).decode()
        entries["ccv3"] = base64.b64encode(json.dumps(card).encode()).decode()
    else:
        entries["chara"] = base64.b64encode(json.dumps(card).encode()).decode()
    return png.with_text(png.solid_avatar("a portrait", size=8), entries)


def cards_in(data: bytes) -> list[dict[str, Any]]:
    """Every card a file carries: the JSON, or each card chunk of a PNG."""
    if not png.is_png(data):
        return [json.loads(data)]
    chunks = png.text_chunks(png.read_chunks(data))
    return [json.loads(base64.b64decode(chunks[k])) for k in ("ccv3", "chara") if k in chunks]


def exported(sheet: CharacterSheet, version: int, container: str) -> bytes:
    if container == "json":
        return card_to_json(sheet, version)
    return card_to_png(sheet, version)


V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")


def assert_mirrors_data(card: dict[str, Any], sheet: CharacterSheet) -> None:
    """The V1 fields SillyTavern writes and reads beside `data`, equal to data's."""
    data = card["data"]
    for key in V1_FIELDS:
        assert card[key] == data[key], key
    assert card["creatorcomment"] == data["creator_notes"]
    assert card["tags"] == data["tags"]
    assert card["talkativeness"] == sheet.talkativeness
    assert card["avatar"] == "none" and card["fav"] is False


FORMATS = [(2, "json"), (3, "json"), (2, "png"), (3, "png")]


@pytest.mark.parametrize(("version", "container"), FORMATS)
def test_a_community_card_goes_out_and_back_in_whole(version: int, container: str) -> None:
    source = v3_card() if version == 3 else v2_card()
    filename = f"isolde.{container}"
    first = parse_card(to_bytes(source, container), filename)
    # Read as written: the example dialogue kept, its character lines the sample lines.
    assert first.mes_example == MES_EXAMPLE
    assert first.sample_lines == CHARACTER_LINES
    assert first.greeting == FIRST_MES and first.description == DESCRIPTION
    assert first.creator_notes == source["data"]["creator_notes"]
    assert first.talkativeness == 0.7
    # The top-level V1 fields are SillyTavern's mirror of data, nothing unknown to keep.
    assert set(first.card_extras) <= {
        "creator",
        "character_version",
        "nickname",
        "creator_notes_multilingual",
        "source",
        "assets",
        "creation_date",
        "modification_date",
    }

    out = exported(first, version, container)
    again = parse_card(out, filename)
    for field in dataclasses.fields(CharacterSheet):
        assert getattr(again, field.name) == getattr(first, field.name), field.name
    assert again == first

    carried = cards_in(out)
    assert len(carried) == (2 if (version, container) == (3, "png") else 1)
    for card in carried:
        data = card["data"]
        # Byte for byte, user turns and all.
        assert data["mes_example"].encode() == MES_EXAMPLE.encode()
        assert "<USER>: Who are you?" in data["mes_example"]
        assert_mirrors_data(card, first)
        book = data["character_book"]
        assert book["name"] == "Saltmarsh Atlas"
        assert all(isinstance(item["use_regex"], bool) for item in book["entries"])
        # Everything the card carried is there as it came (the book completed, see above).
        for key, value in source["data"].items():
            if key == "extensions":
                assert {k: v for k, v in data[key].items() if k != "personaweb"} == value
            elif key == "character_book":
                assert {**value, "entries": None} == {**book, "entries": None}
                for theirs, ours in zip(value["entries"], book["entries"], strict=True):
                    assert ours == {"use_regex": False, **theirs}
            else:
                assert data[key] == value, key
    if version == 3:
        regex = [e for e in carried[0]["data"]["character_book"]["entries"] if e["use_regex"]]
        assert [e["keys"] for e in regex] == [["/mutin(y|ied)/i"]]


@pytest.mark.parametrize(("version", "container"), FORMATS)
def test_a_card_without_the_top_level_fields_exports_with_them(
    version: int, container: str
) -> None:
    bare = v2_card()
    card = {"spec": bare["spec"], "spec_version": bare["spec_version"], "data": bare["data"]}
    sheet = parse_card(to_bytes(card, container), f"bare.{container}")
    for out in cards_in(exported(sheet, version, container)):
        assert_mirrors_data(out, sheet)
        assert out["mes_example"] == MES_EXAMPLE


def test_the_top_level_fields_are_not_kept_as_unknown_data() -> None:
    sheet = parse_card(json.dumps(v2_card()).encode(), "isolde.json")
    data = sheet_to_card(sheet, 2)["data"]
    for key in ("creatorcomment", "avatar", "fav", "create_date", "spec", "chat"):
        assert key not in data and key not in sheet.card_extras


def test_data_is_what_counts_when_the_top_level_disagrees() -> None:
    card = v2_card()
    card["description"], card["mes_example"] = "Stale.", ""
    sheet = parse_card(json.dumps(card).encode(), "isolde.json")
    assert sheet.description == DESCRIPTION and sheet.mes_example == MES_EXAMPLE


def test_a_v1_card_has_its_sillytavern_fields_read_not_kept() -> None:
    v1 = {
        "name": "Old Bones",
        "description": "A *very* old sailor.",
        "personality": "",
        "scenario": "",
        "first_mes": "*He spits.* What.",
        "mes_example": "<START>\n{{user}}: Hello?\n{{char}}: *grunts* Go away.",
        "creatorcomment": "From the old days.",
        "avatar": "none",
        "chat": "Old Bones - 2023-1-1 @10h 00m 00s 000ms",
        "talkativeness": "0.8",
        "fav": True,
        "tags": ["old"],
        "create_date": "2023-1-1 @10h 00m 00s 000ms",
        "some_tool_field": "kept",
    }
    sheet = parse_card(json.dumps(v1).encode(), "old.json")
    assert sheet.creator_notes == "From the old days." and sheet.talkativeness == 0.8
    assert sheet.card_extras == {"some_tool_field": "kept"}
    assert sheet.mes_example == v1["mes_example"] and sheet.sample_lines == ["*grunts* Go away."]
    for version in (2, 3):
        card = sheet_to_card(sheet, version)
        assert card["mes_example"] == card["data"]["mes_example"] == v1["mes_example"]
        assert card["creatorcomment"] == "From the old days."
        assert "creatorcomment" not in card["data"] and "chat" not in card["data"]
        assert parse_card(json.dumps(card).encode(), "old.json") == sheet


# --- the example dialogue, kept and regenerated ------------------------------------------------


def imported() -> CharacterSheet:
    return parse_card(json.dumps(v2_card()).encode(), "isolde.json")


def test_edited_sample_lines_export_a_new_mes_example_from_them() -> None:
    sheet = imported()
    edited = sheet.with_changes(sample_lines=["*She shrugs.* Sea's the sea.", *CHARACTER_LINES])
    assert examples_for_card(edited) == format_examples(edited.sample_lines)
    for version in (2, 3):
        card = sheet_to_card(edited, version)
        assert card["data"]["mes_example"] == format_examples(edited.sample_lines)
        assert card["mes_example"] == card["data"]["mes_example"]
        assert "<USER>" not in card["mes_example"]  # the old user turns went with the old text
        again = parse_card(json.dumps(card).encode(), "isolde.json")
        assert again.sample_lines == edited.sample_lines
        # What export writes from the sample lines is not kept: it is written again anyway.
        assert again.mes_example == ""
    # Unedited, the text goes out as it came.
    assert examples_for_card(sheet) == MES_EXAMPLE


def test_an_edit_on_the_form_keeps_the_example_dialogue() -> None:
    sheet = imported()
    data = {k: v for k, v in initial_from_sheet(sheet).items() if v is not None}
    data["personality"] = "Wry. Watchful. Softer than she lets on."
    form = CharacterForm(data, base=sheet)
    assert form.is_valid(), form.errors
    assert form.sheet is not None
    assert form.sheet.mes_example == MES_EXAMPLE
    # The multi-line sample line shows as two lines in the box, and stays one.
    assert form.sheet.sample_lines == CHARACTER_LINES
    assert sheet_to_card(form.sheet)["data"]["mes_example"] == MES_EXAMPLE
    # Changing the sample lines box is an edit of the lines: a new text is written from them.
    data["sample_lines"] = "Aye.\nNo."
    form = CharacterForm(data, base=sheet)
    assert form.is_valid(), form.errors
    assert form.sheet is not None and form.sheet.sample_lines == ["Aye.", "No."]
    assert sheet_to_card(form.sheet)["data"]["mes_example"] == format_examples(["Aye.", "No."])


def test_a_renamed_character_still_writes_its_named_example_dialogue() -> None:
    text = f"<START>\n{{{{user}}}}: Hi.\n{NAME}: *nods* Hi yourself.\n"
    sheet = parse_card(json.dumps(v2_card(mes_example=text)).encode(), "isolde.json")
    assert sheet.sample_lines == ["*nods* Hi yourself."]
    renamed = sheet.with_changes(name=f"{NAME} (2)")  # as an import numbers a taken name
    assert examples_for_card(renamed) == text
    assert parse_card(card_to_json(renamed), "x.json") == renamed


def test_a_sheet_stored_before_the_field_still_loads_and_exports() -> None:
    stored = imported().to_dict()
    del stored["mes_example"]
    sheet = CharacterSheet.from_dict(stored)
    assert sheet.mes_example == ""
    assert sheet_to_card(sheet)["data"]["mes_example"] == format_examples(CHARACTER_LINES)


def test_example_dialogue_over_its_limit_is_refused_with_the_reason() -> None:
    huge = "<START>\n{{user}}: " + "x" * MAX_MES_EXAMPLE + "\n{{char}}: Hm."
    with pytest.raises(CardError, match=r"^big\.json: mes_example: .* at most"):
        parse_card(json.dumps(v2_card(mes_example=huge)).encode(), "big.json")
    with pytest.raises(CardError, match=r"mes_example: .*NUL"):
        parse_card(json.dumps(v2_card(mes_example="{{user}}: a\x00b")).encode(), "nul.json")
    # The sheet's own check, for every other way in (the API, stored sheets).
    with pytest.raises(CharacterError, match=r"^mes_example: .*NUL"):
        CharacterSheet.from_dict({"name": NAME, "mes_example": "{{user}}: a\x00b"})
    with pytest.raises(CharacterError, match=r"^mes_example: must be text"):
        CharacterSheet.from_dict({"name": NAME, "mes_example": ["<START>"]})


# --- the description offer ---------------------------------------------------------------------


def test_bracketed_metadata_lines_are_never_offered_as_sample_lines() -> None:
    sheet = imported()
    found = [f.line for f in lines_elsewhere(sheet)]
    assert found == [
        "*She taps the chart without looking at it.* Wherever the wind lets us, sailor.",
        "*A short laugh.* Trust the tide, {{user}}. It comes back.",
    ]
    # Without <START> blocks too, and a bracketed "line" of the character's own.
    plain = CharacterSheet(
        name=NAME,
        description=(
            "[Genre: fantasy; Scenario: a storm at sea]\n"
            "{{char}}: *squints at the sky* Weather's turning.\n"
            "[{{char}}'s personality: wry, watchful]\n"
            "{{char}}: [{{char}}'s looks: tall, grey-eyed]\n"
        ),
    )
    assert [f.line for f in lines_elsewhere(plain)] == ["*squints at the sky* Weather's turning."]


# --- lorebooks -----------------------------------------------------------------------------------


def test_a_cards_book_without_a_name_is_exported_with_one() -> None:
    book = atlas()
    del book["name"]
    sheet = parse_card(json.dumps(v2_card(character_book=book)).encode(), "isolde.json")
    for version in (2, 3):
        card = sheet_to_card(sheet, version)
        assert card["data"]["character_book"]["name"] == f"{NAME}'s lorebook"
        assert parse_card(json.dumps(card).encode(), "isolde.json") == sheet


def test_a_v3_export_gives_every_entry_use_regex() -> None:
    # A sheet stored otherwise than by a card import (an old one, or made over the API).
    sheet = CharacterSheet(name=NAME, character_book=atlas())
    entries = sheet_to_card(sheet, 3)["data"]["character_book"]["entries"]
    assert [e["use_regex"] for e in entries] == [False] * 4
    assert sheet.character_book == atlas()  # the stored book is not changed by an export


@pytest.mark.django_db
def test_an_exported_standalone_lorebook_imports_back_whole_with_its_name(alice, bob) -> None:
    book = atlas()
    del book["name"]  # a file with no name: it is named after the file
    alice_client, bob_client = Client(), Client()
    alice_client.force_login(alice)
    bob_client.force_login(bob)

    def upload(client: Client, filename: str, data: bytes) -> Any:
        file = SimpleUploadedFile(filename, data, content_type="application/json")
        return client.post(reverse("cast:lorebook_import"), {"book": file})

    assert upload(alice_client, "Saltmarsh.json", json.dumps(book).encode()).status_code == 302
    stored = Lorebook.objects.get(owner=alice)
    assert stored.name == "Saltmarsh"
    body = alice_client.get(reverse("cast:lorebook_export", args=[stored.pk])).content
    file = json.loads(body)
    assert file["name"] == "Saltmarsh"
    assert all(e["use_regex"] is False for e in file["entries"])
    # The same import path as the page's: the file is a book, and its name comes with it.
    assert normalise_book(file) == file and read_book(file, "whatever").name == "Saltmarsh"
    # Shared with someone else and imported there (as a file named otherwise): the same book.
    assert upload(bob_client, "lorebook-1.json", body).status_code == 302
    theirs = Lorebook.objects.get(owner=bob)
    assert theirs.name == "Saltmarsh"
    assert theirs.data == file == {**stored.data, "name": "Saltmarsh", "entries": file["entries"]}
    for original, came_back in zip(book["entries"], theirs.data["entries"], strict=True):
        assert came_back == {**original, "use_regex": False}
