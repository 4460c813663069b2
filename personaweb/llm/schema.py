"""A small, deterministic JSON-Schema validator for the subset PersonaWeb uses.

Supported keywords: type (object, string, number, integer, boolean, array, null, or a list of
them), properties, required, additionalProperties (false or a schema), enum, const, minLength,
maxLength, pattern, minimum, maximum, exclusiveMinimum, exclusiveMaximum, items, minItems,
maxItems. Annotations (title, description, default, examples, $schema, $id) are ignored.

Any other keyword (anyOf, $ref, ...) raises `SchemaError` instead of being silently skipped:
a validator that quietly ignores a constraint would let invalid LLM output through.

LLM output is untrusted input, so `parse_structured` is the one door structured replies pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from personaweb.llm.types import ChatRequest, Completion, StructuredOutputError

__all__ = ["SchemaError", "apply_schema", "parse_structured", "validate"]

_TYPE_NAMES = ("object", "string", "number", "integer", "boolean", "array", "null")

_VALIDATION_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "const",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "items",
        "minItems",
        "maxItems",
    }
)
_ANNOTATION_KEYWORDS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment"}
)

# Error messages quote values; a runaway LLM string should not flood the UI.
_MAX_REPR = 80
# How many validation errors a StructuredOutputError message lists before "and N more".
_MAX_LISTED_ERRORS = 5


class SchemaError(ValueError):
    """The schema itself uses a keyword or value this validator does not support."""


def validate(value: Any, schema: dict[str, Any]) -> list[str]:
    """Check `value` against `schema`. Returns human-readable errors; empty means valid.

    Errors are ordered deterministically (schema keyword order, then property order), each
    prefixed with a JSONPath-like location, e.g. ``$.to: 'bob' is not one of ['a', 'b']``.
    """
    return list(_errors(value, schema, "$"))


def parse_structured(text: str, schema: dict[str, Any]) -> Any:
    """Parse an LLM's structured reply and validate it against `schema`.

    Tolerates surrounding whitespace, a Markdown code fence (```json ... ```), which small
    models add even when asked not to, and raw control characters (a newline) inside strings,
    which llama.cpp's grammars let through when a schema's enum holds a multi-line text.
    Raises StructuredOutputError(message, text) for empty output, invalid JSON or a schema
    violation.
    """
    body = _strip_fence(text.strip())
    if not body:
        raise StructuredOutputError("empty response: expected a JSON value", text)
    try:
        value = json.loads(body, parse_constant=_reject_constant, strict=False)
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", text
        ) from exc
    except ValueError as exc:  # NaN / Infinity, which JSON does not have
        raise StructuredOutputError(f"invalid JSON: {exc}", text) from exc
    errors = validate(value, schema)
    if errors:
        listed = "; ".join(errors[:_MAX_LISTED_ERRORS])
        more = len(errors) - _MAX_LISTED_ERRORS
        suffix = f"; and {more} more" if more > 0 else ""
        raise StructuredOutputError(f"response does not match the schema: {listed}{suffix}", text)
    return value


def apply_schema(request: ChatRequest, completion: Completion) -> Completion:
    """Validate a finished completion against the request's schema and fill `parsed`.

    Shared by every ChatModel so that structured output fails the same way everywhere.
    Raises StructuredOutputError carrying the text and the completion.
    """
    if request.schema is None:
        return completion
    try:
        completion.parsed = parse_structured(completion.text, request.schema)
    except StructuredOutputError as exc:
        raise StructuredOutputError(str(exc), exc.text, completion) from exc
    return completion


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_FENCE = re.compile(r"^```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL)


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{key!r}]"


def _is_type(value: Any, type_name: str) -> bool:
    # bool is a subclass of int in Python, but not a number in JSON.
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "null":
        return value is None
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        # JSON has one number type: 3.0 is an integer (as in JSON Schema draft 6 and later).
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise SchemaError(f"unknown type {type_name!r}; expected one of {list(_TYPE_NAMES)}")


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: true is not 1, 1 equals 1.0, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _check_keywords(schema: dict[str, Any], path: str) -> None:
    unknown = sorted(set(schema) - _VALIDATION_KEYWORDS - _ANNOTATION_KEYWORDS)
    if unknown:
        raise SchemaError(f"unsupported schema keyword(s) at {path}: {', '.join(unknown)}")


def _errors(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        raise SchemaError(f"schema at {path} must be an object, got {_short(schema)}")
    _check_keywords(schema, path)

    if "type" in schema:
        declared = schema["type"]
        types = [declared] if isinstance(declared, str) else list(declared)
        if not any(_is_type(value, t) for t in types):
            wanted = " or ".join(repr(t) for t in types)
            yield f"{path}: {_short(value)} is not of type {wanted}"
            # Further keywords would only restate the type mismatch.
            return

    if "enum" in schema and not any(_json_equal(value, option) for option in schema["enum"]):
        yield f"{path}: {_short(value)} is not one of {_short(list(schema['enum']))}"
    if "const" in schema and not _json_equal(value, schema["const"]):
        yield f"{path}: {_short(value)} is not the constant {_short(schema['const'])}"

    if isinstance(value, str):
        yield from _string_errors(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield from _number_errors(value, schema, path)
    elif isinstance(value, list):
        yield from _array_errors(value, schema, path)
    elif isinstance(value, dict):
        yield from _object_errors(value, schema, path)


def _string_errors(value: str, schema: dict[str, Any], path: str) -> Iterator[str]:
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield f"{path}: {_short(value)} is shorter than minLength {schema['minLength']}"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield f"{path}: {_short(value)} is longer than maxLength {schema['maxLength']}"
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        yield f"{path}: {_short(value)} does not match pattern {schema['pattern']!r}"


def _number_errors(value: float, schema: dict[str, Any], path: str) -> Iterator[str]:
    if isinstance(value, float) and not math.isfinite(value):
        yield f"{path}: {value!r} is not a finite number"
        return
    if "minimum" in schema and value < schema["minimum"]:
        yield f"{path}: {value!r} is less than the minimum of {schema['minimum']!r}"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"{path}: {value!r} is greater than the maximum of {schema['maximum']!r}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        yield f"{path}: {value!r} is not greater than {schema['exclusiveMinimum']!r}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        yield f"{path}: {value!r} is not less than {schema['exclusiveMaximum']!r}"


def _array_errors(value: list[Any], schema: dict[str, Any], path: str) -> Iterator[str]:
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield f"{path}: array has {len(value)} item(s), fewer than minItems {schema['minItems']}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield f"{path}: array has {len(value)} item(s), more than maxItems {schema['maxItems']}"
    if "items" in schema:
        for index, item in enumerate(value):
            yield from _errors(item, schema["items"], _child_path(path, index))


def _object_errors(value: dict[str, Any], schema: dict[str, Any], path: str) -> Iterator[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            yield f"{path}: {name!r} is a required property"
    for name, sub_schema in properties.items():
        if name in value:
            yield from _errors(value[name], sub_schema, _child_path(path, name))
    additional = schema.get("additionalProperties", True)
    extras = [name for name in value if name not in properties]
    if additional is False:
        for name in extras:
            yield f"{path}: additional property {name!r} is not allowed"
    elif isinstance(additional, dict):
        for name in extras:
            yield from _errors(value[name], additional, _child_path(path, name))
