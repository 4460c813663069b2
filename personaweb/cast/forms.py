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

from personaweb.characters.reply_form import LABELS
from personaweb.characters.sheet import (
    MAX_GREETINGS,
    STRATEGIES,
    CharacterError,
    CharacterSheet,
    slugify,
)
from personaweb.llm.types import LLMProfile

PROFILE_ROLES = ("responder", "style_rewriter", "orchestrator", "alignment", "character")
"""The persona roles whose LLM profile the form edits. Other roles in a sheet are kept as is."""

PROFILE_PARTS = ("model", "temperature", "max_tokens")

# "profiles.responder.temperature: ..." or "goals[3]: ..." -> the field the message is about.
_FIELD_RE = re.compile(
    r"^(?P<field>[a-z_]+)(?:\[(?P<index>\d+)\])?(?:\.(?P<role>[a-z0-9_]+))?"
    r"(?:\.(?P<part>[a-z_]+))?:"
)

GREETING_LISTS = {"alternate": "alternate_greetings", "group": "group_greetings"}
"""The sheet's lists of greetings, edited as one text box per greeting (and one empty box to
add another): a greeting is a paragraph or more, so one-per-line does not fit them."""


def greeting_field(kind: str, number: int) -> str:
    return f"{kind}_greeting_{number}"


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
        "linear: responder, rewriter, then goal alignment. New sessions with this character "
        "start with it; each session can choose another.",
    )
    reply_form = forms.ChoiceField(
        choices=[("", "as the greeting and sample lines show"), *LABELS.items()],
        required=False,
        help_text="The shape of a reply. Narrated: paragraphs with *actions* around the speech, "
        "as community cards are written. Spoken: one short line, the words said aloud (the "
        "style experiment compares these). Prompts, token limits and stops follow it.",
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
    system_prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The card's own system prompt: it replaces PersonaWeb's instructions; "
        "{{original}} in it stands for them. Blank: PersonaWeb's own.",
    )
    post_history_instructions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Sent after the conversation, as the last thing the model reads.",
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
        for kind, attr in GREETING_LISTS.items():
            have = len(getattr(base, attr)) if base is not None else 0
            posted = _posted_numbers(self.data, kind) if self.is_bound else 0
            for number in range(1, max(have, posted) + 2):
                self.fields[greeting_field(kind, number)] = forms.CharField(
                    required=False,
                    label=f"{kind} greeting {number}",
                    widget=forms.Textarea(attrs={"rows": 2}),
                )
        if base is not None and not self.is_bound:
            self.initial = initial_from_sheet(base)

    def greeting_boxes(self, kind: str) -> list[forms.BoundField]:
        """The text boxes of one list of greetings, in order (the last one empty)."""
        prefix = f"{kind}_greeting_"
        return [self[name] for name in self.fields if name.startswith(prefix)]

    def alternate_boxes(self) -> list[forms.BoundField]:
        return self.greeting_boxes("alternate")

    def group_boxes(self) -> list[forms.BoundField]:
        return self.greeting_boxes("group")

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
        kinds = {attr: kind for kind, attr in GREETING_LISTS.items()}
        if field in kinds and match["index"] is not None:
            name = greeting_field(kinds[field], int(match["index"]) + 1)
            return name if name in self.fields else None
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
            sample_lines=self._sample_lines(cleaned),
            # Not on the form: the card's example dialogue, which export writes back while the
            # sample lines are still the ones it gives (cards.examples_for_card).
            mes_example=base.mes_example if base is not None else "",
            greeting=cleaned.get("greeting") or "",
            strategy=cleaned.get("strategy") or "nested",
            reply_form=cleaned.get("reply_form") or "",
            profiles=self._profiles(cleaned),
            talkativeness=0.5 if talkativeness is None else talkativeness,
            tags=split_tags(cleaned.get("tags") or ""),
            scenario=cleaned.get("scenario") or "",
            creator_notes=cleaned.get("creator_notes") or "",
            system_prompt=cleaned.get("system_prompt") or "",
            post_history_instructions=cleaned.get("post_history_instructions") or "",
            alternate_greetings=self._greetings(cleaned, "alternate"),
            group_greetings=self._greetings(cleaned, "group"),
            # What the form does not show survives an edit untouched (the lorebook has its
            # own page).
            character_book=base.character_book if base is not None else None,
            extensions=dict(base.extensions) if base is not None else {},
            card_extras=dict(base.card_extras) if base is not None else {},
        )

    def _sample_lines(self, cleaned: dict[str, Any]) -> list[str]:
        """The posted sample lines; the sheet's own, exactly, when the box says what it showed.
        (The box is one line each: a sample line with a line break in it would otherwise come
        back as two, and the card's example dialogue would no longer be written back.)"""
        lines = split_lines(cleaned.get("sample_lines") or "")
        base = self.base
        if base is not None and lines == split_lines("\n".join(base.sample_lines)):
            return list(base.sample_lines)
        return lines

    def _greetings(self, cleaned: dict[str, Any], kind: str) -> list[str]:
        prefix = f"{kind}_greeting_"
        boxes = [name for name in self.fields if name.startswith(prefix)]
        texts = [str(cleaned.get(name) or "").strip() for name in boxes]
        return [text for text in texts if text]

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
        # A sample line with a line break in it shows as two lines here: the form is one per
        # line, as the issue asks. Saved unchanged, it stays one line (_sample_lines).
        "goals": "\n".join(sheet.goals),
        "sample_lines": "\n".join(sheet.sample_lines),
        "greeting": sheet.greeting,
        "strategy": sheet.strategy,
        "reply_form": sheet.reply_form,
        "talkativeness": sheet.talkativeness,
        "tags": ", ".join(sheet.tags),
        "creator_notes": sheet.creator_notes,
        "system_prompt": sheet.system_prompt,
        "post_history_instructions": sheet.post_history_instructions,
    }
    for kind, attr in GREETING_LISTS.items():
        for number, text in enumerate(getattr(sheet, attr), 1):
            initial[greeting_field(kind, number)] = text
    for role in PROFILE_ROLES:
        profile = sheet.profiles.get(role)
        if profile is not None:
            initial[profile_field(role, "model")] = profile.model
            initial[profile_field(role, "temperature")] = profile.temperature
            initial[profile_field(role, "max_tokens")] = profile.max_tokens
    return initial


def _posted_numbers(data: Any, kind: str) -> int:
    """The highest greeting box number a posted form holds for one list."""
    prefix = f"{kind}_greeting_"
    tails = [key[len(prefix) :] for key in data if key.startswith(prefix)]
    # At most MAX_GREETINGS boxes, whatever a forged form claims.
    numbers = [int(tail) for tail in tails if tail.isdigit() and len(tail) <= 3]
    return min(max(numbers, default=0), MAX_GREETINGS)


class ImportForm(forms.Form):
    """One Character Card file: V1, V2 or V3, JSON or PNG."""

    card = forms.FileField(
        label="Character card",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,.png,application/json,image/png"}),
    )


class LorebookImportForm(forms.Form):
    """One lorebook file: a Character Card `character_book`, SillyTavern World Info, or a
    Character Card JSON whose book to take."""

    book = forms.FileField(
        label="Lorebook",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
