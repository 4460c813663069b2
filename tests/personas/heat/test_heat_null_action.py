"""Null action: reading a pass out of a reply, and the sentence that allows it."""

from __future__ import annotations

import pytest

from personaweb.personas.heat import (
    PASS_MARKER,
    ReplyPolicy,
    interpret_reply,
    is_pass,
    pass_instruction,
)


@pytest.mark.parametrize(
    "text",
    [
        "[pass]",
        "PASS",
        "Pass.",
        "  [PASS]\n",
        "(pass)",
        "*pass*",
        "`[pass]`",
        "",
        "   ",
        None,
        "[no response]",
        "[silence]",
        "<null>",
    ],
)
def test_it_recognises_a_pass(text: str | None) -> None:
    assert is_pass(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'll pass on dessert.",
        "Pass the salt, please.",
        "Silence!",  # a line of dialogue, not a marker
        "passion fruit?",
        "[pass] Actually, wait: I love pie.",
        "No response from the kitchen yet.",
    ],
)
def test_it_reads_anything_else_as_an_answer(text: str) -> None:
    assert not is_pass(text)


def test_a_name_prefix_echoed_by_the_model_is_ignored() -> None:
    assert is_pass("Ann Lee: [pass]", names=["Ann Lee", "Ann"])
    assert is_pass("**Ann**: PASS", names=["Ann"])
    assert not is_pass("Ann: I pass the bread.", names=["Ann"])
    # Without the names, the prefix is text like any other.
    assert not is_pass("Ann Lee: [pass]")


def test_interpret_reply_gives_a_decision() -> None:
    passed = interpret_reply("ann", " [PASS] ")
    assert not passed.speak
    assert passed.policy is ReplyPolicy.NULL_ACTION
    assert passed.reason == "passed in its reply ('[PASS]')"
    assert interpret_reply("ann", "").reason == "passed with an empty reply"
    spoke = interpret_reply("ann", "Pie, obviously.")
    assert spoke.speak
    assert spoke.numbers["reply_chars"] == len("Pie, obviously.")


def test_the_instruction_names_the_character_and_the_marker() -> None:
    sentence = pass_instruction("Ann Lee")
    assert PASS_MARKER in sentence
    assert "Ann Lee" in sentence
    # What the instruction asks for must be what the parser accepts.
    assert is_pass(PASS_MARKER)
