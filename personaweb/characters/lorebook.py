"""Lorebooks: a card's `character_book` and SillyTavern World Info files, read and scanned.

A lorebook holds entries of background (a place, a person, a rule of the world) that reach a
character's prompt only when the conversation touches them. A book is stored as it came (only
its name and each entry's `use_regex` filled in where missing, `complete_book`), so a card's
round trip keeps it intact; `read_book` gives a typed, lenient view of it: what it
cannot use is skipped and named in `problems`, never an error. World Info files are converted to
the `character_book` form once, when imported (`normalise_book`).

Which entries fire, and where they go (applied by `scan`, and nowhere else):

1. An entry that is not enabled never fires; a constant one always does.
2. Otherwise it fires when one of its keys appears in the scanned text: the last `scan_depth`
   messages (the entry's own scan depth, else the book's, else DEFAULT_SCAN_DEPTH). Keys match
   as plain text, ignoring case unless the entry is case-sensitive, anywhere in a word unless the
   entry asks for whole words (SillyTavern's `match_whole_words`). Regex keys (V3 `use_regex`)
   are matched as plain text too, and the entry says so: a card's regex cannot be run safely (a
   catastrophic one would hang the server).
3. A selective entry with secondary keys needs them as well, by its logic: AND ANY (the V2
   spec's rule, and the default), AND ALL, NOT ANY or NOT ALL (SillyTavern's `selectiveLogic`).
4. With `recursive_scanning`, the content of fired entries is scanned too, for at most
   RECURSION_ROUNDS more rounds.
5. Budget: fired entries are kept, highest priority first (then constant ones, then lower
   insertion order), while their tokens fit the budget; the rest are left out, and say why.
6. Kept entries go before or after the character's definition (`position`; SillyTavern's other
   positions go after it), lower insertion order first.
7. Each entry once: the books a prompt consults are `distinct_books` first, so an entry with the
   same keys and content as an earlier one (a card's book attached again as a standalone file,
   a book attached to both the character and the session) is consulted once.

V3 decorators (`@@activate`, `@@dont_activate`, `@@scan_depth N`, `@@position before_desc`) at
the top of an entry's content are honoured and never reach a prompt; others are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from personaweb.characters.macros import Macros
from personaweb.llm.budget import estimate_tokens

DEFAULT_SCAN_DEPTH = 2
"""Messages scanned when neither the entry nor the book says (SillyTavern's default)."""
RECURSION_ROUNDS = 3
MAX_ENTRIES = 1000
"""Entries of one book that are read; the rest are named in `problems` and never fire."""
MAX_KEYS = 100
MAX_KEY_CHARS = 200
DEFAULT_ORDER = 100.0
"""Insertion order of an entry that gives none (SillyTavern's default)."""
DEFAULT_PRIORITY = 10.0


class Position(StrEnum):
    BEFORE = "before_char"
    """Before the character's definition."""
    AFTER = "after_char"
    """After the character's definition."""


class Logic(StrEnum):
    """How a selective entry's secondary keys combine (SillyTavern's selectiveLogic 0..3)."""

    AND_ANY = "and_any"
    NOT_ALL = "not_all"
    NOT_ANY = "not_any"
    AND_ALL = "and_all"


LOGIC_CODES = (Logic.AND_ANY, Logic.NOT_ALL, Logic.NOT_ANY, Logic.AND_ALL)
"""SillyTavern's selectiveLogic numbers, in order."""


@dataclass(frozen=True)
class LoreEntry:
    """One usable entry of a book."""

    index: int
    """Its place in the book's `entries` list (0-based)."""
    name: str
    """What people call it: its name, comment, or first key."""
    content: str
    """The text that goes into the prompt (decorators removed)."""
    keys: tuple[str, ...] = ()
    """Any of these in the scanned text fires it."""
    secondary_keys: tuple[str, ...] = ()
    """For a selective entry: what its logic also asks for."""
    selective: bool = False
    """Whether the secondary keys count."""
    logic: Logic = Logic.AND_ANY
    """How the secondary keys combine."""
    constant: bool = False
    """Always fires."""
    enabled: bool = True
    """A disabled entry never fires."""
    insertion_order: float = DEFAULT_ORDER
    """Lower goes higher in the prompt."""
    priority: float = DEFAULT_PRIORITY
    """Over budget, lower priority is left out first."""
    position: Position = Position.BEFORE
    """Where it goes."""
    case_sensitive: bool = False
    """Whether keys must match case."""
    whole_words: bool = False
    """Whether keys must match whole words."""
    scan_depth: int | None = None
    """Messages to scan for this entry (None: the book's)."""
    notes: tuple[str, ...] = ()
    """What about it could not be honoured (e.g. regex keys matched as plain text)."""


@dataclass(frozen=True)
class Lorebook:
    """A typed view of one stored book."""

    name: str
    """The book's name (for the inspector: which book an entry came from)."""
    entries: tuple[LoreEntry, ...] = ()
    """The entries that can be used."""
    scan_depth: int | None = None
    """Messages to scan (None: DEFAULT_SCAN_DEPTH)."""
    token_budget: int | None = None
    """Most tokens its entries may take in a prompt (None: the caller's budget)."""
    recursive: bool = False
    """Whether fired entries' content is scanned for more keys."""
    problems: tuple[str, ...] = ()
    """Entries skipped, and why."""

    def expanded(self, macros: Macros) -> Lorebook:
        """The same book with the card's macros replaced in every name, key and content."""
        entries = tuple(
            replace(
                e,
                name=macros.expand(e.name),
                content=macros.expand(e.content),
                keys=tuple(macros.expand(k) for k in e.keys),
                secondary_keys=tuple(macros.expand(k) for k in e.secondary_keys),
            )
            for e in self.entries
        )
        return Lorebook(
            self.name, entries, self.scan_depth, self.token_budget, self.recursive, self.problems
        )


# --- reading ---------------------------------------------------------------------------------


def read_book(raw: Any, name: str = "") -> Lorebook:
    """A typed view of a stored book (`character_book` form). Never raises: unusable entries
    are skipped and named in `problems`."""
    if not isinstance(raw, Mapping):
        return Lorebook(name or "lorebook", problems=("the book is not a JSON object",))
    title = _text(raw.get("name")) or name or "lorebook"
    problems: list[str] = []
    entries_raw = raw.get("entries")
    if not isinstance(entries_raw, list):
        problems.append("the book has no list of entries")
        entries_raw = []
    if len(entries_raw) > MAX_ENTRIES:
        problems.append(f"only the first {MAX_ENTRIES} of {len(entries_raw)} entries are used")
    entries: list[LoreEntry] = []
    for index, item in enumerate(entries_raw[:MAX_ENTRIES]):
        entry = read_entry(item, index)
        if isinstance(entry, str):
            problems.append(entry)
        else:
            entries.append(entry)
    return Lorebook(
        name=title,
        entries=tuple(entries),
        scan_depth=_count(raw.get("scan_depth")),
        token_budget=_count(raw.get("token_budget")),
        recursive=raw.get("recursive_scanning") is True,
        problems=tuple(problems),
    )


def read_entry(item: Any, index: int) -> LoreEntry | str:
    """One entry, or a sentence saying why it cannot be used."""
    label = f"entry {index + 1}"
    if not isinstance(item, Mapping):
        return f"{label} is not a JSON object"
    content = item.get("content")
    if not isinstance(content, str):
        return f"{label} has no text content"
    found = item.get("extensions")
    extensions: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    keys = _keys(item.get("keys"))
    secondary = _keys(item.get("secondary_keys"))
    notes: list[str] = []
    if item.get("use_regex") is True:
        notes.append("regex keys are matched as plain text")
    decorators, content = _decorators(content)
    constant = item.get("constant") is True or "activate" in decorators
    enabled = item.get("enabled") is not False and "dont_activate" not in decorators
    position = _position(item.get("position"), extensions.get("position"))
    if "position" in decorators:
        position = Position.BEFORE if decorators["position"] == "before_desc" else Position.AFTER
    scan_depth = _count(decorators.get("scan_depth")) or _count(extensions.get("scan_depth"))
    case = item.get("case_sensitive")
    if case is None:
        case = extensions.get("case_sensitive")
    name = _text(item.get("name")) or _text(item.get("comment")) or (keys[0] if keys else label)
    return LoreEntry(
        index=index,
        name=name[:120],
        content=content.strip(),
        keys=keys,
        secondary_keys=secondary,
        selective=item.get("selective") is True and bool(secondary),
        logic=_logic(extensions.get("selectiveLogic")),
        constant=constant,
        enabled=enabled,
        insertion_order=_number(item.get("insertion_order"), DEFAULT_ORDER),
        priority=_number(item.get("priority"), DEFAULT_PRIORITY),
        position=position,
        case_sensitive=case is True,
        whole_words=extensions.get("match_whole_words") is True,
        scan_depth=scan_depth,
        notes=tuple(notes),
    )


_DECORATOR = re.compile(r"^@@(\w+)(?:[ \t]+(.*))?$")


def _decorators(content: str) -> tuple[dict[str, str], str]:
    """V3 decorators at the top of the content, and the content without them."""
    found: dict[str, str] = {}
    lines = content.split("\n")
    at = 0
    while at < len(lines):
        match = _DECORATOR.match(lines[at].strip())
        if not match:
            break
        found[match[1].lower()] = (match[2] or "").strip()
        at += 1
    return found, "\n".join(lines[at:])


def _keys(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # some tools write "a, b, c"
        value = value.split(",")
    if not isinstance(value, list):
        return ()
    keys = [k.strip()[:MAX_KEY_CHARS] for k in value if isinstance(k, str) and k.strip()]
    return tuple(keys[:MAX_KEYS])


def _position(value: Any, st_position: Any) -> Position:
    if value in (Position.BEFORE.value, Position.AFTER.value):
        return Position(value)
    if st_position == 0:
        return Position.BEFORE
    if isinstance(st_position, int) and not isinstance(st_position, bool):
        return Position.AFTER
    return Position.BEFORE  # the V2 spec's default, and SillyTavern's


def _logic(value: Any) -> Logic:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(LOGIC_CODES):
        return LOGIC_CODES[value]
    if isinstance(value, str) and value in Logic.__members__.values():
        return Logic(value)
    return Logic.AND_ANY


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _count(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# --- World Info files ------------------------------------------------------------------------

# SillyTavern World Info entry fields and where they go in a character_book entry. What is not
# listed is kept under `extensions` with its own name, so nothing is lost.
_WI_FIELDS = {
    "uid": "id",
    "key": "keys",
    "keysecondary": "secondary_keys",
    "comment": "comment",
    "content": "content",
    "constant": "constant",
    "selective": "selective",
    "order": "insertion_order",
    "caseSensitive": "case_sensitive",
}
_WI_EXTENSIONS = {
    "position": "position",
    "selectiveLogic": "selectiveLogic",
    "matchWholeWords": "match_whole_words",
    "scanDepth": "scan_depth",
    "depth": "depth",
    "excludeRecursion": "exclude_recursion",
    "preventRecursion": "prevent_recursion",
    "probability": "probability",
    "useProbability": "useProbability",
    "displayIndex": "display_index",
    "group": "group",
    "role": "role",
}


class LorebookError(ValueError):
    """A file is not a lorebook PersonaWeb can read. The message says why."""


def normalise_book(value: Any) -> dict[str, Any]:
    """A lorebook file's JSON as a `character_book`: a character_book as it is, SillyTavern
    World Info converted, a Character Card's embedded book taken out of it."""
    if not isinstance(value, dict):
        raise LorebookError("a lorebook must be a JSON object")
    if value.get("spec") in ("chara_card_v2", "chara_card_v3"):
        data = value.get("data")
        book = data.get("character_book") if isinstance(data, dict) else None
        if not isinstance(book, dict):
            raise LorebookError("this Character Card has no lorebook (character_book)")
        return book
    entries = value.get("entries")
    if isinstance(entries, list):
        return value
    if isinstance(entries, dict):
        return _from_world_info(value, entries)
    raise LorebookError("not a lorebook: expected an object with 'entries'")


def _from_world_info(world: dict[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
    converted: list[dict[str, Any]] = []
    for raw in entries.values():
        if not isinstance(raw, dict):
            continue
        entry: dict[str, Any] = {"extensions": {}}
        for key, value in raw.items():
            if key in _WI_FIELDS:
                entry[_WI_FIELDS[key]] = value
            elif key == "disable":
                entry["enabled"] = value is not True
            else:
                entry["extensions"][_WI_EXTENSIONS.get(key, key)] = value
        entry.setdefault("keys", [])
        entry.setdefault("content", "")
        entry.setdefault("enabled", True)
        entry.setdefault("insertion_order", DEFAULT_ORDER)
        position = entry["extensions"].get("position")
        entry["position"] = "before_char" if position == 0 else "after_char"
        if isinstance(raw.get("comment"), str):
            entry["name"] = raw["comment"]
        entry["use_regex"] = False
        converted.append(entry)

    def shown_at(i: int) -> tuple[float, int]:
        # SillyTavern lists entries by display index, else by uid.
        uid = _number(converted[i].get("id"), float(i))
        return (_number(converted[i]["extensions"].get("display_index"), uid), i)

    order = sorted(range(len(converted)), key=shown_at)
    book: dict[str, Any] = {"entries": [converted[i] for i in order], "extensions": {}}
    for key, value in world.items():
        if key == "entries":
            continue
        if key in ("name", "description", "scan_depth", "token_budget", "recursive_scanning"):
            book[key] = value
        else:
            book["extensions"][key] = value
    return book


def complete_book(book: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The book as PersonaWeb stores and exports it: with a name (`name` when it has none) and
    `use_regex` on every entry (false where missing: V3 requires it on each entry, and
    SillyTavern writes it in V2 too). Everything else as it is; `book` itself is not changed.
    Card import stores books completed, so an export (which completes again, for books stored
    before) writes back exactly what is stored."""
    done = dict(book)
    if not _text(done.get("name")):
        done["name"] = name
    entries = done.get("entries")
    if isinstance(entries, list) and any(
        isinstance(e, dict) and "use_regex" not in e for e in entries
    ):
        done["entries"] = [
            {**e, "use_regex": False} if isinstance(e, dict) and "use_regex" not in e else e
            for e in entries
        ]
    return done


# --- scanning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    """An entry the conversation triggered."""

    book: str
    """The book's name."""
    entry: LoreEntry
    """The entry."""
    why: str
    """What triggered it, for a person: "constant", "key “compass”"..."""
    tokens: int
    """Its size in the prompt (estimated)."""
    left_out: str = ""
    """Why it is not in the prompt after all (the budget), or empty."""

    def note(self) -> dict[str, Any]:
        """What the inspector shows of it (JSON-safe)."""
        note: dict[str, Any] = {
            "book": self.book,
            "entry": self.entry.name,
            "why": self.why,
            "position": self.entry.position.value,
            "tokens": self.tokens,
        }
        if self.entry.notes:
            note["notes"] = list(self.entry.notes)
        if self.left_out:
            note["left_out"] = self.left_out
        return note


@dataclass(frozen=True)
class LoreScan:
    """What a scan found, within budget."""

    kept: tuple[Fired, ...] = ()
    """Entries that go into the prompt, in prompt order."""
    left_out: tuple[Fired, ...] = ()
    """Entries that fired but did not fit a budget."""
    budget: int = 0
    """The token budget they were fitted to."""

    def texts(self, position: Position) -> list[str]:
        """The kept entries' texts for one place in the prompt, in order."""
        return [f.entry.content for f in self.kept if f.entry.position is position]

    def note(self) -> dict[str, Any] | None:
        """For the proposal's node data: which entries fired and why (None: none did)."""
        if not self.kept and not self.left_out:
            return None
        return {
            "fired": [f.note() for f in self.kept],
            "left_out": [f.note() for f in self.left_out],
            "budget": self.budget,
        }


@dataclass
class _Matcher:
    """Finds keys in text by one entry's rules."""

    case_sensitive: bool
    whole_words: bool
    cache: dict[str, re.Pattern[str]] = field(default_factory=dict)

    def find(self, keys: Sequence[str], text: str) -> list[str]:
        return [k for k in keys if self._pattern(k).search(text)]

    def _pattern(self, key: str) -> re.Pattern[str]:
        if key not in self.cache:
            body = re.escape(key)
            if self.whole_words:
                body = rf"(?<!\w){body}(?!\w)"
            self.cache[key] = re.compile(body, 0 if self.case_sensitive else re.IGNORECASE)
        return self.cache[key]


def _quote(keys: Sequence[str]) -> str:
    return ", ".join(f"“{k}”" for k in keys)


def triggered(entry: LoreEntry, text: str) -> str | None:
    """Why `entry`'s keys fire on `text`, or None (rules 2 and 3; enabled and constant are the
    caller's business)."""
    matcher = _Matcher(entry.case_sensitive, entry.whole_words)
    primary = matcher.find(entry.keys, text)
    if not primary:
        return None
    why = f"key {_quote(primary[:1])}"
    if not entry.selective:
        return why
    secondary = matcher.find(entry.secondary_keys, text)
    wanted = len(entry.secondary_keys)
    if entry.logic is Logic.AND_ANY and secondary:
        return f"{why} and {_quote(secondary[:1])}"
    if entry.logic is Logic.AND_ALL and len(secondary) == wanted:
        return f"{why} and all of {_quote(secondary)}"
    if entry.logic is Logic.NOT_ANY and not secondary:
        return f"{why}, none of {_quote(entry.secondary_keys)}"
    if entry.logic is Logic.NOT_ALL and len(secondary) < wanted:
        return f"{why}, not all of {_quote(entry.secondary_keys)}"
    return None


def scan(
    books: Sequence[Lorebook],
    messages: Sequence[str],
    *,
    budget: int,
    count: Callable[[str], int] = estimate_tokens,
) -> LoreScan:
    """The entries of `books` that the conversation `messages` (oldest first) triggers, fitted
    to `budget` tokens and to each book's own token budget (see the module's rules)."""
    candidates = [
        ((b, entry.index), book, entry)
        for b, book in enumerate(books)
        for entry in book.entries
        if entry.enabled
    ]
    fired: dict[tuple[int, int], Fired] = {}
    for key, book, entry in candidates:
        depth = entry.scan_depth or book.scan_depth or DEFAULT_SCAN_DEPTH
        why = "constant" if entry.constant else triggered(entry, "\n".join(messages[-depth:]))
        if why is not None:
            fired[key] = Fired(book.name, entry, why, count(entry.content))
    for _round in range(RECURSION_ROUNDS):
        sources = [f for key, f in fired.items() if books[key[0]].recursive]
        added = False
        for key, book, entry in candidates:
            if key in fired:
                continue
            for source in sources:
                why = triggered(entry, source.entry.content)
                if why is not None:
                    fired[key] = Fired(
                        book.name, entry, f"{why} in “{source.entry.name}”", count(entry.content)
                    )
                    added = True
                    break
        if not added:
            break

    def rank(item: tuple[tuple[int, int], Fired]) -> tuple[float, bool, float, tuple[int, int]]:
        key, found = item
        return (-found.entry.priority, not found.entry.constant, found.entry.insertion_order, key)

    kept: list[tuple[tuple[int, int], Fired]] = []
    left: list[Fired] = []
    used = 0
    per_book: dict[int, int] = {}
    for key, found in sorted(fired.items(), key=rank):
        own = books[key[0]].token_budget
        if used + found.tokens > budget:
            left.append(replace(found, left_out=f"over the lore budget of {budget} tokens"))
        elif own is not None and per_book.get(key[0], 0) + found.tokens > own:
            left.append(replace(found, left_out=f"over its book's budget of {own} tokens"))
        else:
            used += found.tokens
            per_book[key[0]] = per_book.get(key[0], 0) + found.tokens
            kept.append((key, found))
    kept.sort(key=lambda item: (item[1].entry.insertion_order, item[0]))
    return LoreScan(tuple(f for _key, f in kept), tuple(left), budget)


# --- one copy of each entry --------------------------------------------------------------------

EntryKey = tuple[tuple[str, ...], str]
"""What makes two entries the same (`entry_key`)."""


def entry_key(entry: LoreEntry) -> EntryKey:
    """An entry's keys (in any order) and its content (whitespace aside): two entries with the
    same are one entry, whatever their names, ids, order or settings."""
    return tuple(sorted(set(entry.keys))), " ".join(entry.content.split())


def book_key(book: Lorebook) -> frozenset[EntryKey]:
    """A book's entries (`entry_key`): two books with the same are the same book."""
    return frozenset(entry_key(e) for e in book.entries)


def same_book(a: Lorebook, b: Lorebook) -> bool:
    """Whether two books have the same entries (`book_key`); a book without entries is the
    same as none."""
    return bool(a.entries) and book_key(a) == book_key(b)


def distinct_books(books: Sequence[Lorebook]) -> tuple[Lorebook, ...]:
    """`books` with every entry once, so that nothing reaches a prompt twice: an entry with the
    keys and content (`entry_key`) of an earlier one, of the same book or an earlier book, is
    dropped, and so is a book left with no entries by that. The first copy is kept, in its book
    and with its book's settings (scan depth, token budget); only a disabled first copy does not
    stand for an enabled one further on (it never fires: the enabled one stays)."""
    seen: set[EntryKey] = set()
    enabled: set[EntryKey] = set()
    kept: list[Lorebook] = []
    for book in books:
        entries: list[LoreEntry] = []
        for entry in book.entries:
            key = entry_key(entry)
            if key in (enabled if entry.enabled else seen):
                continue
            seen.add(key)
            if entry.enabled:
                enabled.add(key)
            entries.append(entry)
        if len(entries) == len(book.entries):
            kept.append(book)
        elif entries:
            kept.append(replace(book, entries=tuple(entries)))
    return tuple(kept)
