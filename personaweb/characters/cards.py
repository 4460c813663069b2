"""Character Card V2 and V3 (the SillyTavern / chub formats), as JSON and as PNG.

A card is `{"spec": "chara_card_v2" | "chara_card_v3", "spec_version": ..., "data": {...}}`.
In a PNG the card's JSON is base64-encoded in a `tEXt` chunk: keyword `chara` for V2, `ccv3`
for V3; when both are present `ccv3` wins. Legacy V1 cards (the fields at the top level, no
`spec`) are read too.

Mapping to a CharacterSheet: name, description, personality, scenario, creator_notes, tags,
system_prompt, post_history_instructions, alternate_greetings and character_book map one to one;
`first_mes` is the greeting, `group_only_greetings` the group greetings. `mes_example` is kept
as written (user turns and all), and the sample lines are the character's turns in it, in the
usual `<START>\\n{{char}}: ...` convention; export writes it back while they still are, and a
new one from the sample lines once they were edited (`examples_for_card`). PersonaWeb's own
fields (slug, mood, goals, strategy, profiles, talkativeness and the sample lines as an exact
list) live under `data.extensions.personaweb`. Everything else (other extensions, other data
keys such as creator, nickname or assets) is kept on the sheet and written back on export; so
is the lorebook, as it came, with its name and each entry's `use_regex` filled in where missing
(`lorebook.complete_book`; V3 requires them).

Every export also carries the V1 fields at the top level, beside `data`, as SillyTavern writes
and reads them: name, description, personality, scenario, first_mes, mes_example, creatorcomment
(the creator notes), avatar, talkativeness, fav and tags. On import `data` is what counts; a V1
card's SillyTavern keys (creatorcomment, talkativeness, avatar...) are read as what they are or
dropped, never kept as unknown data keys (which export would write inside `data`).

Untrusted input: anything malformed or over the limits raises CardError and yields nothing.
That includes JSON that Python reads but nothing can store or write back (NaN, lone surrogates,
NUL: see safejson.py): such a card is refused, never cleaned.

Round trips: whatever is stored can be exported and imported back. `check_exportable` refuses
a character whose largest export (a V3 PNG carries the card twice) would be over the import
limit; import and every save go through it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from personaweb.characters import png
from personaweb.characters.lorebook import complete_book
from personaweb.characters.reply_form import detect
from personaweb.characters.safejson import UnsafeJSON, loads
from personaweb.characters.sheet import (
    MAX_SAMPLE_LINES,
    CharacterError,
    CharacterSheet,
    parse_profiles,
    slugify,
)

MAX_CARD_BYTES = 8 * 1024 * 1024
EXPORT_HEADROOM = 2048
"""Bytes a stored character's largest export keeps free under MAX_CARD_BYTES: a re-import may
rename it ("X (2)", slug "x_2"), and the name sits in both cards of a PNG; 2 KB covers the
longest name and slug, in any script."""
EXTENSION_KEY = "personaweb"
SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
KEYWORD_V2 = "chara"
KEYWORD_V3 = "ccv3"

# Data keys the sheet models directly; every other data key goes to `card_extras`.
_MAPPED = frozenset(
    {"name", "description", "personality", "scenario", "first_mes", "mes_example"}
    | {"creator_notes", "tags", "extensions", "system_prompt", "post_history_instructions"}
    | {"alternate_greetings", "group_only_greetings", "character_book"}
)
# Keys the specs require that the sheet does not model, with their empty values. Written on
# export so that strict readers are happy; skipped on import when empty so that a round trip
# leaves `card_extras` as it was.
_REQUIRED_DEFAULTS: dict[str, Any] = {"creator": "", "character_version": ""}
# SillyTavern's own keys at a V1 card's top level: read (creatorcomment, talkativeness) or
# dropped (SillyTavern sets the others itself), never kept among the unknown data keys.
_V1_ST_KEYS = frozenset(
    {"creatorcomment", "avatar", "chat", "talkativeness", "fav", "create_date", "json_data"}
)

_CHAR_PREFIX = re.compile(r"^\s*(?:\{\{char\}\}|<bot>)\s*:\s?", re.IGNORECASE)
_USER_PREFIX = re.compile(r"^\s*(?:\{\{user\}\}|<user>)\s*:", re.IGNORECASE)
_START = re.compile(r"^\s*<start>\s*$", re.IGNORECASE)
_START_SPLIT = re.compile(r"^\s*<start>\s*$", re.IGNORECASE | re.MULTILINE)
# A line that is all bracketed notes: `[Genre: fantasy; Scenario: ...]`, `[{{char}}'s looks: ...]`.
_METADATA = re.compile(r"^[ \t]*\[[^\n]*\][ \t]*$", re.MULTILINE)
# "Speaker:" at the start of a line of example dialogue.
_SPEAKER = re.compile(r"^[ \t]*([^\s:][^:\n]{0,79}?)[ \t]*:", re.MULTILINE)
MAX_SPEAKERS_TRIED = 8
"""Other speakers `examples_for_card` tries as a renamed character's old name."""


class CardError(CharacterError):
    """A Character Card could not be read or written. The message says why."""


# --- public API -----------------------------------------------------------------------------


def parse_card(data: bytes, filename: str = "") -> CharacterSheet:
    """Read a card from JSON or PNG bytes (detected from the content) into a valid sheet."""
    where = f"{filename}: " if filename else ""
    try:
        if len(data) > MAX_CARD_BYTES:
            raise CardError(f"card is {len(data)} bytes, at most {MAX_CARD_BYTES} allowed")
        if png.is_png(data):
            card = _card_from_png(data)
        elif filename.lower().endswith(".png"):
            raise CardError("file is named .png but is not a PNG image")
        else:
            card = _decode_json(data, "card")
        return sheet_from_card(card)
    except CharacterError as exc:  # CardError included; sheet limits surface as CardError
        raise CardError(f"{where}{exc}") from exc


def card_to_json(sheet: CharacterSheet, version: int = 2) -> bytes:
    """The sheet as a Character Card JSON file (UTF-8)."""
    return json.dumps(sheet_to_card(sheet, version), ensure_ascii=False, indent=2).encode()


def card_to_png(sheet: CharacterSheet, version: int = 2, image: bytes | None = None) -> bytes:
    """The sheet embedded in a PNG: `image` if given, else a plain avatar from the name.

    V3 writes both a `ccv3` chunk and a V2 `chara` chunk, so older readers still load it.
    Card chunks already in `image` are replaced.
    """
    entries = {KEYWORD_V2: _b64(sheet_to_card(sheet, 2))}
    if version == 3:
        entries[KEYWORD_V3] = _b64(sheet_to_card(sheet, 3))
    elif version != 2:
        raise ValueError(f"card version must be 2 or 3, not {version!r}")
    base = image if image is not None else png.solid_avatar(sheet.name)
    try:
        return png.with_text(base, entries, drop=(KEYWORD_V2, KEYWORD_V3))
    except png.PNGError as exc:
        raise CardError(f"image: {exc}") from exc


def sheet_to_card(sheet: CharacterSheet, version: int = 2) -> dict[str, Any]:
    """The sheet as a card dict (JSON-safe)."""
    if version not in (2, 3):
        raise ValueError(f"card version must be 2 or 3, not {version!r}")
    sheet.validate()
    ours = {
        "slug": sheet.slug,
        "mood": sheet.mood,
        "goals": list(sheet.goals),
        "strategy": sheet.strategy,
        "reply_form": sheet.reply_form,
        "profiles": {role: p.to_dict() for role, p in sheet.profiles.items()},
        "talkativeness": sheet.talkativeness,
        "sample_lines": list(sheet.sample_lines),
    }
    data: dict[str, Any] = {
        **_REQUIRED_DEFAULTS,
        **sheet.card_extras,
        "name": sheet.name,
        "description": sheet.description,
        "personality": sheet.personality,
        "scenario": sheet.scenario,
        "first_mes": sheet.greeting,
        "mes_example": examples_for_card(sheet),
        "creator_notes": sheet.creator_notes,
        "system_prompt": sheet.system_prompt,
        "post_history_instructions": sheet.post_history_instructions,
        "alternate_greetings": list(sheet.alternate_greetings),
        "tags": list(sheet.tags),
        "extensions": {**sheet.extensions, EXTENSION_KEY: ours},
    }
    # Required in V3; V2 readers (SillyTavern among them) read it too when it is there.
    if version == 3 or sheet.group_greetings:
        data["group_only_greetings"] = list(sheet.group_greetings)
    if sheet.character_book is not None:
        data["character_book"] = complete_book(sheet.character_book, _book_name(sheet.name))
    # The V1 fields beside `data`, as SillyTavern writes them (and its readers look for them).
    mirror: dict[str, Any] = {
        key: data[key]
        for key in ("name", "description", "personality", "scenario", "first_mes", "mes_example")
    }
    mirror.update(
        creatorcomment=data["creator_notes"],
        avatar="none",
        talkativeness=sheet.talkativeness,
        fav=sheet.extensions.get("fav") is True,
        tags=list(data["tags"]),
    )
    if version == 3:
        return {"spec": SPEC_V3, "spec_version": "3.0", **mirror, "data": data}
    return {"spec": SPEC_V2, "spec_version": "2.0", **mirror, "data": data}


def examples_for_card(sheet: CharacterSheet) -> str:
    """The `mes_example` an export writes. The card's own text as it was written (user turns,
    `<START>` markers, narration and all) while the sheet's sample lines are still exactly the
    ones `parse_examples` derives from it; once they differ (the person edited the sample lines
    since), a new text written from the sample lines (`format_examples`): the old one would
    contradict them, and its user turns go with it. A character renamed since (an import numbers
    a taken name) may find its old name in the text, so the text's other speakers are tried as
    the character too."""
    if sheet.mes_example and _gives(sheet.mes_example, sheet.sample_lines, sheet.name):
        return sheet.mes_example
    return format_examples(sheet.sample_lines)


def _gives(text: str, lines: list[str], name: str) -> bool:
    """Whether `lines` are what `parse_examples` finds in `text`, the character being `name` or,
    failing that, one of the text's first other speakers."""
    if parse_examples(text, name) == lines:
        return True
    speakers = dict.fromkeys(
        match[1]
        for match in _SPEAKER.finditer(text)
        if not (_USER_PREFIX.match(match[0]) or _CHAR_PREFIX.match(match[0]))
    )
    tried = list(speakers)[:MAX_SPEAKERS_TRIED]
    return any(parse_examples(text, speaker) == lines for speaker in tried)


def _book_name(name: str) -> str:
    """What a card's own book is called when it has no name of its own."""
    return f"{name.strip()}'s lorebook"


def sheet_from_card(card: Any) -> CharacterSheet:
    """A valid sheet from a decoded card dict (V1, V2 or V3)."""
    if not isinstance(card, dict):
        raise CardError("card must be a JSON object")
    spec = card.get("spec")
    v1 = False
    if spec in (SPEC_V2, SPEC_V3):
        data = card.get("data")
        if not isinstance(data, dict):
            raise CardError(f"{spec} card has no 'data' object")
    elif spec is None and "name" in card:
        data = card  # V1: the fields sit at the top level
        v1 = True
    else:
        raise CardError(f"unsupported card spec {spec!r} (expected {SPEC_V2} or {SPEC_V3})")

    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CardError("card has no name")
    extensions = data.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise CardError("extensions: must be an object")
    extensions = dict(extensions)
    ours = extensions.pop(EXTENSION_KEY, None) or {}
    if not isinstance(ours, dict):
        raise CardError(f"extensions.{EXTENSION_KEY}: must be an object")

    mes_example = _text(data, "mes_example")
    sample_lines = _sample_lines(ours.get("sample_lines"), mes_example, name)
    if isinstance(sample_lines, list) and mes_example == format_examples(sample_lines):
        mes_example = ""  # just what export writes from the sample lines: nothing to keep
    extras = {
        key: value
        for key, value in data.items()
        if key not in _MAPPED
        and not (key in _REQUIRED_DEFAULTS and value == _REQUIRED_DEFAULTS[key])
        and not (v1 and key in _V1_ST_KEYS)
    }
    creator_notes = _text(data, "creator_notes")
    if v1 and "creator_notes" not in data:
        creator_notes = _text(data, "creatorcomment")  # SillyTavern's V1 name for them
    book = data.get("character_book")
    if book is not None:
        if not isinstance(book, dict):
            raise CardError("character_book: must be an object")
        book = complete_book(book, _book_name(name))  # as every export writes it
    sheet = CharacterSheet(
        name=name.strip(),
        slug=ours.get("slug") or slugify(name),
        description=_text(data, "description"),
        personality=_text(data, "personality"),
        mood=ours.get("mood", ""),
        goals=ours.get("goals", []),
        sample_lines=sample_lines,
        mes_example=mes_example,
        greeting=_text(data, "first_mes"),
        # A card without sample lines gives the style rewriter no voice to imitate: it starts
        # on the single prompt (the character page says why nested needs them).
        strategy=ours.get("strategy") or ("nested" if sample_lines else "single"),
        # Chosen on import from what the card shows (characters/reply_form.py), so the page
        # shows it and a later edit of the greeting does not change it behind the person.
        reply_form=ours["reply_form"] if "reply_form" in ours else _form_shown(data, sample_lines),
        profiles=parse_profiles(ours.get("profiles", {})),
        talkativeness=_talkativeness(ours, extensions, data if v1 else {}),
        tags=_tags(data),
        scenario=_text(data, "scenario"),
        creator_notes=creator_notes,
        system_prompt=_text(data, "system_prompt"),
        post_history_instructions=_text(data, "post_history_instructions"),
        alternate_greetings=_greetings(data, "alternate_greetings"),
        group_greetings=_greetings(data, "group_only_greetings"),
        character_book=book,
        extensions=extensions,
        card_extras=extras,
    )
    return sheet.validate()


def _form_shown(data: dict[str, Any], sample_lines: Any) -> str:
    """The reply form a card shows in its greeting, its example lines and the example dialogue
    in its description (`<START>` blocks)."""
    name = str(data.get("name") or "")
    described = [
        line
        for block in _START_SPLIT.split(_text(data, "description").replace("\r\n", "\n"))[1:]
        for line in parse_examples(block, name, blank_ends_turn=True)
    ]
    examples = sample_lines if isinstance(sample_lines, list) else []
    return detect(_text(data, "first_mes"), [*map(str, examples), *described])


def _sample_lines(exact: Any, mes_example: str, name: str) -> Any:
    """A card's sample lines: PersonaWeb's exact list when the card has one and its
    `mes_example` still says them (kept as written, or written from them); otherwise the
    character's lines in `mes_example` (a card from elsewhere, or one whose example dialogue was
    edited elsewhere since PersonaWeb wrote it)."""
    if exact is None:
        return parse_examples(mes_example, name)
    if not (isinstance(exact, list) and all(isinstance(line, str) for line in exact)):
        return exact  # validate() says what is wrong with it
    if mes_example == format_examples(exact) or _gives(mes_example, exact, name):
        return exact
    return parse_examples(mes_example, name)


def check_exportable(
    sheet: CharacterSheet, image: bytes | None = None, *, headroom: int = EXPORT_HEADROOM
) -> None:
    """Raise CardError when the largest file export can make of this character (with its
    picture) would be over the import limit less `headroom`: what PersonaWeb writes, it must
    read back, even renamed (a rename on import uses less than EXPORT_HEADROOM)."""
    size = export_size(sheet, image)
    if size > MAX_CARD_BYTES - headroom:
        room = f", less {headroom // 1024} KB kept for a rename" if headroom else ""
        raise CardError(
            f"the character would export as a {size:,}-byte card file ({_mb(size)}), over the "
            f"{MAX_CARD_BYTES - headroom:,} bytes that can be imported back "
            f"({_mb(MAX_CARD_BYTES)}{room}; a PNG card carries its text twice, "
            "base64-encoded): make the lorebook, the kept card data or the picture smaller"
        )


def export_size(sheet: CharacterSheet, image: bytes | None = None) -> int:
    """Bytes of the largest export: a V3 PNG (both cards, and the picture) or a JSON file."""
    return max(
        len(card_to_png(sheet, 3, image=image)),
        len(card_to_json(sheet, 3)),
        len(card_to_json(sheet, 2)),
    )


def picture_of(data: bytes) -> bytes:
    """A PNG card's picture without its card chunks: what is stored (the card text is stored
    apart, and export writes it back in)."""
    try:
        return png.with_text(data, {}, drop=(KEYWORD_V2, KEYWORD_V3))
    except png.PNGError as exc:
        raise CardError(f"image: {exc}") from exc


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def format_examples(lines: list[str]) -> str:
    """Sample lines as `mes_example`: one `<START>` block per line, spoken by {{char}}."""
    return "\n".join(f"<START>\n{{{{char}}}}: {line}" for line in lines)


def parse_examples(text: str, name: str = "", *, blank_ends_turn: bool = False) -> list[str]:
    """The character's lines from a `mes_example`; user turns and markers are dropped.

    A line is the character's if it starts with `{{char}}:`, `<BOT>:` or `<name>:`; following
    lines without a speaker belong to the same turn (up to a blank line, with
    `blank_ends_turn`: prose after example dialogue is not a line of it).
    """
    named = re.compile(rf"^\s*{re.escape(name.strip())}\s*:\s?", re.IGNORECASE) if name else None
    lines: list[str] = []
    current: list[str] | None = None  # the character's turn being collected, if any

    def finish() -> None:
        if current is not None and "\n".join(current).strip():
            lines.append("\n".join(current).strip())

    for raw in text.replace("\r\n", "\n").split("\n"):
        match = _CHAR_PREFIX.match(raw) or (named.match(raw) if named else None)
        if match:
            finish()
            current = [raw[match.end() :]]
        elif _USER_PREFIX.match(raw) or _START.match(raw) or (blank_ends_turn and not raw.strip()):
            finish()
            current = None
        elif current is not None:
            current.append(raw)
    finish()
    return lines


@dataclass(frozen=True)
class FoundLine:
    """A line of the character's own, found outside `mes_example`."""

    line: str
    """The line as written (macros and all)."""
    source: str
    """Where it was found: "description" or "greeting"."""


def lines_elsewhere(sheet: CharacterSheet) -> list[FoundLine]:
    """The character's own example lines written in its description or greeting, as many
    community cards do: `<START>` blocks with `{{char}}:` lines (or, with no `<START>`,
    lines that begin `{{char}}:`). Each line once, at most MAX_SAMPLE_LINES. A line that is all
    bracketed notes (`[Genre: fantasy; Scenario: ...]`, `[{{char}}'s personality: ...]`) is the
    card's metadata: it ends a turn, and is never a line."""
    found: list[FoundLine] = []
    seen: set[str] = set()
    for source, written in (("description", sheet.description), ("greeting", sheet.greeting)):
        text = _METADATA.sub("", written.replace("\r\n", "\n"))
        blocks = _START_SPLIT.split(text)
        if len(blocks) > 1:
            # Text before the first <START> is prose; the blocks may name the speaker.
            lines = [
                line
                for block in blocks[1:]
                for line in parse_examples(block, sheet.name, blank_ends_turn=True)
            ]
        else:
            lines = parse_examples(text, blank_ends_turn=True)
        for line in lines:
            if _METADATA.fullmatch(line):
                continue  # `{{char}}: [notes]`
            if line not in seen and len(found) < MAX_SAMPLE_LINES:
                seen.add(line)
                found.append(FoundLine(line, source))
    return found


# --- decoding helpers -------------------------------------------------------------------------


def _card_from_png(data: bytes) -> Any:
    try:
        entries = png.text_chunks(png.read_chunks(data))
    except png.PNGError as exc:
        raise CardError(str(exc)) from exc
    for keyword in (KEYWORD_V3, KEYWORD_V2):  # the spec: prefer ccv3 when both are there
        if keyword in entries:
            try:
                raw = base64.b64decode("".join(entries[keyword].split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise CardError(f"'{keyword}' chunk is not valid base64") from exc
            return _decode_json(raw, f"'{keyword}' chunk")
    raise CardError("PNG has no character card (no 'chara' or 'ccv3' text chunk)")


def _decode_json(raw: bytes, what: str) -> Any:
    try:
        return loads(raw, what)
    except UnsafeJSON as exc:
        raise CardError(str(exc)) from exc


def _b64(card: dict[str, Any]) -> str:
    text = json.dumps(card, ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CardError(f"{key}: must be text, not {type(value).__name__}")
    return value


def _greetings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise CardError(f"{key}: must be a list of text")
    # Cards often carry an empty placeholder greeting; it is nothing to choose from.
    return [g for g in value if g.strip()]


def _tags(data: dict[str, Any]) -> list[str]:
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CardError("tags: must be a list of text")
    return [t for t in tags if t.strip()]


def _talkativeness(ours: dict[str, Any], extensions: dict[str, Any], v1: dict[str, Any]) -> float:
    value = ours.get("talkativeness")
    if value is None:
        # SillyTavern keeps its own talkativeness, as a string, in extensions (on a V1 card, `v1`,
        # at the top level). It is only a hint, so a bad value falls back to the default
        # instead of refusing the card.
        try:
            hint = float(extensions.get("talkativeness", v1.get("talkativeness", 0.5)))
        except (TypeError, ValueError):
            return 0.5
        return hint if 0.0 <= hint <= 1.0 else 0.5
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CardError("talkativeness: must be a number")
    return float(value)
