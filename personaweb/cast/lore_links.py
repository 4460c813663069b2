"""One copy of each lorebook, and the World Info book a card names (`extensions.world`).

The rules:
- Two books are the same when their entries have the same keys and content
  (characters/lorebook.py `same_book`), whatever their names, ids, order or settings.
- A character has a book already when its card's own `character_book`, or another book attached
  to it, is the same. Attaching a copy says so and offers to replace the copy or to skip the
  character (lore_views.lorebook_attach); importing a copy of a standalone book the person has
  offers to use that one or to import the file as its replacement (lore_views.lorebook_import).
  Whatever is consulted twice all the same (a session's book that the character has too) reaches
  the prompt once: `distinct_books`, in personas/card_prompt.py `character_fields`.
- A card's `extensions.world` names the SillyTavern World Info book linked to it. A book of the
  person's of that name (case aside) is attached to the character when the card is imported,
  and when the book is imported later; not when the character has the same book already (most
  often the card carries it as its own `character_book`). When the person has no such book and
  the card's own book is not it, the character's page says the book is missing (`missing_world`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction

from personaweb.cast import store
from personaweb.cast.models import Lorebook
from personaweb.characters.lorebook import EntryKey, book_key, read_book
from personaweb.web.models import Character

Owner = User | AbstractBaseUser | AnonymousUser


def entries_of(raw: Any) -> frozenset[EntryKey]:
    """A stored book's entries, as `same_book` compares them (empty: nothing to compare)."""
    return book_key(read_book(raw))


def card_book(character: Character) -> Any:
    """The character's own `character_book` as stored (None: the card has none). Sheets stored
    before the card fields were modelled keep it among the card extras."""
    data = character.data or {}
    extras = data.get("card_extras")
    book = data.get("character_book")
    if book is None and isinstance(extras, Mapping):
        book = extras.get("character_book")
    return book if isinstance(book, Mapping) else None


@dataclass(frozen=True)
class Copy:
    """A book a character has that is the same as another."""

    name: str
    """Its name."""
    lorebook: Lorebook | None = None
    """The attached book; None: the card's own `character_book`."""

    @property
    def where(self) -> str:
        """Where the character has it, for a person."""
        if self.lorebook is None:
            return f"its card's own lorebook “{self.name}”"
        return f"the lorebook “{self.name}” attached to it"


@dataclass
class Holders:
    """Which characters have a given book already, and where (`copies_of`)."""

    copies: dict[int, list[Copy]] = field(default_factory=dict)
    """Per character id: the copies it has."""

    def of(self, character: Character) -> list[Copy]:
        return self.copies.get(character.pk, [])


def copies_of(raw: Any, characters: Sequence[Character], *, exclude: int | None = None) -> Holders:
    """What each of `characters` has that is the same as the stored book `raw`: its card's own
    book, or books attached to it (but the Lorebook `exclude`, the book itself). Two queries."""
    wanted = entries_of(raw)
    holders = Holders()
    if not wanted:
        return holders
    for character in characters:
        own = card_book(character)
        if own is not None and entries_of(own) == wanted:
            name = read_book(own, f"{character.name}'s lorebook").name
            holders.copies.setdefault(character.pk, []).append(Copy(name))
    ids = [c.pk for c in characters]
    links = Lorebook.characters.through.objects.filter(character_id__in=ids)
    if exclude is not None:
        links = links.exclude(lorebook_id=exclude)
    pairs = list(links.values_list("lorebook_id", "character_id"))
    books = Lorebook.objects.filter(pk__in={book_id for book_id, _ in pairs})
    same = {b.pk: b for b in books if entries_of(b.data) == wanted}
    for book_id, character_id in pairs:
        if book_id in same:
            holders.copies.setdefault(character_id, []).append(
                Copy(same[book_id].name, same[book_id])
            )
    return holders


def books_had(character: Character, books: Iterable[Lorebook]) -> set[int]:
    """The ids of `books` the character has already: attached to it, or the same as its card's
    own book or as a book attached to it."""
    attached = list(Lorebook.objects.filter(characters=character))
    own = card_book(character)
    had = {entries_of(b.data) for b in attached} | ({entries_of(own)} if own is not None else set())
    had.discard(frozenset())
    ids = {b.pk for b in attached}
    return {b.pk for b in books if b.pk in ids or entries_of(b.data) in had}


def remove_copies(character: Character, copies: Iterable[Copy]) -> None:
    """Take the copies out of the character: an attached book is detached, the card's own book
    is removed from the card (saved as any edit is). CharacterError when the stored sheet no
    longer validates; the caller's transaction then keeps everything as it was."""
    for copy in copies:
        if copy.lorebook is not None:
            copy.lorebook.characters.remove(character)
        else:
            sheet = store.sheet_of(character)
            store.save_edit(character, sheet.with_changes(character_book=None))


def same_standalone(owner: Owner, raw: Any) -> Lorebook | None:
    """The person's standalone book with the same entries as `raw` (None: they have none)."""
    wanted = entries_of(raw)
    if not wanted:
        return None
    return next(
        (b for b in Lorebook.objects.filter(owner_id=owner.pk) if entries_of(b.data) == wanted),
        None,
    )


# --- extensions.world ---------------------------------------------------------------------------


def world_of(character: Character) -> str:
    """The name of the World Info book the card links (`extensions.world`), or ""."""
    extensions = (character.data or {}).get("extensions")
    world = extensions.get("world") if isinstance(extensions, Mapping) else None
    return world.strip() if isinstance(world, str) else ""


def _named(name: str, other: str) -> bool:
    return name.strip().casefold() == other.strip().casefold()


def link_world(character: Character) -> Lorebook | None:
    """Attach the person's book the card names as its world (see the rules); the book, or None
    when there is none to attach (no such book, it is attached, or the character has a copy)."""
    name = world_of(character)
    if not name:
        return None
    books = [
        b
        for b in Lorebook.objects.filter(owner_id=character.owner_id, name__iexact=name)
        if _named(b.name, name)
    ]
    if not books or any(b.characters.filter(pk=character.pk).exists() for b in books):
        return None
    book = books[0]
    if copies_of(book.data, [character], exclude=book.pk).of(character):
        return None
    book.characters.add(character)
    return book


@dataclass
class Linked:
    """What importing a book did for the cards that name it as their world."""

    attached: list[Character] = field(default_factory=list)
    """Characters it was attached to."""
    had_it: list[Character] = field(default_factory=list)
    """Characters that name it but have the same book already: left as they were."""

    def note(self, book: Lorebook) -> str:
        """A sentence for the person (empty: no card names it)."""
        said = ""
        if self.attached:
            names = ", ".join(c.name for c in self.attached)
            said += f" Attached to {names}: the card names it as its world."
        if self.had_it:
            names = ", ".join(c.name for c in self.had_it)
            said += f" Not attached to {names}: it has the same book already."
        return said


def link_book(book: Lorebook) -> Linked:
    """Attach a book just imported to the person's characters whose card names it as its world
    (see the rules)."""
    named = [
        c
        for c in Character.objects.filter(
            owner_id=book.owner_id, data__extensions__has_key="world"
        ).order_by("name", "pk")
        if _named(world_of(c), book.name) and world_of(c)
    ]
    linked = Linked()
    if not named:
        return linked
    attached = set(book.characters.values_list("pk", flat=True))
    holders = copies_of(book.data, named, exclude=book.pk)
    with transaction.atomic():
        for character in named:
            if character.pk in attached:
                continue
            if holders.of(character):
                linked.had_it.append(character)
            else:
                book.characters.add(character)
                linked.attached.append(character)
    return linked


def missing_world(character: Character) -> str:
    """The name of the book the card names as its world when the person has no book of that
    name and the card's own book is not it (else "")."""
    name = world_of(character)
    if not name:
        return ""
    own = card_book(character)
    if own is not None and _named(read_book(own).name, name):
        return ""
    if Lorebook.objects.filter(owner_id=character.owner_id, name__iexact=name).exists():
        return ""
    return name
