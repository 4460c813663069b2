"""Character sheets: validation, dict round trips, TOML loading and the bundled cast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personaweb.characters.sheet import (
    MAX_SAMPLE_LINE,
    MAX_SAMPLE_LINES,
    CharacterError,
    CharacterSheet,
    load_bundled,
    load_sheet,
    slugify,
)
from personaweb.llm.types import LLMProfile


def make_sheet(**changes: object) -> CharacterSheet:
    fields: dict[str, object] = {
        "name": "Test Person",
        "description": "Someone for tests.",
        "sample_lines": ["Hello there.", "Goodbye now."],
    }
    fields.update(changes)
    return CharacterSheet.from_dict(fields)


def test_slug_is_derived_from_the_name() -> None:
    assert make_sheet(name="Sara Wilcox").slug == "sara_wilcox"
    assert slugify("  Zoë  O'Brien-Smith! ") == "zoe_o_brien_smith"
    # A name without any ASCII still gets a stable, valid slug.
    assert slugify("太郎") == slugify("太郎") != ""
    make_sheet(name="太郎")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"description": "x" * 8001}, "description"),
        ({"sample_lines": ["x"] * (MAX_SAMPLE_LINES + 1)}, "sample_lines"),
        ({"sample_lines": ["ok", "x" * (MAX_SAMPLE_LINE + 1)]}, "sample_lines[1]"),
        ({"sample_lines": "one long string"}, "sample_lines"),
        ({"goals": ["fine", ""]}, "goals[1]"),
        ({"strategy": "clever"}, "strategy"),
        ({"talkativeness": 1.5}, "talkativeness"),
        ({"talkativeness": True}, "talkativeness"),
        ({"profiles": {"responder": {"temperature": 2.5}}}, "profiles.responder.temperature"),
        ({"profiles": {"responder": {"max_tokens": 0}}}, "profiles.responder.max_tokens"),
        ({"profiles": {"responder": {"temprature": 0.5}}}, "profiles.responder.temprature"),
        ({"profiles": {"Bad Role": {}}}, "profiles.Bad Role"),
        ({"profiles": {"responder": {"base_url": "ftp://x"}}}, "profiles.responder.base_url"),
        ({"moood": "typo"}, "moood"),
    ],
)
def test_it_rejects_bad_fields_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(CharacterError) as caught:
        make_sheet(**changes)
    assert str(caught.value).startswith(f"{field}:")


def test_a_missing_name_is_reported_as_required() -> None:
    with pytest.raises(CharacterError, match=r"^name: required"):
        CharacterSheet.from_dict({"description": "nameless"})


def test_to_dict_is_json_safe_and_round_trips() -> None:
    sheet = make_sheet(
        mood="calm",
        goals=["win"],
        profiles={"responder": {"model": "m", "temperature": 0.3}},
        extensions={"other_app": {"x": 1}},
        card_extras={"creator": "me"},
    )
    data = json.loads(json.dumps(sheet.to_dict()))
    again = CharacterSheet.from_dict(data)
    assert again == sheet
    assert again.profiles["responder"] == LLMProfile(model="m", temperature=0.3)


def test_load_sheet_names_the_file_in_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "X"\nstrategy = "psychic"\n', encoding="utf-8")
    with pytest.raises(CharacterError, match=r"^broken\.toml: strategy:"):
        load_sheet(broken)
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("name = \n", encoding="utf-8")
    with pytest.raises(CharacterError, match=r"^garbage\.toml: invalid TOML"):
        load_sheet(garbage)


def test_load_bundled_refuses_duplicate_slugs(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "Same Name"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('name = "same name"\n', encoding="utf-8")
    with pytest.raises(CharacterError, match=r"b\.toml: slug: 'same_name' is already used"):
        load_bundled(tmp_path)


def test_bundled_cast_is_valid_varied_and_sorted(bundled: list[CharacterSheet]) -> None:
    assert len(bundled) >= 5
    slugs = [s.slug for s in bundled]
    assert len(set(slugs)) == len(slugs)
    assert [s.name.casefold() for s in bundled] == sorted(s.name.casefold() for s in bundled)
    for sheet in bundled:
        assert sheet.validate() is sheet
        assert sheet.description and sheet.personality and sheet.mood and sheet.goals
        assert sheet.greeting
        assert len(sheet.sample_lines) >= 20, sheet.slug


def test_sara_speaks_in_borrowed_verse_without_giving_the_source_away(
    cast: dict[str, CharacterSheet],
) -> None:
    sara = cast["sara_wilcox"]
    assert len(sara.sample_lines) >= 20
    assert "Out, damned spot! out, I say! Fie, my lord, fie! a soldier, and afeard?" in (
        sara.sample_lines
    )
    telltales = ("macbeth", "shakespeare", "duncan", "glamis", "cawdor", "banquo", "scotland")
    visible = " ".join([sara.description, sara.personality, sara.mood, *sara.sample_lines])
    assert not any(word in visible.lower() for word in telltales)


def test_jon_johns_is_foul_mouthed(cast: dict[str, CharacterSheet]) -> None:
    lines = " ".join(cast["jon_johns"].sample_lines).lower()
    assert lines.count("fuck") >= 5


def test_the_package_imports_no_django() -> None:
    code = "import personaweb.characters, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
