"""The character form: every sheet field, parsed by Django, judged by `CharacterSheet.validate()`.

The form only turns text into types (numbers, lists of lines). Every rule about content (what is
required, lengths, ranges, the strategy) is the sheet's, so the UI, the TOML files and imported
cards all get the same limits and the same field-named messages.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from django import forms

from personaweb.characters.sheet import STRATEGIES, CharacterError, CharacterSheet, slugify
from personaweb.llm.types import LLMProfile

PROFILE_ROLES = ("responder", "style_rewriter", "orchestrator", "alignment", "character")
"""The persona roles whose LLM profile the form edits. Other roles in a sheet are kept as is."""

PROFILE_PARTS = ("model", "temperature", "max_tokens")

# "profiles.responder.temperature: ..." or "goals[3]: ..." -> the field the message is about.
_FIELD_RE = re.compile(
    r"^(?P<field>[a-z_]+)(?:\[\d+\])?(?:\.(?P<role>[a-z0-9_]+))?"
    r"(?:\.(?P<part>[a-z_]+))?:"
)

_LINES_HELP = "One per line; blank lines are ignored."


def profile_field(role: str, part: str) -> str:
    return f"{role}__{part}"


def split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]


class CharacterForm(forms.Form):
    """Create or edit one character. `base` is the sheet being edited (None for a new one)."""

    name = forms.CharField(required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}))
    personality = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    scenario = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    mood = forms.CharField(required=False, help_text="The mood a conversation starts in.")
    goals = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text=_LINES_HELP
    )
    sample_lines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="The character's voice: one line each; the style rewriter imitates them.",
    )
    greeting = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    strategy = forms.ChoiceField(
        choices=[(s, s) for s in STRATEGIES],
        initial="nested",
        help_text="single: one prompt · nested: orchestrator over responder and rewriter · "
        "linear: responder, rewriter, then goal alignment",
    )
    talkativeness = forms.FloatField(
        required=False,
        initial=0.5,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="In group chats: 0 never speaks up, 1 always does.",
    )
    tags = forms.CharField(required=False, help_text="Separated by commas.")
    creator_notes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="For people using the character; not sent to the model.",
    )

    def __init__(self, *args: Any, base: CharacterSheet | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base = base
        self.sheet: CharacterSheet | None = None
        for role in PROFILE_ROLES:
            self.fields[profile_field(role, "model")] = forms.CharField(
                required=False,
                label=f"{role} model",
                widget=forms.TextInput(attrs={"placeholder": "default"}),
            )
            self.fields[profile_field(role, "temperature")] = forms.FloatField(
                required=False,
                label=f"{role} temperature",
                widget=forms.NumberInput(attrs={"step": "0.1"}),
            )
            self.fields[profile_field(role, "max_tokens")] = forms.IntegerField(
                required=False, label=f"{role} max tokens"
            )
        if base is not None and not self.is_bound:
            self.initial = initial_from_sheet(base)

    def profile_rows(self) -> list[tuple[str, list[forms.BoundField]]]:
        """(role, [model, temperature, max_tokens] bound fields) for the template's table."""
        return [
            (role, [self[profile_field(role, part)] for part in PROFILE_PARTS])
            for role in PROFILE_ROLES
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:  # a number did not parse: say that first, the sheet cannot be built
            return cleaned
        sheet: CharacterSheet | None = self._build_sheet(cleaned)
        # validate() stops at the first bad field. To show every error at once, reset the
        # field it named to a harmless default and ask again, until the sheet passes.
        for _ in range(len(self.fields)):
            if sheet is None:
                break
            try:
                self.sheet = sheet.validate()
                break
            except CharacterError as exc:
                message = str(exc)
                field = self.field_for(message)
                if field is None or field not in self.errors:  # one message per field
                    self.add_error(field, message)
                sheet = _without_bad_field(sheet, message)
        if self.errors:
            self.sheet = None
        return cleaned

    def field_for(self, message: str) -> str | None:
        """The form field a sheet error message is about (None: shown above the form)."""
        match = _FIELD_RE.match(message)
        if not match:
            return None
        field, role, part = match["field"], match["role"], match["part"]
        if field == "profiles" and role:
            name = profile_field(role, part or "model")
            return name if name in self.fields else None
        if field == "slug":
            return "name"  # the slug comes from the name
        return field if field in self.fields else None

    def _build_sheet(self, cleaned: dict[str, Any]) -> CharacterSheet:
        base = self.base
        name = cleaned.get("name") or ""
        talkativeness = cleaned.get("talkativeness")
        return CharacterSheet(
            name=name,
            # A new sheet's slug may still get a suffix when saved (see store.free_slug).
            slug=base.slug if base is not None else slugify(name),
            description=cleaned.get("description") or "",
            personality=cleaned.get("personality") or "",
            mood=cleaned.get("mood") or "",
            goals=split_lines(cleaned.get("goals") or ""),
            sample_lines=split_lines(cleaned.get("sample_lines") or ""),
            greeting=cleaned.get("greeting") or "",
            strategy=cleaned.get("strategy") or "nested",
            profiles=self._profiles(cleaned),
            talkativeness=0.5 if talkativeness is None else talkativeness,
            tags=split_tags(cleaned.get("tags") or ""),
            scenario=cleaned.get("scenario") or "",
            creator_notes=cleaned.get("creator_notes") or "",
            # What the form does not show survives an edit untouched.
            extensions=dict(base.extensions) if base is not None else {},
            card_extras=dict(base.card_extras) if base is not None else {},
        )

    def _profiles(self, cleaned: dict[str, Any]) -> dict[str, LLMProfile]:
        existing = dict(self.base.profiles) if self.base is not None else {}
        profiles = {role: p for role, p in existing.items() if role not in PROFILE_ROLES}
        for role in PROFILE_ROLES:
            model = cleaned.get(profile_field(role, "model")) or ""
            temperature = cleaned.get(profile_field(role, "temperature"))
            max_tokens = cleaned.get(profile_field(role, "max_tokens"))
            if not model and temperature is None and max_tokens is None:
                continue  # all blank: the role uses the default profile
            old = existing.get(role, LLMProfile())
            profiles[role] = LLMProfile(
                model=model,
                temperature=old.temperature if temperature is None else temperature,
                max_tokens=old.max_tokens if max_tokens is None else max_tokens,
                # Not on the form; kept so that an edit does not drop an imported endpoint.
                base_url=old.base_url,
                timeout_s=old.timeout_s,
            )
        return profiles


_HARMLESS = CharacterSheet(name="placeholder")


def _without_bad_field(sheet: CharacterSheet, message: str) -> CharacterSheet | None:
    """The sheet with the field an error names reset to its default (None: cannot tell)."""
    match = _FIELD_RE.match(message)
    if not match:
        return None
    field, role = match["field"], match["role"]
    if field == "profiles" and role:
        return replace(sheet, profiles={r: p for r, p in sheet.profiles.items() if r != role})
    if field in ("name", "slug"):
        return replace(sheet, name=_HARMLESS.name, slug=_HARMLESS.slug)
    if field in CharacterSheet.__dataclass_fields__:
        return replace(sheet, **{field: getattr(_HARMLESS, field)})
    return None


def initial_from_sheet(sheet: CharacterSheet) -> dict[str, Any]:
    """The form's initial values for an existing sheet."""
    initial: dict[str, Any] = {
        "name": sheet.name,
        "description": sheet.description,
        "personality": sheet.personality,
        "scenario": sheet.scenario,
        "mood": sheet.mood,
        # A sample line with a line break in it becomes two lines here: the form is one per
        # line, as the issue asks. The break is rare (multi-line card examples) and visible.
        "goals": "\n".join(sheet.goals),
        "sample_lines": "\n".join(sheet.sample_lines),
        "greeting": sheet.greeting,
        "strategy": sheet.strategy,
        "talkativeness": sheet.talkativeness,
        "tags": ", ".join(sheet.tags),
        "creator_notes": sheet.creator_notes,
    }
    for role in PROFILE_ROLES:
        profile = sheet.profiles.get(role)
        if profile is not None:
            initial[profile_field(role, "model")] = profile.model
            initial[profile_field(role, "temperature")] = profile.temperature
            initial[profile_field(role, "max_tokens")] = profile.max_tokens
    return initial


class ImportForm(forms.Form):
    """One Character Card file: V1, V2 or V3, JSON or PNG."""

    card = forms.FileField(
        label="Character card",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,.png,application/json,image/png"}),
    )
