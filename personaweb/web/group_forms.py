"""The new-group-chat form: members (only the person's own characters), their order and
per-character reply policies, and the session's heat settings.

The members table is plain inputs named per character (`member`, `position:<id>`,
`policy:<id>`), so it stays one row per character; the form validates all of it and turns it
into `ChatSession.members` and `ChatSession.group_settings`.
"""

from __future__ import annotations

from typing import Any

from django import forms

from personaweb.cast import sessions as card_sessions
from personaweb.llm.types import LLMProfile
from personaweb.personas.heat import DEFAULT_TURN_CAP, HeatConfig, ReplyPolicy, TurnOrder
from personaweb.web.ids import PkMultipleChoiceField
from personaweb.web.models import Character, Mode, Strategy

POLICY_CHOICES = [
    (ReplyPolicy.HEURISTIC.value, "heuristic heat (no LLM call)"),
    (ReplyPolicy.PREPASS.value, "LLM pre-pass (a cheap call decides first)"),
    (ReplyPolicy.NULL_ACTION.value, "null action (the reply call may pass)"),
    (ReplyPolicy.ASYNC_RATING.value, "async ratings (background calls nudge the heat)"),
]
ORDER_CHOICES = [
    (TurnOrder.NATURAL.value, "natural: the mentioned first, then by talkativeness"),
    (TurnOrder.LIST.value, "list: member order breaks the tie"),
    (TurnOrder.POOLED.value, "pooled: each at most once per user message"),
    (TurnOrder.MANUAL.value, "manual: you pick who speaks next"),
]
MIN_MEMBERS = 2
MAX_MEMBERS = 8


class GroupChatForm(forms.Form):
    title = forms.CharField(max_length=200, required=False)
    members = PkMultipleChoiceField(
        queryset=Character.objects.none(),
        error_messages={
            "required": f"Pick at least {MIN_MEMBERS} characters.",
            "invalid_choice": "That character is not one of yours.",
        },
    )
    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.SINGLE)
    mode = forms.ChoiceField(
        choices=[(Mode.AUTONOMOUS, "autonomous"), (Mode.REVIEW, "review every proposal")],
        initial=Mode.AUTONOMOUS,
    )
    policy = forms.ChoiceField(choices=POLICY_CHOICES, initial=ReplyPolicy.HEURISTIC.value)
    order = forms.ChoiceField(choices=ORDER_CHOICES, initial=TurnOrder.NATURAL.value)
    half_life_s = forms.FloatField(
        label="heat half-life (s)", min_value=1, max_value=86_400, initial=HeatConfig.half_life_s
    )
    threshold = forms.FloatField(
        label="heat threshold", min_value=0.01, max_value=1.5, initial=HeatConfig.threshold
    )
    turn_cap = forms.IntegerField(
        label="turn cap per user message", min_value=1, max_value=30, initial=DEFAULT_TURN_CAP
    )
    prepass_threshold = forms.FloatField(
        label="pre-pass threshold", min_value=0, max_value=1, initial=0.6
    )
    prepass_model = forms.CharField(
        label="pre-pass / rating model",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "default model"}),
    )
    prepass_temperature = forms.FloatField(
        label="pre-pass / rating temperature", min_value=0, max_value=2, initial=0.0
    )

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.characters = list(Character.objects.filter(owner=owner))
        members = self.fields["members"]
        assert isinstance(members, forms.ModelMultipleChoiceField)
        members.queryset = Character.objects.filter(owner=owner)

    def rows(self) -> list[dict[str, Any]]:
        """One row per character for the members table, with what was submitted (if any)."""
        chosen = {str(v) for v in self["members"].value() or []} if self.is_bound else set()
        out = []
        user = str(self.card_context()["user_name"] or "")
        for i, character in enumerate(self.characters, 1):
            key = str(character.pk)
            out.append(
                {
                    "character": character,
                    "checked": key in chosen,
                    "position": self.data.get(f"position:{key}", i) if self.is_bound else i,
                    "policy": self.data.get(f"policy:{key}", "") if self.is_bound else "",
                    "model": self.data.get(f"model:{key}", "") if self.is_bound else "",
                    "temperature": (
                        self.data.get(f"temperature:{key}", "") if self.is_bound else ""
                    ),
                    # Which card greeting it opens the chat with (cast/sessions.py).
                    "greetings": card_sessions.greeting_options(
                        character, self.data if self.is_bound else None, group=True, user=user
                    ),
                }
            )
        return out

    def card_context(self) -> dict[str, Any]:
        """The person's name and lorebooks for the form (cast/sessions.py)."""
        return card_sessions.form_context(self.owner, self.data if self.is_bound else None)

    def clean_members(self) -> list[Character]:
        members = list(self.cleaned_data["members"])
        if len(members) < MIN_MEMBERS:
            raise forms.ValidationError(f"Pick at least {MIN_MEMBERS} characters.")
        if len(members) > MAX_MEMBERS:
            raise forms.ValidationError(f"A group chat has at most {MAX_MEMBERS} characters.")
        positions: dict[int, int] = {}
        for character in members:
            raw = str(self.data.get(f"position:{character.pk}", "") or "0").strip()
            try:
                positions[character.pk] = int(raw)
            except ValueError:
                raise forms.ValidationError(
                    f"The position of {character.name} must be a whole number."
                ) from None
        return sorted(members, key=lambda c: (positions[c.pk], c.name))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        overrides: dict[str, str] = {}
        allowed = {value for value, _ in POLICY_CHOICES}
        for character in cleaned.get("members") or []:
            value = str(self.data.get(f"policy:{character.pk}", "") or "")
            if value and value not in allowed:
                self.add_error(None, f"Unknown reply policy for {character.name}: {value!r}.")
            elif value and value != cleaned.get("policy"):
                overrides[character.slug] = value
        cleaned["overrides"] = overrides
        cleaned["voices"] = self._voices(cleaned.get("members") or [])
        try:
            cleaned["card_choices"] = card_sessions.read_choices(
                self.data, self.owner, cleaned.get("members") or [], group=True
            )
        except ValueError as exc:
            self.add_error(None, str(exc))
        return cleaned

    def _voices(self, members: list[Character]) -> dict[str, tuple[str, float | None]]:
        """Per member slug: the model and temperature its own personas use (blank: defaults)."""
        voices: dict[str, tuple[str, float | None]] = {}
        for character in members:
            model = str(self.data.get(f"model:{character.pk}", "") or "").strip()[:200]
            raw = str(self.data.get(f"temperature:{character.pk}", "") or "").strip()
            temperature: float | None = None
            if raw:
                try:
                    temperature = float(raw)
                except ValueError:
                    temperature = -1.0
                if not 0.0 <= temperature <= 2.0:
                    self.add_error(
                        None, f"The temperature of {character.name} must be between 0 and 2."
                    )
                    continue
            if model or temperature is not None:
                voices[character.slug] = (model, temperature)
        return voices

    def profiles(self) -> dict[str, dict[str, Any]]:
        """ChatSession.profiles for the members' personas (`director/<slug>/...`): the chosen
        model for all of them; the temperature for those that speak (an orchestrator's or an
        alignment check's low temperature is kept, as it steers rather than speaks)."""
        from personaweb.personas import group_hierarchy
        from personaweb.personas.dialogue import chat_character
        from personaweb.personas.persona import BasicPersona
        from personaweb.personas.structured import StructuredPersona

        members = self.cleaned_data["members"]
        voices = self.cleaned_data["voices"]
        director = group_hierarchy(
            [(c.slug, chat_character(c.data)) for c in members],
            strategy=self.cleaned_data["strategy"],
        )
        out: dict[str, dict[str, Any]] = {}
        for slug, (model, temperature) in voices.items():
            for persona in director.children[slug].walk():
                speaks = isinstance(persona, BasicPersona) and not isinstance(
                    persona, StructuredPersona
                )
                profile = persona.profile
                out[persona.path] = LLMProfile(
                    model=model or profile.model,
                    temperature=(
                        temperature if speaks and temperature is not None else profile.temperature
                    ),
                    max_tokens=profile.max_tokens,
                    base_url=profile.base_url,
                ).to_dict()
        return out

    def group_settings(self) -> dict[str, Any]:
        """The validated settings as ChatSession.group_settings (group_settings_from_dict)."""
        data = self.cleaned_data
        profile = LLMProfile(
            model=data["prepass_model"].strip(),
            temperature=data["prepass_temperature"],
            max_tokens=120,
        )
        return {
            "policy": data["policy"],
            "overrides": data["overrides"],
            "order": data["order"],
            "half_life_s": data["half_life_s"],
            "threshold": data["threshold"],
            "turn_cap": data["turn_cap"],
            "prepass_threshold": data["prepass_threshold"],
            "history_window": 5,
            "prepass_profile": profile.to_dict(),
        }
