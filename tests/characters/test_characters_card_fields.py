"""The card fields the sheet now models (system prompt, post-history instructions, greetings,
lorebook): read from V2 and V3 cards, written back, chosen among, and promoted from sheets
stored before they were modelled."""

from __future__ import annotations

import json

import pytest

from personaweb.characters.cards import (
    card_to_json,
    lines_elsewhere,
    parse_card,
    sheet_from_card,
)
from personaweb.characters.greetings import NONE, choose, default_greeting, greetings_of
from personaweb.characters.sheet import CharacterError, CharacterSheet
from tests.cardkit import as_json, captain_book, community_card, v3_card


def test_a_v2_card_maps_its_prompt_fields_greetings_and_lorebook() -> None:
    sheet = parse_card(as_json(community_card()), "mira.json")
    assert sheet.system_prompt.startswith("{{original}} Write {{char}}'s next reply")
    assert sheet.post_history_instructions == "Stay as {{char}}; never speak for {{user}}."
    assert len(sheet.alternate_greetings) == 2 and sheet.group_greetings == []
    # The book as it came, each entry with the `use_regex` V3 requires (false: plain keys).
    book = captain_book()
    for entry in book["entries"]:
        entry["use_regex"] = False
    assert sheet.character_book == book
    # None of them is left over among the kept keys.
    assert set(sheet.card_extras) == {"creator", "character_version"}


def test_a_v3_card_maps_its_group_greetings() -> None:
    sheet = parse_card(as_json(v3_card()), "mira.json")
    assert sheet.group_greetings == ["Everyone aboard? {{char}} counts heads: {{group}}."]
    assert sheet.card_extras["nickname"] == "Mira"


def test_empty_placeholder_greetings_are_nothing_to_choose() -> None:
    sheet = sheet_from_card(community_card(alternate_greetings=["", "  ", "Hi."]))
    assert sheet.alternate_greetings == ["Hi."]
    with pytest.raises(CharacterError, match="alternate_greetings: must be a list of text"):
        sheet_from_card(community_card(alternate_greetings="Hi."))


def test_a_book_that_is_not_an_object_is_refused_and_null_means_none() -> None:
    assert sheet_from_card(community_card(character_book=None)).character_book is None
    with pytest.raises(CharacterError, match="character_book: must be an object"):
        sheet_from_card(community_card(character_book=["entries"]))


@pytest.mark.parametrize("version", [2, 3])
def test_export_writes_the_fields_where_the_spec_has_them(version: int) -> None:
    sheet = parse_card(as_json(v3_card()), "mira.json")
    data = json.loads(card_to_json(sheet, version))["data"]
    assert data["system_prompt"] == sheet.system_prompt
    assert data["post_history_instructions"] == sheet.post_history_instructions
    assert data["alternate_greetings"] == sheet.alternate_greetings
    assert data["group_only_greetings"] == sheet.group_greetings  # V2 readers read it too
    assert data["character_book"] == captain_book() | {
        "entries": [e | {"use_regex": False} for e in captain_book()["entries"]]
    }


def test_sheets_stored_before_the_fields_existed_are_read_with_them() -> None:
    stored = {
        "name": "Old Card",
        "card_extras": {
            "system_prompt": "Be terse.",
            "post_history_instructions": "Stay terse.",
            "alternate_greetings": ["Hm."],
            "group_only_greetings": ["All of you."],
            "character_book": {"entries": []},
            "creator": "someone",
        },
    }
    sheet = CharacterSheet.from_dict(stored)
    assert (sheet.system_prompt, sheet.post_history_instructions) == ("Be terse.", "Stay terse.")
    assert sheet.alternate_greetings == ["Hm."] and sheet.group_greetings == ["All of you."]
    assert sheet.character_book == {"entries": []}
    assert sheet.card_extras == {"creator": "someone"}
    assert CharacterSheet.from_dict(sheet.to_dict()) == sheet


def test_greetings_on_offer_and_the_defaults() -> None:
    sheet = parse_card(as_json(v3_card()), "mira.json")
    assert [g.value for g in greetings_of(sheet)] == ["first", "alt:1", "alt:2"]
    assert [g.value for g in greetings_of(sheet, group=True)] == [
        "group:1",
        "first",
        "alt:1",
        "alt:2",
    ]
    assert default_greeting(sheet) == "first"
    assert default_greeting(sheet, group=True) == "group:1"
    chosen = choose(sheet, "alt:2")
    assert chosen is not None and chosen.label == "alternate 2"
    assert choose(sheet, NONE) is None
    with pytest.raises(ValueError, match="has no greeting 'group:1'"):
        choose(sheet, "group:1")  # group greetings are for groups only
    quiet = CharacterSheet(name="Quiet")
    assert default_greeting(quiet) == NONE and default_greeting(quiet, group=True) == NONE


def test_example_lines_are_found_in_start_blocks_of_the_description() -> None:
    sheet = parse_card(as_json(community_card()), "mira.json")
    found = lines_elsewhere(sheet)
    assert [(f.line, f.source) for f in found] == [
        ("North is where I say it is, sailor.", "description"),
        ("Touch my charts and you swim, {{user}}.", "description"),
    ]


def test_example_lines_without_start_blocks_need_the_char_macro() -> None:
    sheet = CharacterSheet(
        name="Ned",
        description="Ned: a sailor.\n{{char}}: Aye, that I am.\n\nHe is tall.",
        greeting="<START>\n{{user}}: hi\nNed: Ahoy.",
    )
    assert [(f.line, f.source) for f in lines_elsewhere(sheet)] == [
        ("Aye, that I am.", "description"),  # "Ned: a sailor." is a field, not a line
        ("Ahoy.", "greeting"),  # inside a <START> block the name counts
    ]
