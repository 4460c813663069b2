"""Ids and indexes that arrive in a request: parsed here, and only here.

Rules:
- An id is 1 to 19 ASCII digits, nothing else: no sign, no space, no underscore. `str.isdigit()`
  is not that test: it accepts `²`, which `int()` then rejects, and `int()` reads `١٢` (Arabic-
  Indic digits) and ` 12 ` as 12, so the id a person sees is not the one the server uses.
- Its value is 1 .. 2**63 - 1, the range of a database key (BigAutoField: bigint in SQLite and
  PostgreSQL). A larger number would overflow the column instead of finding nothing.
- An index (a line of a script, say) is the same digits, within 0 .. size - 1.

Anything else is "no such id": the caller answers 400 or 404, and neither `int()` nor the ORM
ever sees the raw text. Form fields that choose rows by id (`PkChoiceField`,
`PkMultipleChoiceField`) apply the same rule before Django's lookup does.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

MAX_PK = 2**63 - 1
"""The largest value a bigint primary key holds."""

_DIGITS = re.compile(r"[0-9]{1,19}")  # [0-9], not \d: \d matches every script's digits


def _ascii_number(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None  # True is an int; it is never an id
    if isinstance(raw, int):
        return raw
    if not isinstance(raw, str) or not _DIGITS.fullmatch(raw):
        return None
    return int(raw)


def parse_pk(raw: object) -> int | None:
    """The id in `raw` (text from a request, or an int), or None if it cannot be one."""
    value = _ascii_number(raw)
    return value if value is not None and 1 <= value <= MAX_PK else None


def parse_index(raw: object, size: int) -> int | None:
    """The index in `raw` if it is within 0 .. size - 1, else None."""
    value = _ascii_number(raw)
    return value if value is not None and 0 <= value < size else None


class PkChoiceField(forms.ModelChoiceField):
    """A ModelChoiceField whose submitted id must be a well-formed id first."""

    def to_python(self, value: Any) -> Any:
        typed = value not in self.empty_values and not isinstance(value, models.Model)
        if typed and parse_pk(value) is None:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class PkMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A ModelMultipleChoiceField whose submitted ids must all be well-formed ids first (Django
    would pass a huge number on to an `IN (...)` query, which overflows)."""

    def clean(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            for item in value:
                if not isinstance(item, models.Model) and parse_pk(item) is None:
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"],
                        code="invalid_pk_value",
                        params={"pk": item},
                    )
        return super().clean(value)
