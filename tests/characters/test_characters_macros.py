"""Card macros: the known ones replaced in one pass, case variants, unknown ones left alone."""

from __future__ import annotations

import pytest

from personaweb.characters.macros import Macros, fill_original, has_macros

MIRA = Macros(char="Mira", user="Joe")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{char}} greets {{user}}.", "Mira greets Joe."),
        ("{{Char}} and {{USER}}", "Mira and Joe"),
        ("{{ char }} waits", "Mira waits"),
        ("<BOT>: hi <USER>", "Mira: hi Joe"),
        ("<bot> <Char> <user>", "Mira Mira Joe"),
        ("line{{newline}}next{{noop}}", "line\nnext"),
        ("{{// a note for other authors }}Hello", "Hello"),
        ("in {{group}}", "in Mira"),
    ],
)
def test_known_macros_are_replaced(text: str, expected: str) -> None:
    assert MIRA.expand(text) == expected


def test_unknown_macros_are_left_exactly_as_they_are() -> None:
    text = "Roll {{roll:d20}} at {{time}}, pick {{random:a,b}}; <START> stays."
    assert MIRA.expand(text) == text


def test_original_is_left_for_its_caller_unless_given() -> None:
    assert MIRA.expand("{{original}} Be {{char}}.") == "{{original}} Be Mira."
    assert MIRA.expand("{{original}} Be {{char}}.", original="Ours.") == "Ours. Be Mira."
    assert fill_original(MIRA.expand("A {{ Original }} B"), "x") == "A x B"


def test_one_pass_only_text_brought_in_is_not_expanded_again() -> None:
    sly = Macros(char="{{user}}", user="<BOT>")
    assert sly.expand("{{char}} / {{user}}") == "{{user}} / <BOT>"


def test_a_group_names_every_character() -> None:
    ann = Macros(char="Ann", group=("Ann", "Bob"))
    assert ann.expand("{{group}} | {{charIfNotGroup}}") == "Ann, Bob | Ann, Bob"
    assert Macros(char="Ann").expand("{{charIfNotGroup}}") == "Ann"


def test_has_macros_sees_known_and_unknown_ones() -> None:
    assert has_macros("hi {{user}}") and has_macros("{{weird}}") and has_macros("<BOT>")
    assert not has_macros("a {single} brace and <b>bold</b>")
