"""Character sheets: the data a dialogue persona needs to speak as one character.

A sheet is plain data. It is loaded from the bundled TOML files (`load_sheet`, `load_bundled`),
from Character Cards (see `cards.py`), or from a dict stored in the database (`from_dict`).
Every way in goes through `validate()`, so a sheet that exists is a sheet within limits.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from personaweb.characters.reply_form import FORMS, form_of
from personaweb.characters.safejson import UnsafeJSON, check, check_text
from personaweb.llm.types import LLMProfile

STRATEGIES = ("single", "nested", "linear")
"""How a reply is produced; see DESIGN.md, 'strategy'."""

# The repository's bundled sheets: <repo>/characters/*.toml.
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "characters"

# Limits. They keep prompts bounded and make imported cards fail loudly instead of
# silently blowing up a context window.
MAX_NAME = 80
MAX_SLUG = 80
MAX_DESCRIPTION = 8000
MAX_PERSONALITY = 4000
MAX_MOOD = 1000
MAX_GREETING = 4000
MAX_SCENARIO = 8000
MAX_CREATOR_NOTES = 8000
MAX_SYSTEM_PROMPT = 8000
MAX_POST_HISTORY = 4000
MAX_GREETINGS = 50
MAX_GOALS = 50
MAX_GOAL = 500
MAX_SAMPLE_LINES = 200
MAX_SAMPLE_LINE = 1000
MAX_MES_EXAMPLE = 2 * MAX_SAMPLE_LINES * MAX_SAMPLE_LINE
"""A card's example dialogue (kept for export): room for as many sample lines as a sheet holds,
and the user turns between them."""
MAX_TAGS = 50
MAX_TAG = 64
MAX_PROFILES = 16
MAX_TEMPERATURE = 2.0
MAX_TOKENS = 32768

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class CharacterError(ValueError):
    """A character sheet is invalid or could not be loaded. The message names the field."""


@dataclass
class CharacterSheet:
    """One character: who they are, how they talk, and how their replies are produced."""

    name: str
    """Display name, e.g. "Sara Wilcox"."""
    slug: str = ""
    """Stable identifier used in persona paths (`director/sara_wilcox/...`); derived from name."""
    description: str = ""
    """Who the character is: background, situation, relationships."""
    personality: str = ""
    """Temperament and manner, in a sentence or two."""
    mood: str = ""
    """Initial mood at the start of a conversation."""
    goals: list[str] = field(default_factory=list)
    """What the character wants; the linear strategy tracks recent lines against these."""
    sample_lines: list[str] = field(default_factory=list)
    """Lines in the character's voice; the style rewriter imitates them."""
    mes_example: str = ""
    """The card's example dialogue (`mes_example`) as written, user turns and all, kept so that an
    export writes it back; the sample lines are derived from it (see cards.examples_for_card)."""
    greeting: str = ""
    """Optional first message the character opens a chat with."""
    strategy: str = "nested"
    """How replies are produced: single, nested or linear."""
    reply_form: str = ""
    """The shape of a reply: "spoken" or "narrated" (characters/reply_form.py); empty means the
    form the greeting and sample lines show."""
    profiles: dict[str, LLMProfile] = field(default_factory=dict)
    """LLM profile per persona role (responder, style_rewriter, orchestrator, alignment...)."""
    talkativeness: float = 0.5
    """How readily the character speaks up in a group chat, 0 (never) to 1 (always)."""
    tags: list[str] = field(default_factory=list)
    """Free-form labels for browsing."""
    scenario: str = ""
    """The situation a chat starts in (Character Card `scenario`)."""
    creator_notes: str = ""
    """Notes from the author for people using the character (Character Card `creator_notes`)."""
    system_prompt: str = ""
    """The card's own system prompt (Character Card `system_prompt`): it takes the place of
    PersonaWeb's instructions, `{{original}}` standing for them (personas/card_prompt.py)."""
    post_history_instructions: str = ""
    """Instructions the card puts after the conversation (`post_history_instructions`)."""
    alternate_greetings: list[str] = field(default_factory=list)
    """Other first messages a person may open a chat with (`alternate_greetings`)."""
    group_greetings: list[str] = field(default_factory=list)
    """First messages for group chats only (V3 `group_only_greetings`)."""
    character_book: dict[str, Any] | None = None
    """The card's lorebook (`character_book`) as it came, given a name and `use_regex` where it
    lacked them (characters/lorebook.py `complete_book`)."""
    extensions: dict[str, Any] = field(default_factory=dict)
    """Character Card `data.extensions` keys other than ours, kept so export loses nothing."""
    card_extras: dict[str, Any] = field(default_factory=dict)
    """Other Character Card `data` keys (creator, assets, nickname...), kept verbatim."""

    def __post_init__(self) -> None:
        if not self.slug and isinstance(self.name, str):
            self.slug = slugify(self.name)

    def validate(self) -> CharacterSheet:
        """Raise CharacterError naming the first bad field; return self so calls chain."""
        _check_text("name", self.name, MAX_NAME, required=True)
        _check_text("slug", self.slug, MAX_SLUG, required=True)
        if not _SLUG_RE.match(self.slug):
            raise CharacterError(
                f"slug: {self.slug!r} must be lowercase letters and digits joined by single '_'"
            )
        _check_text("description", self.description, MAX_DESCRIPTION)
        _check_text("personality", self.personality, MAX_PERSONALITY)
        _check_text("mood", self.mood, MAX_MOOD)
        _check_text("greeting", self.greeting, MAX_GREETING)
        _check_text("scenario", self.scenario, MAX_SCENARIO)
        _check_text("creator_notes", self.creator_notes, MAX_CREATOR_NOTES)
        _check_text("system_prompt", self.system_prompt, MAX_SYSTEM_PROMPT)
        _check_text("post_history_instructions", self.post_history_instructions, MAX_POST_HISTORY)
        _check_list("goals", self.goals, MAX_GOALS, MAX_GOAL)
        _check_list("sample_lines", self.sample_lines, MAX_SAMPLE_LINES, MAX_SAMPLE_LINE)
        _check_text("mes_example", self.mes_example, MAX_MES_EXAMPLE)
        _check_list("alternate_greetings", self.alternate_greetings, MAX_GREETINGS, MAX_GREETING)
        _check_list("group_greetings", self.group_greetings, MAX_GREETINGS, MAX_GREETING)
        _check_list("tags", self.tags, MAX_TAGS, MAX_TAG)
        if self.reply_form not in ("", *FORMS):
            raise CharacterError(
                f"reply_form: {self.reply_form!r} is not one of {', '.join(FORMS)}"
            )
        if self.strategy not in STRATEGIES:
            raise CharacterError(
                f"strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}"
            )
        _check_fraction("talkativeness", self.talkativeness)
        _check_profiles(self.profiles)
        for name, value in (("extensions", self.extensions), ("card_extras", self.card_extras)):
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise CharacterError(f"{name}: must be a table with string keys")
            _check_json(name, value)
        if self.character_book is not None:
            if not isinstance(self.character_book, dict):
                raise CharacterError("character_book: must be a JSON object")
            _check_json("character_book", self.character_book)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; `from_dict(to_dict())` gives an equal sheet."""
        return {
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "personality": self.personality,
            "mood": self.mood,
            "goals": list(self.goals),
            "sample_lines": list(self.sample_lines),
            "mes_example": self.mes_example,
            "greeting": self.greeting,
            "strategy": self.strategy,
            "reply_form": self.reply_form,
            "profiles": {role: p.to_dict() for role, p in self.profiles.items()},
            "talkativeness": self.talkativeness,
            "tags": list(self.tags),
            "scenario": self.scenario,
            "creator_notes": self.creator_notes,
            "system_prompt": self.system_prompt,
            "post_history_instructions": self.post_history_instructions,
            "alternate_greetings": list(self.alternate_greetings),
            "group_greetings": list(self.group_greetings),
            "character_book": self.character_book,
            "extensions": dict(self.extensions),
            "card_extras": dict(self.card_extras),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CharacterSheet:
        """Build and validate a sheet. Unknown keys are an error: they are usually typos."""
        if not isinstance(data, Mapping):
            raise CharacterError("sheet: must be a table of fields")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise CharacterError(f"{unknown[0]}: unknown field")
        if "name" not in data:
            raise CharacterError("name: required")
        values = _promote_card_extras(dict(data))
        values["profiles"] = parse_profiles(values.get("profiles", {}))
        if "talkativeness" in values:
            values["talkativeness"] = _as_number("talkativeness", values["talkativeness"])
        return cls(**values).validate()

    def form(self) -> str:
        """The reply form: the chosen one, else the one the greeting and sample lines show."""
        return form_of(self.reply_form, self.greeting, self.sample_lines)

    def with_changes(self, **changes: Any) -> CharacterSheet:
        """A validated copy with some fields replaced."""
        return replace(self, **changes).validate()


# Card keys that sheets stored before they modelled them kept in `card_extras`: such a sheet is
# read with them in their own fields, where the prompts and the form find them.
_PROMOTED = {
    "system_prompt": "system_prompt",
    "post_history_instructions": "post_history_instructions",
    "alternate_greetings": "alternate_greetings",
    "group_only_greetings": "group_greetings",
    "character_book": "character_book",
}


def _promote_card_extras(values: dict[str, Any]) -> dict[str, Any]:
    extras = values.get("card_extras")
    if not isinstance(extras, Mapping) or not any(k in extras for k in _PROMOTED):
        return values
    extras = dict(extras)
    for card_key, field_name in _PROMOTED.items():
        if card_key in extras:
            value = extras.pop(card_key)
            if field_name not in values:
                values[field_name] = value
    values["card_extras"] = extras
    return values


def slugify(name: str) -> str:
    """ "Sara Wilcox" -> "sara_wilcox": ASCII, lowercase, words joined by '_'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_name.lower())
    slug = "_".join(words)[:MAX_SLUG].strip("_")
    if not slug and name.strip():
        # A name with no ASCII letters (say, in Japanese) still needs a stable slug.
        slug = "c_" + hashlib.sha1(name.strip().encode("utf-8")).hexdigest()[:10]
    return slug


def parse_profiles(raw: Any) -> dict[str, LLMProfile]:
    """Turn `{role: {model, temperature, ...}}` into LLMProfiles, rejecting unknown keys."""
    if not isinstance(raw, Mapping):
        raise CharacterError("profiles: must be a table of role -> profile")
    known = set(LLMProfile.__dataclass_fields__)
    profiles: dict[str, LLMProfile] = {}
    for role, value in raw.items():
        if isinstance(value, LLMProfile):
            profiles[str(role)] = value
            continue
        if not isinstance(value, Mapping):
            raise CharacterError(f"profiles.{role}: must be a table")
        unknown = sorted(set(value) - known)
        if unknown:
            raise CharacterError(f"profiles.{role}.{unknown[0]}: unknown field")
        try:
            profiles[str(role)] = LLMProfile.from_dict(dict(value))
        except TypeError as exc:  # pragma: no cover - from_dict filters keys already
            raise CharacterError(f"profiles.{role}: {exc}") from exc
    return profiles


def load_sheet(path: str | Path) -> CharacterSheet:
    """Load one TOML sheet. Errors name the file and the field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CharacterError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CharacterError(f"{path.name}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CharacterError(f"{path.name}: invalid TOML: {exc}") from exc
    try:
        return CharacterSheet.from_dict(data)
    except CharacterError as exc:
        raise CharacterError(f"{path.name}: {exc}") from exc
    except TypeError as exc:
        raise CharacterError(f"{path.name}: {exc}") from exc


def load_bundled(directory: str | Path | None = None) -> list[CharacterSheet]:
    """Load every `*.toml` sheet in a directory (default: the bundled ones), sorted by name."""
    directory = Path(directory) if directory is not None else BUNDLED_DIR
    sheets: list[CharacterSheet] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.toml")):
        sheet = load_sheet(path)
        if sheet.slug in seen:
            raise CharacterError(
                f"{path.name}: slug: {sheet.slug!r} is already used by {seen[sheet.slug].name}"
            )
        seen[sheet.slug] = path
        sheets.append(sheet)
    return sorted(sheets, key=lambda s: (s.name.casefold(), s.slug))


# --- field checks -------------------------------------------------------------------------


def _check_text(name: str, value: Any, limit: int, *, required: bool = False) -> None:
    if not isinstance(value, str):
        raise CharacterError(f"{name}: must be text, not {type(value).__name__}")
    try:
        check_text(value, name)
    except UnsafeJSON as exc:
        raise CharacterError(str(exc)) from None
    if required and not value.strip():
        raise CharacterError(f"{name}: required")
    if len(value) > limit:
        raise CharacterError(f"{name}: {len(value)} characters, at most {limit} allowed")


def _check_list(name: str, value: Any, max_items: int, max_len: int) -> None:
    if not isinstance(value, list):
        raise CharacterError(f"{name}: must be a list of text, not {type(value).__name__}")
    if len(value) > max_items:
        raise CharacterError(f"{name}: {len(value)} items, at most {max_items} allowed")
    for i, item in enumerate(value):
        _check_text(f"{name}[{i}]", item, max_len)
        if not item.strip():
            raise CharacterError(f"{name}[{i}]: empty")


def _check_json(name: str, value: Any) -> None:
    # Kept data is written back on export and stored as JSON: it must be plain, storable JSON.
    try:
        check(value, name)
    except UnsafeJSON as exc:
        raise CharacterError(str(exc)) from None


def _as_number(name: str, value: Any) -> float:
    # bool is an int subclass; `talkativeness = true` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CharacterError(f"{name}: must be a number, not {type(value).__name__}")
    return float(value)


def _check_fraction(name: str, value: Any) -> None:
    number = _as_number(name, value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise CharacterError(f"{name}: {value} is outside 0..1")


def _check_profiles(profiles: Any) -> None:
    if not isinstance(profiles, dict):
        raise CharacterError("profiles: must be a table of role -> profile")
    if len(profiles) > MAX_PROFILES:
        raise CharacterError(f"profiles: {len(profiles)} roles, at most {MAX_PROFILES} allowed")
    for role, profile in profiles.items():
        where = f"profiles.{role}"
        if not isinstance(role, str) or not _ROLE_RE.match(role):
            raise CharacterError(f"{where}: role must be lowercase letters, digits and '_'")
        if not isinstance(profile, LLMProfile):
            raise CharacterError(f"{where}: must be an LLM profile")
        _check_text(f"{where}.model", profile.model, 200)
        temperature = _as_number(f"{where}.temperature", profile.temperature)
        if not (math.isfinite(temperature) and 0.0 <= temperature <= MAX_TEMPERATURE):
            raise CharacterError(
                f"{where}.temperature: {temperature} is outside 0..{MAX_TEMPERATURE}"
            )
        tokens = profile.max_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 < tokens <= MAX_TOKENS:
            raise CharacterError(f"{where}.max_tokens: must be a whole number in 1..{MAX_TOKENS}")
        if profile.base_url is not None:
            _check_text(f"{where}.base_url", profile.base_url, 2000)
            if not profile.base_url.startswith(("http://", "https://")):
                raise CharacterError(f"{where}.base_url: must start with http:// or https://")
        timeout = _as_number(f"{where}.timeout_s", profile.timeout_s)
        if not (math.isfinite(timeout) and 0.0 < timeout <= 3600.0):
            raise CharacterError(f"{where}.timeout_s: {timeout} is outside 0..3600 seconds")


def sheets_by_slug(sheets: Iterable[CharacterSheet]) -> dict[str, CharacterSheet]:
    """Index sheets by slug (last one wins)."""
    return {sheet.slug: sheet for sheet in sheets}
