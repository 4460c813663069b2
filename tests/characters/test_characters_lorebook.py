"""Lorebooks: reading character_book and World Info leniently, and which entries fire."""

from __future__ import annotations

from typing import Any

import pytest

from personaweb.characters.lorebook import (
    Logic,
    LorebookError,
    Position,
    distinct_books,
    normalise_book,
    read_book,
    same_book,
    scan,
)
from personaweb.characters.macros import Macros


def entry(keys: list[str], content: str, **fields: Any) -> dict[str, Any]:
    """A V2 spec entry (the required fields, then whatever the test adds)."""
    return {
        "keys": keys,
        "content": content,
        "extensions": {},
        "enabled": True,
        "insertion_order": 100,
        **fields,
    }


def book(*entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "Atlas", "extensions": {}, "entries": list(entries), **fields}


def fired(raw: dict[str, Any], *messages: str, budget: int = 1000) -> list[str]:
    return [f.entry.content for f in scan([read_book(raw)], list(messages), budget=budget).kept]


def test_an_entry_fires_on_its_key_and_not_otherwise() -> None:
    raw = book(entry(["compass"], "The brass compass points home."))
    assert fired(raw, "Where is your Compass?") == ["The brass compass points home."]
    assert fired(raw, "Where is your map?") == []


def test_only_the_last_scan_depth_messages_are_scanned() -> None:
    raw = book(entry(["compass"], "C."), scan_depth=1)
    assert fired(raw, "the compass", "something else") == []
    assert fired(book(entry(["compass"], "C.")), "the compass", "something else") == ["C."]
    # The entry's own depth wins over the book's (SillyTavern keeps it in extensions).
    deep = book(entry(["compass"], "C.", extensions={"scan_depth": 3}), scan_depth=1)
    assert fired(deep, "the compass", "a", "b") == ["C."]


def test_constant_entries_always_fire_and_disabled_ones_never() -> None:
    raw = book(
        entry([], "Always.", constant=True),
        entry(["ship"], "Never.", enabled=False),
    )
    assert fired(raw, "a ship!") == ["Always."]


def test_case_sensitive_and_whole_word_keys() -> None:
    raw = book(
        entry(["Rook"], "The captain.", case_sensitive=True),
        entry(["cat"], "A cat.", extensions={"match_whole_words": True}),
    )
    assert fired(raw, "a rook and a category") == []
    assert fired(raw, "Rook saw the cat.") == ["The captain.", "A cat."]


@pytest.mark.parametrize(
    ("logic", "text", "fires"),
    [
        (None, "dragon in the cave", True),  # the V2 spec's rule: a key from both lists
        (None, "dragon in the sky", False),
        (0, "dragon in the cave", True),
        (3, "dragon in the cave", False),  # AND ALL: cave and gold
        (3, "dragon, cave, gold", True),
        (2, "dragon in the sky", True),  # NOT ANY
        (2, "dragon in the cave", False),
        (1, "dragon, cave", True),  # NOT ALL
        (1, "dragon, cave, gold", False),
    ],
)
def test_selective_entries_follow_their_logic(logic: int | None, text: str, fires: bool) -> None:
    extensions = {} if logic is None else {"selectiveLogic": logic}
    raw = book(
        entry(
            ["dragon"],
            "Smaug-like.",
            selective=True,
            secondary_keys=["cave", "gold"],
            extensions=extensions,
        )
    )
    assert bool(fired(raw, text)) is fires


def test_kept_entries_go_by_position_and_insertion_order() -> None:
    raw = book(
        entry(["sea"], "after, second", position="after_char", insertion_order=20),
        entry(["sea"], "before", position="before_char", insertion_order=50),
        entry(["sea"], "after, first", position="after_char", insertion_order=10),
    )
    result = scan([read_book(raw)], ["the sea"], budget=1000)
    assert result.texts(Position.BEFORE) == ["before"]
    assert result.texts(Position.AFTER) == ["after, first", "after, second"]


def test_over_budget_lower_priority_goes_first_and_says_why() -> None:
    raw = book(
        entry(["sea"], "low " * 30, priority=1, name="Low"),
        entry(["sea"], "high " * 30, priority=9, name="High"),
    )
    result = scan([read_book(raw)], ["sea"], budget=60)
    assert [f.entry.name for f in result.kept] == ["High"]
    assert [f.entry.name for f in result.left_out] == ["Low"]
    note = result.note()
    assert note is not None
    assert note["fired"][0]["why"] == "key “sea”"
    assert note["left_out"][0]["left_out"] == "over the lore budget of 60 tokens"
    # A book's own token_budget binds too.
    small = book(entry(["sea"], "x " * 40), token_budget=10)
    assert scan([read_book(small)], ["sea"], budget=1000).kept == ()


def test_recursive_scanning_lets_content_trigger_other_entries() -> None:
    entries = [entry(["ship"], "The ship carries a compass."), entry(["compass"], "Brass.")]
    assert fired(book(*entries), "a ship") == ["The ship carries a compass."]
    chained = scan([read_book(book(*entries, recursive_scanning=True))], ["a ship"], budget=99)
    assert [f.entry.content for f in chained.kept] == ["The ship carries a compass.", "Brass."]
    assert chained.kept[1].why == "key “compass” in “ship”"


def test_v3_decorators_are_honoured_and_never_reach_the_prompt() -> None:
    raw = book(
        entry([], "@@activate\nAlways here."),
        entry(["ship"], "@@dont_activate\nNever."),
        entry(["ship"], "@@position after_desc\nAfter."),
    )
    result = scan([read_book(raw)], ["ship"], budget=99)
    assert result.texts(Position.BEFORE) == ["Always here."]
    assert result.texts(Position.AFTER) == ["After."]


def test_regex_keys_are_matched_as_plain_text_and_the_entry_says_so() -> None:
    raw = book(entry(["/(a+)+$/"], "Re.", use_regex=True))
    parsed = read_book(raw)
    assert parsed.entries[0].notes == ("regex keys are matched as plain text",)
    assert fired(raw, "a" * 5000 + "!") == []  # and it cannot hang the scan


def test_reading_is_lenient_unusable_entries_are_named_not_fatal() -> None:
    raw = {"entries": [entry(["a"], "ok"), "junk", {"keys": "x, y", "content": "csv keys"}, {}]}
    parsed = read_book(raw, "Book")
    assert [e.content for e in parsed.entries] == ["ok", "csv keys"]
    assert parsed.entries[1].keys == ("x", "y")
    assert parsed.problems == ("entry 2 is not a JSON object", "entry 4 has no text content")
    assert read_book("nope").problems == ("the book is not a JSON object",)


def test_macros_are_replaced_in_keys_and_content() -> None:
    raw = book(entry(["{{user}}'s ring"], "{{char}} covets {{user}}'s ring."))
    parsed = read_book(raw).expanded(Macros(char="Mira", user="Joe"))
    result = scan([parsed], ["Joe's ring glints"], budget=99)
    assert result.texts(Position.BEFORE) == ["Mira covets Joe's ring."]


def test_world_info_is_converted_to_a_character_book() -> None:
    world = {
        "entries": {
            "1": {
                "uid": 1,
                "key": ["moon"],
                "keysecondary": ["night"],
                "comment": "Moon",
                "content": "The moon is red.",
                "constant": False,
                "selective": True,
                "selectiveLogic": 2,
                "order": 7,
                "position": 1,
                "disable": False,
                "displayIndex": 1,
                "probability": 100,
            },
            "0": {"uid": 0, "key": ["sun"], "content": "Sun.", "disable": True, "position": 0},
        },
        "name": "Sky",
    }
    converted = normalise_book(world)
    assert [e["keys"] for e in converted["entries"]] == [["sun"], ["moon"]]
    moon = read_book(converted).entries[1]
    assert (moon.name, moon.position, moon.logic, moon.insertion_order) == (
        "Moon",
        Position.AFTER,
        Logic.NOT_ANY,
        7.0,
    )
    assert converted["entries"][1]["extensions"]["probability"] == 100  # nothing lost
    assert read_book(converted).entries[0].enabled is False
    assert read_book(converted).name == "Sky"


def test_a_cards_embedded_book_can_be_taken_as_a_lorebook() -> None:
    card = {"spec": "chara_card_v2", "data": {"name": "X", "character_book": book()}}
    assert normalise_book(card) == book()
    with pytest.raises(LorebookError, match="no lorebook"):
        normalise_book({"spec": "chara_card_v3", "data": {"name": "X"}})
    with pytest.raises(LorebookError, match="entries"):
        normalise_book({"title": "not a book"})


# --- one copy of each entry --------------------------------------------------------------------


def test_each_entry_is_consulted_once_whatever_book_it_is_in() -> None:
    compass = entry(["compass", "needle"], "The compass was her mother's.", priority=5)
    world = entry([], "The year is 1720.", constant=True)
    card = read_book(book(compass, world, token_budget=400))
    # The same entries under another name: other ids, order, key order and whitespace.
    copy = read_book(
        {
            "name": "Tide Atlas (file)",
            "entries": [
                entry([], "The year is  1720.\n", constant=True, id=9),
                entry(["needle", "compass"], "The compass was her mother's.", id=8),
                entry(["kraken"], "The kraken sleeps."),
            ],
        }
    )
    assert not same_book(card, copy)  # it has one more entry
    assert same_book(card, read_book({"entries": list(reversed(book(compass, world)["entries"]))}))
    assert not same_book(read_book(book()), read_book(book()))  # no entries: nothing to share

    books = distinct_books([card, copy, card])
    assert [b.name for b in books] == ["Atlas", "Tide Atlas (file)"]
    assert books[0] is card  # the first copy, with its book's settings
    assert [e.content for e in books[1].entries] == ["The kraken sleeps."]
    result = scan(books, ["your compass?"], budget=1000)
    assert sorted(f.entry.content for f in result.kept) == [
        "The compass was her mother's.",
        "The year is 1720.",
    ]
    assert not result.left_out


def test_a_disabled_entry_does_not_stand_for_an_enabled_copy() -> None:
    off = read_book(book(entry(["compass"], "The compass.", enabled=False)))
    on = read_book(book(entry(["compass"], "The compass.")))
    assert [len(b.entries) for b in distinct_books([off, on])] == [1, 1]
    assert fired(book(entry(["compass"], "The compass.")), "compass") == ["The compass."]
    assert distinct_books([on, off]) == (on,)
    assert distinct_books([off, off]) == (off,)
