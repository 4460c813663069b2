"""LLM pre-pass: the fatigue penalty, the decision rule, the prompt, and the call."""

from __future__ import annotations

import json

import pytest
from heat_cast import ANN, BOB, CARA, CAST, chat

from personaweb.llm.calls import NO_RETRY
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.types import LLMProfile, LLMTimeout
from personaweb.personas.heat import (
    PREPASS_SCHEMA,
    USER,
    GroupMessage,
    ReplyPolicy,
    build_prepass_messages,
    decide_from_prepass,
    fatigue_penalty,
    run_prepass,
)

PROFILE = LLMProfile(model="tiny", temperature=0.0, max_tokens=80)


def back_and_forth(exchanges: int) -> list[GroupMessage]:
    """bob and ann alternating, ending with bob, so ann answered bob `exchanges` times."""
    lines = [("bob", "b0")]
    for i in range(exchanges):
        lines += [("ann", f"a{i}"), ("bob", f"b{i + 1}")]
    return chat(*lines)


# -- fatigue penalty ----------------------------------------------------------------------


@pytest.mark.parametrize(("exchanges", "penalty"), [(0, 0.0), (1, 0.2), (2, 0.4)])
def test_penalty_is_point_two_per_exchange(exchanges: int, penalty: float) -> None:
    assert fatigue_penalty(back_and_forth(exchanges), "ann", CAST) == pytest.approx(penalty)


def test_penalty_only_counts_the_last_six_messages() -> None:
    # Five exchanges in all, but the last six messages (a b a b a b) hold only two answers.
    assert fatigue_penalty(back_and_forth(5), "ann", CAST) == pytest.approx(0.4)


def test_penalty_is_capped_at_point_eight() -> None:
    # Six messages cannot hold five answers; a wider window shows the cap at work.
    assert fatigue_penalty(back_and_forth(5), "ann", CAST, window=20) == pytest.approx(0.8)
    assert fatigue_penalty(back_and_forth(3), "ann", CAST, window=20) == pytest.approx(0.6)


def test_only_answers_to_the_current_speaker_count() -> None:
    # ann answered cara twice, but bob wrote the last message.
    history = chat(("cara_diaz", "c"), ("ann", "a"), ("cara_diaz", "c"), ("ann", "a"), ("bob", "b"))
    assert fatigue_penalty(history, "ann", CAST) == 0.0


def test_no_penalty_in_a_chat_of_two() -> None:
    # One character and the user: back-and-forth is the whole point of the chat.
    history = chat((USER, "u"), ("ann", "a"), (USER, "u"), ("ann", "a"), (USER, "u"))
    assert fatigue_penalty(history, "ann", [ANN]) == 0.0
    # Listing the user explicitly changes nothing.
    assert fatigue_penalty(history, "ann", ["ann", USER]) == 0.0
    # A third member makes it a group: the same history now tires ann.
    assert fatigue_penalty(history, "ann", [ANN, BOB]) == pytest.approx(0.4)


def test_no_history_no_penalty() -> None:
    assert fatigue_penalty([], "ann", CAST) == 0.0


# -- decision rule ------------------------------------------------------------------------


def test_it_speaks_when_confidence_minus_penalty_reaches_the_threshold() -> None:
    parsed = {"should_respond": True, "reason": "asked me", "confidence": 0.8}
    decision = decide_from_prepass(parsed, 0.2, 0.6, character="ann")
    assert decision.speak
    assert decision.policy is ReplyPolicy.PREPASS
    assert decision.reason == (
        "pre-pass yes: confidence 0.80 - penalty 0.20 = 0.60 ≥ 0.60; model: asked me"
    )
    assert decision.numbers["score"] == pytest.approx(0.6)


def test_fatigue_can_overrule_a_yes() -> None:
    parsed = {"should_respond": True, "reason": "eh", "confidence": 0.7}
    decision = decide_from_prepass(parsed, 0.4, 0.6, character="ann")
    assert not decision.speak
    assert decision.reason.startswith("pre-pass yes, but fatigue wins: confidence 0.70")
    assert "below 0.60" in decision.reason


def test_a_no_stays_a_no_however_confident() -> None:
    parsed = {"should_respond": False, "reason": "for bob", "confidence": 0.9}
    decision = decide_from_prepass(parsed, 0.0, 0.6, character="ann")
    assert not decision.speak
    assert decision.reason.startswith("pre-pass no:")


@pytest.mark.parametrize(
    "parsed",
    [
        {"should_respond": True, "reason": "x"},
        {"should_respond": "yes", "reason": "x", "confidence": 0.9},
        {"should_respond": True, "reason": "x", "confidence": True},
        {"should_respond": True, "reason": "x", "confidence": 1.5},
        ["not", "an", "object"],
    ],
)
def test_a_malformed_answer_is_a_silent_decision(parsed: object) -> None:
    decision = decide_from_prepass(parsed, 0.0, 0.6, character="ann")  # type: ignore[arg-type]
    assert not decision.speak
    assert decision.reason.startswith("pre-pass answer unusable:")


# -- prompt -------------------------------------------------------------------------------


def test_the_prompt_carries_history_members_mentions_and_fatigue() -> None:
    history = chat(
        (USER, "old news"),
        (USER, "hi"),
        ("bob", "b0"),
        ("ann", "a0"),
        ("bob", "b1"),
        ("ann", "a1"),
        ("bob", "Ann, Cara: pie or cake? https://example.com/pie.jpg"),
    )
    messages = build_prepass_messages(ANN, history, CAST)
    assert [m.role for m in messages] == ["system", "user"]
    system, user = messages[0].content, messages[1].content
    assert "Decide whether Ann Lee should answer" in system
    assert "at least 0.60" in system
    assert "Persona: A chef." in user
    assert "Bob Stone (@bob)" in user and "Cara Diaz (@cara_diaz)" in user
    # The last five messages only.
    assert "old news" not in user and "- User: hi" not in user
    assert "- Bob Stone: b0" in user
    assert "[media, link]" in user
    assert "Named in it: Ann Lee, Cara Diaz." in user
    assert "answered Bob Stone 2 time(s) in the last 6 messages; penalty 0.40." in user


def test_the_prompt_is_pure() -> None:
    history = chat((USER, "hi all?"))
    assert build_prepass_messages(CARA, history, CAST) == build_prepass_messages(
        CARA, history, CAST
    )


def test_the_schema_asks_for_the_three_fields() -> None:
    assert set(PREPASS_SCHEMA["required"]) == {"should_respond", "reason", "confidence"}
    assert PREPASS_SCHEMA["additionalProperties"] is False


# -- the call -----------------------------------------------------------------------------


async def test_run_prepass_asks_with_the_schema_and_decides() -> None:
    model = ScriptedChatModel(
        json.dumps({"should_respond": True, "reason": "a group question", "confidence": 0.9})
    )
    history = chat((USER, "What should we cook?"))
    decision, record = await run_prepass(model, PROFILE, ANN, history, CAST)
    model.assert_complete()
    assert decision.speak
    assert decision.character == "ann"
    assert decision.numbers["confidence"] == 0.9
    request = model.calls[0]
    assert request.schema == PREPASS_SCHEMA
    assert request.profile == PROFILE
    assert record is not None
    assert record.model == "tiny"
    assert record.messages == [m.to_dict() for m in request.messages]


async def test_run_prepass_applies_the_penalty() -> None:
    model = ScriptedChatModel('{"should_respond": true, "reason": "bob again", "confidence": 0.9}')
    decision, _ = await run_prepass(model, PROFILE, ANN, back_and_forth(2), CAST)
    assert not decision.speak
    assert decision.numbers["penalty"] == pytest.approx(0.4)
    assert "0.90 - penalty 0.40 = 0.50 below 0.60" in decision.reason


async def test_malformed_json_is_silent_with_the_error_as_reason() -> None:
    model = ScriptedChatModel('{"should_respond": true, "confidence": ')
    decision, record = await run_prepass(model, PROFILE, ANN, chat((USER, "hi?")), CAST)
    assert not decision.speak
    assert decision.reason.startswith("pre-pass answer unusable, staying silent: invalid JSON")
    assert decision.numbers["error"] == 1.0
    # The person debugging sees what the model actually said.
    assert record is not None
    assert record.response_text == '{"should_respond": true, "confidence": '


async def test_an_answer_off_the_schema_is_silent() -> None:
    model = ScriptedChatModel('{"should_respond": "maybe", "reason": "", "confidence": 3}')
    decision, record = await run_prepass(model, PROFILE, ANN, chat((USER, "hi?")), CAST)
    assert not decision.speak
    assert "does not match the schema" in decision.reason
    assert record is not None


async def test_a_failed_call_is_silent_and_keeps_its_prompt() -> None:
    model = ScriptedChatModel(LLMTimeout("took too long"))
    decision, record = await run_prepass(
        model, PROFILE, ANN, chat((USER, "hi?")), CAST, retry=NO_RETRY
    )
    assert not decision.speak
    assert decision.reason == "pre-pass call failed, staying silent: LLMTimeout: took too long"
    # No answer came, but the inspector can still show what was asked.
    assert record is not None and record.response_text == "" and record.messages
