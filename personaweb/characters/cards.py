"""Character Card V2 and V3 (the SillyTavern / chub formats), as JSON and as PNG.

A card is `{"spec": "chara_card_v2" | "chara_card_v3", "spec_version": ..., "data": {...}}`.
In a PNG the card's JSON is base64-encoded in a `tEXt` chunk: keyword `chara` for V2, `ccv3`
for V3; when both are present `ccv3` wins. Legacy V1 cards (the fields at the top level, no
`spec`) are read too.

Mapping to a CharacterSheet: name, description, personality, scenario, creator_notes, tags map
one to one; `first_mes` is the greeting; `mes_example` carries the sample lines in the usual
`<START>\\n{{char}}: ...` convention. PersonaWeb's own fields (slug, mood, goals, strategy,
profiles, talkativeness and the sample lines as an exact list) live under
`data.extensions.personaweb`. Everything else (other extensions, other data keys such as
creator, character_book or assets) is kept on the sheet and written back on export.

Untrusted input: anything malformed or over the limits raises CardError and yields nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from personaweb.characters import png
from personaweb.characters.sheet import (
    CharacterError,
    CharacterSheet,
    parse_profiles,
    slugify,
)

MAX_CARD_BYTES = 8 * 1024 * 1024
EXTENSION_KEY = "personaweb"
SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
KEYWORD_V2 = "chara"
KEYWORD_V3 = "ccv3"

# Data keys the sheet models directly; every other data key goes to `card_extras`.
_MAPPED = frozenset(
    {"name", "description", "personality", "scenario", "first_mes", "mes_example"}
    | {"creator_notes", "tags", "extensions"}
)
# Keys the specs require, with their empty values. Written on export so that strict readers
# are happy; skipped on import when empty so that a round trip leaves `card_extras` as it was.
_REQUIRED_DEFAULTS: dict[str, Any] = {
    "system_prompt": "",
    "post_history_instructions": "",
    "alternate_greetings": [],
    "creator": "",
    "character_version": "",
}
_REQUIRED_DEFAULTS_V3: dict[str, Any] = {"group_only_greetings": []}

_CHAR_PREFIX = re.compile(r"^\s*(?:\{\{char\}\}|<bot>)\s*:\s?", re.IGNORECASE)
_USER_PREFIX = re.compile(r"^\s*(?:\{\{user\}\}|<user>)\s*:", re.IGNORECASE)
_START = re.compile(r"^\s*<start>\s*$", re.IGNORECASE)


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
        "profiles": {role: p.to_dict() for role, p in sheet.profiles.items()},
        "talkativeness": sheet.talkativeness,
        "sample_lines": list(sheet.sample_lines),
    }
    defaults = dict(_REQUIRED_DEFAULTS)
    if version == 3:
        defaults |= _REQUIRED_DEFAULTS_V3
    data: dict[str, Any] = {
        **defaults,
        **sheet.card_extras,
        "name": sheet.name,
        "description": sheet.description,
        "personality": sheet.personality,
        "scenario": sheet.scenario,
        "first_mes": sheet.greeting,
        "mes_example": format_examples(sheet.sample_lines),
        "creator_notes": sheet.creator_notes,
        "tags": list(sheet.tags),
        "extensions": {**sheet.extensions, EXTENSION_KEY: ours},
    }
    if version == 3:
        return {"spec": SPEC_V3, "spec_version": "3.0", "data": data}
    return {"spec": SPEC_V2, "spec_version": "2.0", "data": data}


def sheet_from_card(card: Any) -> CharacterSheet:
    """A valid sheet from a decoded card dict (V1, V2 or V3)."""
    if not isinstance(card, dict):
        raise CardError("card must be a JSON object")
    spec = card.get("spec")
    if spec in (SPEC_V2, SPEC_V3):
        data = card.get("data")
        if not isinstance(data, dict):
            raise CardError(f"{spec} card has no 'data' object")
    elif spec is None and "name" in card:
        data = card  # V1: the fields sit at the top level
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

    sample_lines = ours.get("sample_lines")
    if sample_lines is None:
        sample_lines = parse_examples(_text(data, "mes_example"), name)
    defaults = _REQUIRED_DEFAULTS | _REQUIRED_DEFAULTS_V3
    extras = {
        key: value
        for key, value in data.items()
        if key not in _MAPPED and not (key in defaults and value == defaults[key])
    }
    sheet = CharacterSheet(
        name=name.strip(),
        slug=ours.get("slug") or slugify(name),
        description=_text(data, "description"),
        personality=_text(data, "personality"),
        mood=ours.get("mood", ""),
        goals=ours.get("goals", []),
        sample_lines=sample_lines,
        greeting=_text(data, "first_mes"),
        strategy=ours.get("strategy", "nested"),
        profiles=parse_profiles(ours.get("profiles", {})),
        talkativeness=_talkativeness(ours, extensions),
        tags=_tags(data),
        scenario=_text(data, "scenario"),
        creator_notes=_text(data, "creator_notes"),
        extensions=extensions,
        card_extras=extras,
    )
    return sheet.validate()


def format_examples(lines: list[str]) -> str:
    """Sample lines as `mes_example`: one `<START>` block per line, spoken by {{char}}."""
    return "\n".join(f"<START>\n{{{{char}}}}: {line}" for line in lines)


def parse_examples(text: str, name: str = "") -> list[str]:
    """The character's lines from a `mes_example`; user turns and markers are dropped.

    A line is the character's if it starts with `{{char}}:`, `<BOT>:` or `<name>:`; following
    lines without a speaker belong to the same turn.
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
        elif _USER_PREFIX.match(raw) or _START.match(raw):
            finish()
            current = None
        elif current is not None:
            current.append(raw)
    finish()
    return lines


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
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CardError(f"{what} is not UTF-8 text") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CardError(f"{what} is not valid JSON: {exc}") from exc


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


def _tags(data: dict[str, Any]) -> list[str]:
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CardError("tags: must be a list of text")
    return [t for t in tags if t.strip()]


def _talkativeness(ours: dict[str, Any], extensions: dict[str, Any]) -> float:
    value = ours.get("talkativeness")
    if value is None:
        # SillyTavern keeps its own talkativeness, as a string, in extensions. It is only a
        # hint, so a bad value falls back to the default instead of refusing the card.
        try:
            hint = float(extensions.get("talkativeness", 0.5))
        except (TypeError, ValueError):
            return 0.5
        return hint if 0.0 <= hint <= 1.0 else 0.5
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CardError("talkativeness: must be a number")
    return float(value)
