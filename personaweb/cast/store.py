"""Between `CharacterSheet`s and `web.Character` rows: loading, saving and free names.

Naming rules (documented in the report and the README section on characters):
- A name is unique per owner, compared case-insensitively. The form refuses a taken name with
  a clear error: a person typed it and can choose another.
- Duplicates and imports never fail on a name: they take the first free one of
  "<name> (copy)", "<name> (copy 2)"... or "<name>", "<name> (2)"...
- The slug is the character's stable identifier (group chats address characters by it), so it
  is chosen once, at creation, from the name, and kept when the character is renamed. If the
  slug is already held (by a renamed character) it gets a numeric suffix: `sara_wilcox_2`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from personaweb.characters.cards import check_exportable
from personaweb.characters.sheet import MAX_NAME, MAX_SLUG, CharacterError, CharacterSheet
from personaweb.web.models import Character

# The Character row allows longer slugs than the sheet; the sheet's limit is the binding one.
_SLUG_LIMIT = min(MAX_SLUG, Character._meta.get_field("slug").max_length or MAX_SLUG)


def sheet_of(character: Character) -> CharacterSheet:
    """The row's sheet, validated. The row's name and slug win over copies inside `data`."""
    data: dict[str, Any] = dict(character.data or {})
    data["name"] = character.name
    data["slug"] = character.slug
    return CharacterSheet.from_dict(data)


def apply_sheet(character: Character, sheet: CharacterSheet) -> Character:
    """Copy a (validated) sheet onto a row, keeping the columns and `data` in step."""
    character.name = sheet.name
    character.slug = sheet.slug
    character.data = sheet.to_dict()
    return character


def save_new(owner: User, sheet: CharacterSheet) -> Character:
    """A new character of `owner`'s from a validated sheet (the page's form and the API).
    CharacterError, naming the field, when the name is taken or the card would not export."""
    if name_taken(owner, sheet.name):
        raise CharacterError(f"name: you already have a character called {sheet.name!r}")
    sheet = sheet.with_changes(slug=free_slug(owner, sheet.slug))
    return _save(Character(owner=owner), sheet)


def save_edit(character: Character, sheet: CharacterSheet) -> Character:
    """The character with a new sheet (its slug kept: see the naming rules)."""
    if name_taken(character.owner, sheet.name, exclude_pk=character.pk):
        raise CharacterError(f"name: you already have a character called {sheet.name!r}")
    return _save(character, sheet.with_changes(slug=character.slug))


def _save(character: Character, sheet: CharacterSheet) -> Character:
    # Only what exports within the import limit is stored, so whatever is exported imports.
    check_exportable(sheet, bytes(character.avatar) if character.avatar else None)
    try:
        with transaction.atomic():
            apply_sheet(character, sheet).save()
    except IntegrityError:
        # A concurrent save took the slug first.
        raise CharacterError(f"name: {sheet.name!r} was just taken; choose another") from None
    return character


def name_taken(owner: User, name: str, exclude_pk: int | None = None) -> bool:
    """Whether the owner already has another character of that name (case-insensitive)."""
    rows = Character.objects.filter(owner=owner, name__iexact=name.strip())
    if exclude_pk is not None:
        rows = rows.exclude(pk=exclude_pk)
    return rows.exists()


def free_name(owner: User, candidates: Iterable[str]) -> str:
    """The first candidate name the owner does not use yet."""
    taken = {
        n.casefold() for n in Character.objects.filter(owner=owner).values_list("name", flat=True)
    }
    return next(name for name in candidates if name.casefold() not in taken)


def copy_names(name: str) -> Iterator[str]:
    """'X (copy)', 'X (copy 2)', 'X (copy 3)'..., each within the name limit."""
    yield _fit(name, " (copy)")
    n = 2
    while True:
        yield _fit(name, f" (copy {n})")
        n += 1


def numbered_names(name: str) -> Iterator[str]:
    """'X', 'X (2)', 'X (3)'..., each within the name limit."""
    yield _fit(name, "")
    n = 2
    while True:
        yield _fit(name, f" ({n})")
        n += 1


def free_slug(owner: User, wanted: str, exclude_pk: int | None = None) -> str:
    """`wanted`, or `wanted_2`, `wanted_3`... whichever the owner does not use yet."""
    rows = Character.objects.filter(owner=owner)
    if exclude_pk is not None:
        rows = rows.exclude(pk=exclude_pk)
    taken = set(rows.values_list("slug", flat=True))
    slug = wanted[:_SLUG_LIMIT].strip("_")
    n = 2
    while slug in taken:
        suffix = f"_{n}"
        slug = wanted[: _SLUG_LIMIT - len(suffix)].strip("_") + suffix
        n += 1
    return slug


def _fit(name: str, suffix: str) -> str:
    # Trim the stem, not the suffix: "(copy 2)" must stay readable on a long name.
    stem = name.strip()[: MAX_NAME - len(suffix)].rstrip()
    return stem + suffix
