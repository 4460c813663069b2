"""Guided orchestration: a plan's moves are all the decision schema admits, step by step."""

from __future__ import annotations

import json
from typing import Any

import pytest

from personaweb.llm.scripted import Said, ScriptedChatModel
from personaweb.llm.types import ChatRequest
from personaweb.personas import (
    Action,
    ActionRefused,
    Engine,
    MemoryStore,
    Mode,
    NodeKind,
    NodeStatus,
    RunConfig,
    SimpleCharacter,
    dialogue_hierarchy,
)
from personaweb.personas.engine import allowed_actions

SARA = SimpleCharacter(name="Sara Wilcox", sample_lines=["What's done is done."])


def decide(action: str, to: str, message: str) -> str:
    return json.dumps({"action": action, "to": to, "message": message})


def orchestrator_schemas(model: ScriptedChatModel) -> list[dict[str, Any]]:
    return [c.schema for c in model.calls if c.schema is not None]


def is_orchestrator(request: ChatRequest) -> bool:
    return request.schema is not None


async def test_a_guided_turn_offers_one_move_at_a_time_and_relays_the_lines() -> None:
    model = ScriptedChatModel(
        decide("delegate", "responder", "Who are you?"),
        "I am the lady of this house.",
        decide("delegate", "style_rewriter", "I am the lady of this house."),
        "Lady of this house am I.",
        decide("reply", "caller", "Lady of this house am I."),
    )
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model)
    leaf = await engine.run_autonomous("Who are you?")
    model.assert_complete()
    assert leaf.persona == "orchestrator" and leaf.content == "Lady of this house am I."

    first, second, third = orchestrator_schemas(model)
    for schema, action, to in (
        (first, "delegate", "responder"),
        (second, "delegate", "style_rewriter"),
        (third, "reply", "caller"),
    ):
        assert schema["properties"]["action"]["enum"] == [action]
        assert schema["properties"]["to"]["enum"] == [to]
    # Each message is the text it relays, unchanged.
    assert first["properties"]["message"]["enum"] == ["Who are you?"]
    assert second["properties"]["message"]["enum"] == ["I am the lady of this house."]
    assert third["properties"]["message"]["enum"] == ["Lady of this house am I."]

    path = await engine.store.path(leaf.id)
    decisions = [n for n in path if n.persona == "orchestrator" and n.kind is NodeKind.PROPOSAL]
    assert [n.data["offered"] for n in decisions] == [
        ["delegate to responder"],
        ["delegate to style_rewriter"],
        ["reply"],
    ]
    assert {n.data["plan"] for n in decisions} == {"guided"}


async def test_a_move_off_the_plan_is_re_asked_with_what_the_plan_allows() -> None:
    model = ScriptedChatModel(
        decide("reply", "caller", "Who are you?"),  # answering directly: not at this step
        decide("delegate", "responder", "Who are you?"),
    )
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW))
    leaf = await engine.advance((await engine.send("Who are you?")).id)
    assert leaf.status is NodeStatus.PROPOSED and leaf.target == "responder"
    assert leaf.call is not None and "not one of ['delegate']" in leaf.call.attempts[0]["error"]


async def test_unguided_sessions_offer_every_move() -> None:
    model = ScriptedChatModel(decide("reply", "caller", "Hello."))
    config = RunConfig(guided=False)
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, config)
    leaf = await engine.run_autonomous("Who are you?")
    assert leaf.content == "Hello."
    schema = orchestrator_schemas(model)[0]
    assert schema["properties"]["action"]["enum"] == ["delegate", "reply"]
    assert "enum" not in schema["properties"]["message"]
    assert leaf.data["offered"] == ["any move"] and leaf.data["plan"] == "not guided"


async def test_feedback_lifts_the_plan_for_the_next_decision() -> None:
    model = ScriptedChatModel(
        decide("delegate", "responder", "Who are you?"),
        decide("delegate", "style_rewriter", "Rewrite: who asks?"),
    )
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW))
    first = await engine.advance((await engine.send("Who are you?")).id)
    fb = await engine.feedback(first.id, "skip the responder this once")
    again = await engine.advance(fb.id)
    assert again.target == "style_rewriter"
    schema = orchestrator_schemas(model)[1]
    assert schema["properties"]["action"]["enum"] == ["delegate", "reply"]
    assert again.data["plan"] == "off plan"


async def test_an_edit_that_reroutes_leaves_the_plan_and_then_every_move_is_offered() -> None:
    model = ScriptedChatModel(
        decide("delegate", "responder", "Who are you?"),
        "Rewritten straight away.",
        decide("reply", "caller", "Rewritten straight away."),
    )
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW))
    first = await engine.advance((await engine.send("Who are you?")).id)
    edited = await engine.edit(first.id, "Who are you?", target="style_rewriter")
    engine.config = RunConfig(mode=Mode.AUTONOMOUS)
    leaf = await engine.advance(edited.id)
    assert leaf.content == "Rewritten straight away."
    last = orchestrator_schemas(model)[-1]
    assert last["properties"]["action"]["enum"] == ["delegate", "reply"]


async def test_in_a_group_a_responder_that_passes_leaves_only_pass() -> None:
    model = ScriptedChatModel(decide("delegate", "responder", "hi all"), "[pass]")
    model.enqueue(decide("pass", "caller", "nothing"))
    root = dialogue_hierarchy(SARA, can_pass=True)
    engine = Engine(root, MemoryStore(), model)
    leaf = await engine.run_autonomous("hi all")
    assert leaf.action is Action.PASS
    schema = orchestrator_schemas(model)[-1]
    assert schema["properties"]["action"]["enum"] == ["pass"]


async def test_a_reply_cut_by_the_token_limit_is_marked_and_can_continue() -> None:
    model = ScriptedChatModel(
        Said("Thou speak'st of trifles;", finish_reason="length"), "mine ambition soars higher."
    )
    root = dialogue_hierarchy(SARA, strategy="single")
    engine = Engine(root, MemoryStore(), model, RunConfig(mode=Mode.REVIEW))
    cut = await engine.advance((await engine.send("Speak.")).id)
    assert cut.status is NodeStatus.PROPOSED and cut.data["truncated"] is True
    assert "continue" in allowed_actions(cut, has_children=False)

    more = await engine.continue_reply(cut.id)
    assert more.parent_id == cut.parent_id  # beside the cut one, which stays as it was
    assert more.content == "Thou speak'st of trifles; mine ambition soars higher."
    assert more.data["continued_from"] == cut.id and "truncated" not in more.data
    asked = model.calls[-1].messages
    assert asked[-2].role == "assistant" and asked[-2].content == "Thou speak'st of trifles;"
    assert asked[-1].content.startswith("Your reply was cut off")
    model.assert_complete()


async def test_a_reply_that_finished_cannot_be_continued() -> None:
    model = ScriptedChatModel("A whole line.")
    root = dialogue_hierarchy(SARA, strategy="single")
    engine = Engine(root, MemoryStore(), model, RunConfig(mode=Mode.REVIEW))
    whole = await engine.advance((await engine.send("Speak.")).id)
    assert "continue" not in allowed_actions(whole, has_children=False)
    with pytest.raises(ActionRefused):
        await engine.continue_reply(whole.id)


async def test_approve_the_rest_of_the_turn_runs_to_the_reply_then_stops() -> None:
    model = ScriptedChatModel(
        decide("delegate", "responder", "hello"),
        "Raw line.",
        decide("delegate", "style_rewriter", "Raw line."),
        "Styled line.",
        decide("reply", "caller", "Styled line."),
        decide("delegate", "responder", "again"),
    )
    engine = Engine(dialogue_hierarchy(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW))
    first = await engine.advance((await engine.send("hello")).id)
    end = await engine.approve_turn(first.id)
    assert end.persona == "orchestrator" and end.content == "Styled line."
    assert end.status is NodeStatus.APPROVED
    # The next message is reviewed again: only this turn was approved wholesale.
    nxt = await engine.advance((await engine.send("again", end.id)).id)
    assert nxt.status is NodeStatus.PROPOSED
