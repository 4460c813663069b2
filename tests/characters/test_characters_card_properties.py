"""Properties of reading untrusted cards: any bytes either give a valid sheet or a CardError,
never another exception; and a sheet that was read exports, in every format, to a file that
reads back as the same sheet."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personaweb.characters.cards import CardError, card_to_json, card_to_png, parse_card
from personaweb.characters.sheet import CharacterSheet
from personaweb.personas.dialogue import chat_character, dialogue_hierarchy
from personaweb.personas.state import Event, EventKind
from tests.cardfuzz import CARD, JSON, encode, mutated_pngs

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read(data: bytes, name: str) -> CharacterSheet | None:
    try:
        return parse_card(data, name)
    except CardError:
        return None


def round_trips(sheet: CharacterSheet) -> None:
    for version in (2, 3):
        assert parse_card(card_to_json(sheet, version), "x.json") == sheet
        assert parse_card(card_to_png(sheet, version), "x.png") == sheet


def speaks(sheet: CharacterSheet) -> None:
    """The sheet reaches a prompt (its lorebook read and scanned) without an error."""
    persona = dialogue_hierarchy(chat_character(sheet.to_dict()), strategy="single")
    event = Event(EventKind.INBOUND, "the compass, a kraken, {{user}}", "n1", 1, sender="user")
    assert persona.build_messages([event])  # type: ignore[attr-defined]


@FAST
@given(JSON)
def test_arbitrary_json_is_a_sheet_or_a_card_error(value: object) -> None:
    sheet = read(encode(value), "x.json")
    if sheet is not None:
        round_trips(sheet)


@FAST
@given(CARD)
def test_card_shaped_json_is_a_sheet_or_a_card_error(card: object) -> None:
    sheet = read(encode(card), "card.json")
    if sheet is not None:
        round_trips(sheet)
        speaks(sheet)


@FAST
@given(mutated_pngs())
def test_a_mutated_png_is_a_sheet_or_a_card_error(data: bytes) -> None:
    sheet = read(data, "card.png")
    if sheet is not None:
        round_trips(sheet)
        speaks(sheet)


@FAST
@given(st.binary(max_size=200), st.sampled_from(["x.png", "x.json", "x"]))
def test_random_bytes_are_a_sheet_or_a_card_error(data: bytes, name: str) -> None:
    sheet = read(data, name)  # anything but CardError escapes and fails the test
    if sheet is not None:
        round_trips(sheet)
