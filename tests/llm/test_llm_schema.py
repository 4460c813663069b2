from __future__ import annotations

from typing import Any

import pytest

from personaweb.llm.schema import SchemaError, apply_schema, parse_structured, validate
from personaweb.llm.types import (
    ChatMessage,
    ChatRequest,
    Completion,
    LLMProfile,
    StructuredOutputError,
)

DECISION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["delegate", "reply"]},
        "to": {"type": "string", "enum": ["responder", "style_rewriter"]},
        "message": {"type": "string", "minLength": 1, "maxLength": 20},
    },
    "required": ["action", "to", "message"],
    "additionalProperties": False,
}


def test_a_valid_decision_has_no_errors() -> None:
    assert validate({"action": "delegate", "to": "responder", "message": "hi"}, DECISION) == []


def test_it_names_the_path_and_the_allowed_values() -> None:
    errors = validate({"action": "delegate", "to": "bob", "message": "hi"}, DECISION)
    assert errors == ["$.to: 'bob' is not one of ['responder', 'style_rewriter']"]


def test_it_reports_every_problem_in_a_stable_order() -> None:
    value = {"to": "responder", "message": "", "extra": 1}
    assert validate(value, DECISION) == [
        "$: 'action' is a required property",
        "$.message: '' is shorter than minLength 1",
        "$: additional property 'extra' is not allowed",
    ]


@pytest.mark.parametrize(
    ("value", "type_name", "ok"),
    [
        ("x", "string", True),
        (1, "integer", True),
        (1.0, "integer", True),  # JSON has one number type: 1.0 is an integer
        (1.5, "integer", False),
        (True, "integer", False),  # bool is an int in Python, never a number in JSON
        (True, "number", False),
        (2.5, "number", True),
        (True, "boolean", True),
        (None, "null", True),
        ([], "array", True),
        ({}, "object", True),
        ([], "object", False),
    ],
)
def test_types_follow_json_not_python(value: Any, type_name: str, ok: bool) -> None:
    assert (validate(value, {"type": type_name}) == []) is ok


def test_a_list_of_types_allows_any_of_them() -> None:
    schema = {"type": ["string", "null"]}
    assert validate(None, schema) == []
    assert validate(3, schema) == ["$: 3 is not of type 'string' or 'null'"]


def test_enum_and_const_compare_as_json() -> None:
    # True == 1 in Python; JSON keeps them apart.
    assert validate(1, {"enum": [True]}) == ["$: 1 is not one of [True]"]
    assert validate(2.0, {"const": 2}) == []
    assert validate("b", {"const": "a"}) == ["$: 'b' is not the constant 'a'"]


def test_numbers_respect_their_bounds() -> None:
    schema = {"type": "number", "minimum": 0, "maximum": 1}
    assert validate(0.5, schema) == []
    assert validate(-1, schema) == ["$: -1 is less than the minimum of 0"]
    assert validate(2, schema) == ["$: 2 is greater than the maximum of 1"]


def test_arrays_check_size_and_each_item_with_its_index() -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}
    assert validate([1, "x"], schema) == ["$[1]: 'x' is not of type 'integer'"]
    assert validate([], schema) == ["$: array has 0 item(s), fewer than minItems 1"]
    assert validate([1, 2, 3], schema) == ["$: array has 3 item(s), more than maxItems 2"]


def test_nested_paths_quote_keys_that_are_not_identifiers() -> None:
    schema = {"type": "object", "properties": {"a b": {"type": "object", "required": ["c"]}}}
    assert validate({"a b": {}}, schema) == ["$['a b']: 'c' is a required property"]


def test_additional_properties_may_be_a_schema() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert validate({"x": 1, "y": "no"}, schema) == ["$.y: 'no' is not of type 'integer'"]


def test_a_type_mismatch_is_reported_once() -> None:
    # Restating "too short" for a number would only confuse whoever reads the node.
    assert validate(5, {"type": "string", "minLength": 3}) == ["$: 5 is not of type 'string'"]


def test_long_values_are_shortened_in_messages() -> None:
    (error,) = validate("x" * 500, {"type": "string", "maxLength": 3})
    assert len(error) < 150
    assert error.endswith("is longer than maxLength 3")


def test_an_unsupported_keyword_is_an_error_not_silently_ignored() -> None:
    with pytest.raises(SchemaError, match="anyOf"):
        validate({}, {"anyOf": [{"type": "string"}]})


def test_annotations_are_ignored() -> None:
    assert validate("x", {"type": "string", "description": "a name", "title": "Name"}) == []


def test_parse_structured_accepts_whitespace_and_a_json_fence() -> None:
    text = '\n  ```json\n{"action": "reply", "to": "responder", "message": "hi"}\n```\n'
    assert parse_structured(text, DECISION) == {
        "action": "reply",
        "to": "responder",
        "message": "hi",
    }
    assert parse_structured('```\n{"a": 1}\n```', {"type": "object"}) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty response"),
        ("   \n", "empty response"),
        ("```json\n```", "empty response"),
        ("Sure! Here is the JSON", "invalid JSON: Expecting value at line 1 column 1"),
        ('{"action": "reply"', "invalid JSON"),
        ('{"a": NaN}', "invalid JSON"),
        ('{"action": "wave", "to": "responder", "message": "hi"}', "$.action: 'wave'"),
    ],
)
def test_parse_structured_rejects_bad_output_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(StructuredOutputError, match=message.replace("$", r"\$")) as caught:
        parse_structured(text, DECISION)
    # The raw text travels with the error so the UI can show what the model said.
    assert caught.value.text == text


def test_apply_schema_fills_parsed_and_attaches_the_completion_on_failure() -> None:
    request = ChatRequest((ChatMessage("user", "hi"),), LLMProfile(), schema={"type": "object"})
    done = apply_schema(request, Completion(text='{"x": 1}', model="m"))
    assert done.parsed == {"x": 1}

    bad = Completion(text="[1]", model="m")
    with pytest.raises(StructuredOutputError) as caught:
        apply_schema(request, bad)
    assert caught.value.completion is bad


def test_apply_schema_leaves_free_text_alone() -> None:
    request = ChatRequest((ChatMessage("user", "hi"),), LLMProfile())
    assert apply_schema(request, Completion(text="not json", model="m")).parsed is None
