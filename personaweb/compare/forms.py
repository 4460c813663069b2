"""The new-comparison form: a character, a script, two to four contenders, blind mode."""

from __future__ import annotations

import os
from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.forms import BaseFormSet, formset_factory

from personaweb.compare.samples import MAX_SAMPLES, default_samples
from personaweb.compare.setup import (
    DEFAULT_SCRIPT,
    MAX_CONTENDERS,
    MAX_LINE_CHARS,
    MAX_LINES,
    ContenderSpec,
)
from personaweb.llm.config import endpoint_from_env
from personaweb.web.ids import PkChoiceField
from personaweb.web.models import Character, Strategy


def samples_default() -> int:
    """The default for the configured endpoint (read as the app reads it, each time)."""
    try:
        return default_samples(endpoint_from_env(os.environ).embedded)
    except ValueError:  # a malformed setting: the run will say so; the form needs a number
        return 1


class ComparisonForm(forms.Form):
    character = PkChoiceField(queryset=Character.objects.none(), empty_label=None)
    title = forms.CharField(
        max_length=200, required=False, help_text="Optional; named after the character if empty"
    )
    script = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 7}),
        initial="\n".join(DEFAULT_SCRIPT),
        help_text=f"One user line per line, up to {MAX_LINES}; blank lines are skipped.",
        error_messages={"required": "Write at least one line for the contenders to answer."},
    )
    samples = forms.IntegerField(
        min_value=1,
        max_value=MAX_SAMPLES,
        required=False,
        label="Samples per line",
        help_text=(
            "Each line is answered this many times per contender, from the same conversation, "
            "so every figure gets a 95% interval. Empty: one on the embedded model, five on a "
            "real one."
        ),
    )
    blind = forms.BooleanField(
        required=False,
        label="Blind mode",
        help_text="Hide which column is which (A, B, …) and vote for the best reply per line.",
    )

    def __init__(self, *args: Any, owner: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "samples" not in self.initial:
            self.initial["samples"] = samples_default()
        # Only the person's own characters can be chosen; another's id is "not a valid choice".
        field = self.fields["character"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Character.objects.filter(owner=owner).order_by("name")

    def clean_script(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["script"].splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            raise ValidationError("Write at least one line for the contenders to answer.")
        if len(lines) > MAX_LINES:
            raise ValidationError(f"At most {MAX_LINES} lines (this script has {len(lines)}).")
        for number, line in enumerate(lines, 1):
            if len(line) > MAX_LINE_CHARS:
                raise ValidationError(
                    f"Line {number} has {len(line)} characters; at most {MAX_LINE_CHARS}."
                )
        return lines

    def clean_samples(self) -> int:
        samples: int | None = self.cleaned_data.get("samples")
        return samples if samples is not None else samples_default()

    def clean_character(self) -> Character:
        character: Character = self.cleaned_data["character"]
        if not character.data.get("sample_lines"):
            # Style adherence compares replies with the character's sample lines.
            raise ValidationError(
                f"{character.name} has no sample lines, so style cannot be measured; "
                "add some on the Characters page (it offers any example lines the card "
                "keeps in its description)."
            )
        return character


class ContenderForm(forms.Form):
    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.NESTED)
    model = forms.CharField(
        max_length=200, required=False, help_text="Empty: the endpoint's default model"
    )
    temperature = forms.FloatField(min_value=0.0, max_value=2.0, initial=0.7)

    def spec(self) -> ContenderSpec:
        data = self.cleaned_data
        return ContenderSpec(data["strategy"], data["model"].strip(), data["temperature"])


class BaseContenderFormSet(BaseFormSet):
    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs = super().get_form_kwargs(index)
        if index is not None:
            # Every row on the page is a contender, one added and left at its defaults too.
            # Django lets an unchanged extra row through unvalidated, with no cleaned data.
            kwargs["empty_permitted"] = False
        return kwargs


ContenderFormSet = formset_factory(
    ContenderForm,
    formset=BaseContenderFormSet,
    extra=0,
    min_num=2,
    max_num=MAX_CONTENDERS,
    validate_min=True,
    validate_max=True,
)

PREFIX = "contenders"


def contender_formset(data: Any = None, initial: list[dict] | None = None) -> Any:
    if initial is None:
        initial = [
            {"strategy": Strategy.SINGLE, "temperature": 0.7},
            {"strategy": Strategy.NESTED, "temperature": 0.7},
        ]
    return ContenderFormSet(data, prefix=PREFIX, initial=None if data else initial)
