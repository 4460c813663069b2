"""Editing a lorebook's entries: one small form per entry, over the book as it is stored.

A book is stored exactly as it came (a card's round trip keeps it intact), so an edit changes
only what the person changed: an entry whose form is unchanged keeps its stored object as it
was, unknown keys and all; a changed entry has the fields the form shows rewritten, and keeps
every other key. The same editor serves a card's own `character_book` and standalone books.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django import forms

from personaweb.characters.lorebook import LOGIC_CODES, Logic, Position, read_entry

LOGIC_CHOICES = [
    ("", "keys alone"),
    (Logic.AND_ANY.value, "and any secondary key"),
    (Logic.AND_ALL.value, "and all secondary keys"),
    (Logic.NOT_ANY.value, "and none of the secondary keys"),
    (Logic.NOT_ALL.value, "and not all secondary keys"),
]
CASE_CHOICES = [("", "no (the default)"), ("yes", "yes")]
POSITION_CHOICES = [
    (Position.BEFORE.value, "before the character's definition"),
    (Position.AFTER.value, "after the character's definition"),
]


def split_keys(text: str) -> list[str]:
    return [key.strip() for key in text.split(",") if key.strip()]


class BookForm(forms.Form):
    """A book's own settings."""

    name = forms.CharField(max_length=120)
    scan_depth = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        help_text="Recent messages scanned for keys (blank: 2).",
    )
    token_budget = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100_000,
        help_text="Most tokens this book's entries take in a prompt (blank: no own limit; "
        "lore never takes more than a quarter of the model's context window).",
    )
    recursive_scanning = forms.BooleanField(
        required=False, help_text="Fired entries' text can fire other entries."
    )


class EntryForm(forms.Form):
    """One entry; `index` is its place in the stored list (blank: a new entry)."""

    index = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    name = forms.CharField(max_length=120, required=False)
    keys = forms.CharField(required=False, help_text="Separated by commas.")
    secondary_keys = forms.CharField(required=False, help_text="Separated by commas.")
    logic = forms.ChoiceField(choices=LOGIC_CHOICES, required=False, label="fires on")
    constant = forms.BooleanField(required=False, help_text="Always in the prompt.")
    enabled = forms.BooleanField(required=False, initial=True)
    case_sensitive = forms.ChoiceField(
        choices=CASE_CHOICES, required=False, label="keys match case"
    )
    whole_words = forms.BooleanField(required=False, label="whole words only")
    insertion_order = forms.FloatField(initial=100, help_text="Lower goes higher in the prompt.")
    priority = forms.FloatField(
        required=False, help_text="Over budget, lower priority is left out first (blank: 10)."
    )
    position = forms.ChoiceField(choices=POSITION_CHOICES, initial=Position.BEFORE.value)
    content = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=20_000)


EntryFormSet = forms.formset_factory(EntryForm, extra=1, can_delete=True, max_num=1000)


def entry_initial(raw: Mapping[str, Any], index: int) -> dict[str, Any] | None:
    """An entry form's values from a stored entry (None: not an entry the editor can show)."""
    entry = read_entry(raw, index)
    if isinstance(entry, str):
        return None
    return {
        "index": index,
        "name": raw.get("name") if isinstance(raw.get("name"), str) else "",
        "keys": ", ".join(entry.keys),
        "secondary_keys": ", ".join(entry.secondary_keys),
        "logic": entry.logic.value if entry.selective else "",
        "constant": raw.get("constant") is True,
        "enabled": raw.get("enabled") is not False,
        "case_sensitive": "yes" if entry.case_sensitive else "",
        "whole_words": entry.whole_words,
        "insertion_order": entry.insertion_order,
        "priority": raw.get("priority") if isinstance(raw.get("priority"), int | float) else None,
        "position": entry.position.value,
        "content": str(raw.get("content") or ""),
    }


def book_initial(book: Mapping[str, Any], fallback_name: str) -> dict[str, Any]:
    return {
        "name": book.get("name") if isinstance(book.get("name"), str) else fallback_name,
        "scan_depth": book.get("scan_depth") if isinstance(book.get("scan_depth"), int) else None,
        "token_budget": (
            book.get("token_budget") if isinstance(book.get("token_budget"), int) else None
        ),
        "recursive_scanning": book.get("recursive_scanning") is True,
    }


def forms_for(
    book: Mapping[str, Any] | None, fallback_name: str, data: Any = None
) -> tuple[BookForm, Any]:
    """The book form and the entries formset for a stored book (None: a new one)."""
    stored = book or {}
    raw_entries = _list(stored.get("entries"))
    initial = [entry_initial(raw, i) for i, raw in enumerate(raw_entries) if isinstance(raw, dict)]
    shown = [item for item in initial if item is not None]
    return (
        BookForm(data, initial=book_initial(stored, fallback_name)),
        EntryFormSet(data, initial=shown, prefix="entry"),
    )


def apply(book: Mapping[str, Any] | None, book_form: BookForm, entries: Any) -> dict[str, Any]:
    """The stored book with the (valid) forms' changes (see the module's rules)."""
    stored: dict[str, Any] = copy.deepcopy(dict(book or {}))
    stored.setdefault("extensions", {})
    raw_entries = _list(stored.get("entries"))
    if book_form.has_changed() or not book:
        data = book_form.cleaned_data
        stored["name"] = data["name"]
        for key in ("scan_depth", "token_budget"):
            if data[key] is None:
                stored.pop(key, None)
            else:
                stored[key] = data[key]
        stored["recursive_scanning"] = bool(data["recursive_scanning"])
    shown = {item["index"] for item in entries.initial or []}
    kept: list[Any] = []
    for form in entries.forms:
        if not form.has_changed() and form.cleaned_data.get("index") is None:
            continue  # the empty form for a new entry, left empty
        data = form.cleaned_data
        if data.get("DELETE"):
            continue
        index = data.get("index")
        known = index is not None and index < len(raw_entries) and index in shown
        if known and not form.has_changed():
            kept.append(raw_entries[index])
            continue
        base = copy.deepcopy(raw_entries[index]) if known else _new_entry(raw_entries + kept)
        kept.append(_updated(base, data))
    # Stored entries the editor cannot show (not objects) stay as they were, at the end.
    kept += [raw for raw in raw_entries if not isinstance(raw, dict)]
    stored["entries"] = kept
    return stored


def _new_entry(existing: list[Any]) -> dict[str, Any]:
    ids = [e.get("id") for e in existing if isinstance(e, dict)]
    numbers = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
    return {"id": max(numbers, default=0) + 1, "extensions": {}, "use_regex": False}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _updated(entry: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    found = entry.get("extensions")
    extensions: dict[str, Any] = found if isinstance(found, dict) else {}
    entry["extensions"] = extensions
    entry["keys"] = split_keys(data["keys"] or "")
    secondary = split_keys(data["secondary_keys"] or "")
    entry["secondary_keys"] = secondary
    logic = data["logic"] or ""
    entry["selective"] = bool(logic) and bool(secondary)
    if logic:
        extensions["selectiveLogic"] = LOGIC_CODES.index(Logic(logic))
    if data["name"]:
        entry["name"] = data["name"]
    else:
        entry.pop("name", None)
    entry["constant"] = bool(data["constant"])
    entry["enabled"] = bool(data["enabled"])
    entry["case_sensitive"] = data["case_sensitive"] == "yes"
    extensions["match_whole_words"] = bool(data["whole_words"])
    order = data["insertion_order"]
    entry["insertion_order"] = int(order) if float(order).is_integer() else order
    if data["priority"] is None:
        entry.pop("priority", None)
    else:
        priority = data["priority"]
        entry["priority"] = int(priority) if float(priority).is_integer() else priority
    entry["position"] = data["position"]
    if isinstance(extensions.get("position"), int):
        # SillyTavern's own position number must agree, or it would place the entry elsewhere.
        extensions["position"] = 0 if data["position"] == Position.BEFORE.value else 1
    entry["content"] = data["content"]
    return entry
