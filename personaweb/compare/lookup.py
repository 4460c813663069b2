"""Finding a character by name for the command-line tools (`style_score`, `compare_strategies`).

The rule: with a person named (`--user`), their own characters first, then the bundled cast;
with nobody named, the bundled cast first, then everyone's characters, as long as the name is
not ambiguous. A name matches the character's name or slug, ignoring case and spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import DatabaseError

from personaweb.characters.sheet import CharacterError, CharacterSheet, load_bundled, slugify
from personaweb.web.models import Character


class CharacterNotFound(LookupError):
    """No character (or more than one) answers to the name; the message says which exist."""


@dataclass(frozen=True)
class FoundCharacter:
    """A character found by name, and where."""

    name: str
    """Its display name."""
    slug: str
    """Its slug (the style model knows it by this)."""
    data: dict[str, Any]
    """Its sheet as a dict (CharacterSheet.to_dict)."""
    row: Character | None
    """The database row, when it is somebody's character (None for a bundled sheet)."""
    source: str
    """Where it was found, for messages: "alice's characters" or "the bundled cast"."""

    @property
    def sample_lines(self) -> list[str]:
        return [str(line) for line in self.data.get("sample_lines") or []]


def _matches(wanted: str, name: str, slug: str) -> bool:
    return wanted in {" ".join(name.casefold().split()), slug.casefold()} or (
        slugify(wanted) == slug.casefold()
    )


def _bundled() -> list[CharacterSheet]:
    try:
        return load_bundled()
    except CharacterError:
        return []


def find_character(name: str, owner: User | None = None) -> FoundCharacter:
    """The character called `name` (see the module docstring for where it looks)."""
    wanted = " ".join(name.casefold().split())
    if not wanted:
        raise CharacterNotFound("give a character's name, e.g. --character 'Sara Wilcox'")
    bundled = [
        FoundCharacter(s.name, s.slug, s.to_dict(), None, "the bundled cast")
        for s in _bundled()
        if _matches(wanted, s.name, s.slug)
    ]
    if owner is not None:
        own = [c for c in _rows(owner) if _matches(wanted, c.name, c.slug)]
        if own:
            c = own[0]
            return FoundCharacter(c.name, c.slug, dict(c.data), c, f"{owner.username}'s characters")
        if bundled:
            return bundled[0]
        raise CharacterNotFound(_unknown(name, _rows(owner)))
    if bundled:
        return bundled[0]
    try:
        rows = _rows(None)
    except DatabaseError as exc:
        # The bundled cast needs no database; a name beyond it does.
        raise CharacterNotFound(
            f"no bundled character called {name!r}, and the database cannot be read to look "
            f"further ({exc}); run `manage.py migrate`, or pick one of: {_bundled_names()}"
        ) from None
    found = [c for c in rows if _matches(wanted, c.name, c.slug)]
    voices = {tuple(c.data.get("sample_lines") or []) for c in found}
    if len(voices) > 1:
        owners = ", ".join(sorted({c.owner.username for c in found}))
        raise CharacterNotFound(
            f"several characters are called {name!r} (owned by {owners}) and they talk "
            "differently; pick one with --user"
        )
    if found:
        c = found[0]
        return FoundCharacter(c.name, c.slug, dict(c.data), c, f"{c.owner.username}'s characters")
    raise CharacterNotFound(_unknown(name, rows))


def _rows(owner: User | None) -> list[Character]:
    rows = Character.objects.select_related("owner").order_by("owner__username", "pk")
    return list(rows if owner is None else rows.filter(owner=owner))


def _bundled_names() -> str:
    return ", ".join(s.name for s in _bundled()) or "none"


def _unknown(name: str, rows: list[Character]) -> str:
    known = sorted({s.name for s in _bundled()} | {c.name for c in rows})
    listed = ", ".join(known) if known else "none"
    return f"no character called {name!r}; known characters: {listed}"


def character_row(owner: User, found: FoundCharacter) -> Character:
    """The owner's own row for a found character: the row itself when it is theirs, their
    namesake (same slug), or a new copy of the sheet (a comparison needs a row it owns)."""
    if found.row is not None and found.row.owner_id == owner.pk:
        return found.row
    existing = Character.objects.filter(owner=owner, slug=found.slug).first()
    if existing is not None:
        return existing
    return Character.objects.create(
        owner=owner, name=found.name, slug=found.slug, data=dict(found.data)
    )
