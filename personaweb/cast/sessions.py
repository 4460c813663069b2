"""What a session takes from its characters' cards: who the person is (what `{{user}}` stands
for), which lorebooks its characters consult, and the greetings it opens with.

The rules:
- The person's name is the session's own (a `SessionUser`), chosen when it starts; it defaults
  to their first name, else their username. A session without one uses that default.
- A character's prompts consult its card's own lorebook, then the lorebooks attached to the
  character, then those attached to the session (each book once).
- A new session opens with the greetings chosen on its form, written as its first nodes (see
  personas/state.py): a chat of one with its character's, a group with each member's, in
  member order. characters/greetings.py says what is offered and what is chosen by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Q

from personaweb.cast import store
from personaweb.cast.models import Lorebook, SessionUser
from personaweb.characters.greetings import NONE, choose, default_greeting, greetings_of
from personaweb.characters.macros import Macros, card_macros
from personaweb.characters.safejson import UnsafeJSON, check_text
from personaweb.characters.sheet import CharacterError, CharacterSheet
from personaweb.personas import ResponseDrivenPersona
from personaweb.personas.dialogue import SimpleCharacter, chat_character
from personaweb.personas.greetings import Opening, greeting_nodes
from personaweb.personas.tree import NodeKind
from personaweb.web.models import Character, ChatSession, Hierarchy, NodeRow
from personaweb.web.store import OrmStore

MAX_USER_NAME = 80


def default_user_name(user: User | AbstractBaseUser | AnonymousUser) -> str:
    """What `{{user}}` is unless the person says otherwise: their first name, else username."""
    first = str(getattr(user, "first_name", "") or "").strip()
    return first or str(user.get_username() or "").strip() or "User"


def macros_for(sheet: CharacterSheet, user: str, group: Sequence[str] = ()) -> Macros:
    """The macros of a character's card for this person."""
    return card_macros(sheet.name, sheet.card_extras, user, group)


# --- reading a session's cards ---------------------------------------------------------------


@dataclass
class SessionCards:
    """The person's name and the lorebooks of one session, read in three queries."""

    user: str
    """What `{{user}}` stands for."""
    session_books: list[tuple[str, Any]] = field(default_factory=list)
    """Lorebooks attached to the session: (name, stored book)."""
    character_books: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)
    """Per character id: the lorebooks attached to it."""

    @classmethod
    def of(cls, session: ChatSession, characters: Sequence[Character] = ()) -> SessionCards:
        named = SessionUser.objects.filter(session_id=session.pk).values_list("name", flat=True)
        user = next(iter(named), "") or default_user_name(session.owner)
        ids = [c.pk for c in characters]
        books = list(
            Lorebook.objects.filter(owner_id=session.owner_id)
            .filter(Q(sessions=session.pk) | Q(characters__in=ids))
            .distinct()
            .order_by("name", "pk")
        )
        links = Lorebook.characters.through.objects.filter(
            character_id__in=ids, lorebook_id__in=[b.pk for b in books]
        ).values_list("lorebook_id", "character_id")
        on_session = set(
            Lorebook.sessions.through.objects.filter(chatsession_id=session.pk).values_list(
                "lorebook_id", flat=True
            )
        )
        by_id = {b.pk: b for b in books}
        cards = cls(user, [(b.name, b.data) for b in books if b.pk in on_session])
        for book_id, character_id in links:
            book = by_id[book_id]
            cards.character_books.setdefault(character_id, []).append((book.name, book.data))
        return cards

    def character(self, character: Character, *, group: Sequence[str] = ()) -> SimpleCharacter:
        """The character as this session meets it: macros replaced, every lorebook read."""
        books = [*self.character_books.get(character.pk, []), *self.session_books]
        return character_of(character, user=self.user, group=group, books=books)


def character_of(
    row: Character,
    *,
    user: str,
    group: Sequence[str] = (),
    books: Sequence[tuple[str, Any]] | None = None,
) -> SimpleCharacter:
    """A stored character as one chat meets it (`personas.dialogue.chat_character`): the row's
    name over its sheet's, with `books` (by default the lorebooks attached to the character)."""
    if books is None:
        attached = Lorebook.objects.filter(characters=row.pk).order_by("name", "pk")
        books = [(book.name, book.data) for book in attached]
    data = {**(row.data or {}), "name": row.name}
    return chat_character(data, user=user, group=group, books=books)


# --- starting a session ------------------------------------------------------------------------


@dataclass
class Choices:
    """What a person chose for a new session's cards (validated)."""

    user_name: str
    """Their name in the chat."""
    greetings: dict[int, str]
    """Per character id: the greeting it opens with (a characters/greetings.py value)."""
    lorebooks: list[Lorebook]
    """Their lorebooks to attach to the session."""


def greeting_field(character: Character, *, group: bool) -> str:
    """The form field naming a character's greeting."""
    return f"greeting:{character.pk}" if group else "greeting"


def sheet_or_none(character: Character) -> CharacterSheet | None:
    try:
        return store.sheet_of(character)
    except CharacterError:
        return None  # a broken stored sheet opens with no greeting; its page says why


def read_choices(
    data: Mapping[str, Any],
    owner: User | AbstractBaseUser | AnonymousUser,
    characters: Sequence[Character],
    *,
    group: bool,
) -> Choices:
    """The card choices of a new-session form (`user_name`, `lorebooks`, and a greeting per
    character); ValueError, with a sentence for the person, when one is not on offer."""
    name = str(data.get("user_name") or "").strip()[:MAX_USER_NAME]
    try:
        check_text(name, "your name")
    except UnsafeJSON as exc:
        raise ValueError(str(exc)) from None
    greetings: dict[int, str] = {}
    for character in characters:
        sheet = sheet_or_none(character)
        if sheet is None:
            continue
        value = str(data.get(greeting_field(character, group=group)) or "")
        value = value or default_greeting(sheet, group=group)
        choose(sheet, value, group=group)  # raises ValueError for a greeting not on offer
        greetings[character.pk] = value
    wanted = _ids(data, "lorebooks")
    books = list(Lorebook.objects.filter(owner_id=owner.pk, pk__in=wanted))
    if len(books) != len(set(wanted)):
        raise ValueError("unknown lorebook")
    return Choices(name or default_user_name(owner), greetings, books)


# --- what the new-session forms show -------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One choice of a select."""

    value: str
    label: str
    selected: bool = False


SILENT = "none: the character starts silent"


def greeting_options(
    character: Character,
    data: Mapping[str, Any] | None,
    *,
    group: bool,
    user: str = "",
) -> list[Option]:
    """The greetings a form offers for a character, the chosen (or default) one selected;
    their text as the person will read it (macros replaced)."""
    sheet = sheet_or_none(character)
    if sheet is None:
        return [Option(NONE, SILENT, True)]
    chosen = str((data or {}).get(greeting_field(character, group=group)) or "")
    chosen = chosen or default_greeting(sheet, group=group)
    macros = macros_for(sheet, user or default_user_name(character.owner))
    options = [
        Option(g.value, f"{g.label}: {_short(macros.expand(g.text))}", g.value == chosen)
        for g in greetings_of(sheet, group=group)
    ]
    return [*options, Option(NONE, SILENT, chosen == NONE)]


def form_context(
    owner: User | AbstractBaseUser | AnonymousUser, data: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The person's name (as typed, else the default) and their lorebooks, ticked as posted."""
    getlist = getattr(data, "getlist", None)
    ticked = {str(v) for v in getlist("lorebooks")} if getlist is not None else set()
    default = default_user_name(owner)
    return {
        "user_name": (data or {}).get("user_name", default) if data is not None else default,
        "default_user_name": default,
        "lorebooks": [
            (book, str(book.pk) in ticked) for book in Lorebook.objects.filter(owner_id=owner.pk)
        ],
    }


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ids(data: Mapping[str, Any], key: str) -> list[int]:
    raw = data.getlist(key) if hasattr(data, "getlist") else data.get(key) or []
    if isinstance(raw, str | int):
        raw = [raw]
    values = [str(v) for v in raw if str(v)]
    if not all(v.isdigit() for v in values):
        raise ValueError(f"unknown {key[:-1]}")
    return [int(v) for v in values]


def start(session: ChatSession, choices: Choices, root: ResponseDrivenPersona) -> None:
    """Record the choices on a new session and open it with its greetings."""
    SessionUser.objects.update_or_create(session=session, defaults={"name": choices.user_name})
    for book in choices.lorebooks:
        book.sessions.add(session)
    openings = []
    members = _members(session)
    group = session.hierarchy == Hierarchy.GROUP
    names = [c.name for c in members] if group else []
    for character in members:
        sheet = sheet_or_none(character)
        value = choices.greetings.get(character.pk)
        if sheet is None or value is None:
            continue
        greeting = choose(sheet, value, group=group)
        if greeting is None:
            continue
        speaker = root.children[character.slug].path if group else root.path
        text = macros_for(sheet, choices.user_name, names).expand(greeting.text)
        openings.append(Opening(speaker, text, greeting.label))
    nodes = greeting_nodes(openings)
    if nodes:
        OrmStore(session.pk).add_many(nodes)
        ChatSession.objects.filter(pk=session.pk).update(active_node=nodes[-1].id)
        session.active_node = nodes[-1].id


def copy_opening(source: ChatSession, target: ChatSession) -> str | None:
    """Open a replay as its source opened: the same name for the person, the same session
    lorebooks, the same greetings (as new nodes). Returns the last greeting's id, under which
    the replay's first message goes (None: no greetings)."""
    name = SessionUser.objects.filter(session=source).values_list("name", flat=True).first()
    if name:
        SessionUser.objects.update_or_create(session=target, defaults={"name": name})
    for book in Lorebook.objects.filter(sessions=source.pk):
        book.sessions.add(target)
    rows = NodeRow.objects.filter(session=source, kind=NodeKind.GREETING.value).order_by("seq")
    openings = [
        Opening(row.persona, row.content, str((row.data or {}).get("greeting", "greeting")))
        for row in rows
    ]
    nodes = greeting_nodes(openings)
    if not nodes:
        return None
    OrmStore(target.pk).add_many(nodes)
    ChatSession.objects.filter(pk=target.pk).update(active_node=nodes[-1].id)
    return nodes[-1].id


def _members(session: ChatSession) -> list[Character]:
    if session.hierarchy != Hierarchy.GROUP:
        return [session.character] if session.character is not None else []
    ids = [int(i) for i in session.members or []]
    by_id = {c.pk: c for c in Character.objects.filter(owner_id=session.owner_id, pk__in=ids)}
    return [by_id[i] for i in ids if i in by_id]
