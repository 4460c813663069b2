"""JSON from untrusted files, held to what every part of PersonaWeb can store and write back.

Python's json module reads more than JSON: `NaN` and `Infinity`, numbers too big for a float
(read as infinity), and lone surrogates (`"\\ud800"`, which no UTF-8 text can hold). Add NUL
characters, which JSON allows but PostgreSQL text cannot store. A card holding any of them
would import and then fail later: on save, on export, or on the way back in. So they are
refused here, naming the place where they were found, before anything is created. A card is
never cleaned silently: the author's text stays the author's.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of objects and lists accepted (real cards nest a handful of levels)."""


class UnsafeJSON(ValueError):
    """The JSON cannot be read, or holds a value PersonaWeb cannot store. The message says
    what and where."""


def _refuse_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"the number {text[:40]} is too large")
    return value


def loads(raw: bytes, what: str) -> Any:
    """Decode UTF-8 JSON bytes (a BOM is allowed) and check the value (see `check`)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsafeJSON(f"{what} is not UTF-8 text") from exc
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except UnsafeJSON as exc:
        raise UnsafeJSON(f"{what} is not valid JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, and ints over 4300 digits
        raise UnsafeJSON(f"{what} is not valid JSON: {exc}") from exc
    check(value, what)
    return value


def check(value: Any, where: str) -> None:
    """Raise UnsafeJSON if `value` is not plain JSON that can be stored and written back:
    objects with text keys, lists, text without lone surrogates or NUL, finite numbers,
    booleans and null, nested at most MAX_DEPTH deep."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeJSON(f"{at}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            check_text(item, at)
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnsafeJSON(f"{at}: {item} is not a number JSON allows")
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise UnsafeJSON(f"{at}: keys must be text")
                check_text(key, f"{at} (a key)")
                stack.append((child, f"{at}.{key}", depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{at}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            raise UnsafeJSON(f"{at}: {type(item).__name__} is not a JSON value")


def check_text(text: str, where: str) -> None:
    """Raise UnsafeJSON if `text` holds a lone surrogate or a NUL character."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeJSON(
            f"{where}: holds a lone surrogate (U+{ord(text[exc.start]):04X}), which is not "
            "valid Unicode text"
        ) from None
    if "\x00" in text:
        raise UnsafeJSON(f"{where}: holds a NUL character")
