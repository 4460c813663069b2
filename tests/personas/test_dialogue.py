"""The three dialogue strategies with a scripted model: hierarchy, prompts, alignment."""

from __future__ import annotations

import json

from personaweb.llm.scripted import ScriptedChatModel
from personaweb.personas import (
    Engine,
    MemoryStore,
    NodeKind,
    RunConfig,
    SimpleCharacter,
    dialogue_hierarchy,
)
from personaweb.personas.dialogue import LinearDialoguePersona

JON = SimpleCharacter(
    name="Jon Johns",
    description="A finance bro.",
    personality="Loud, arrogant.",
    mood="Smug",
    goals=["Get the listener to invest in his fund", "Prove he is the smartest in the room"],
    sample_lines=["Bro, I made more before breakfast than you will all year."],
)


def verdict(score: float, drifting: bool, hint: str = "") -> str:
    return json.dumps({"score": score, "drifting": drifting, "hint": hint})


async def test_single_strategy_is_one_call_with_the_whole_sheet() -> None:
    model = ScriptedChatModel()
    model.enqueue("Bro, who even are you?")
    root = dialogue_hierarchy(JON, strategy="single")
    leaf = await Engine(root, MemoryStore(), model, RunConfig(guided=False)).run_autonomous(
        "Hi, I'm Joe."
    )
    model.assert_complete()
    assert leaf.persona == "character" and leaf.content == "Bro, who even are you?"
    system = model.calls[0].messages[0].content
    for fact in ("Smug", "invest in his fund", "more before breakfast", "Loud, arrogant."):
        assert fact in system
    assert [p.path for p in root.walk()] == ["character"]


def linear_turn(model: ScriptedChatModel, raw: str, styled: str, check: str) -> None:
    model.enqueue(raw, styled, check)


async def test_linear_runs_responder_rewriter_then_alignment_by_code() -> None:
    model = ScriptedChatModel()
    linear_turn(model, "Hello.", "Yo bro.", verdict(0.9, False))
    root = dialogue_hierarchy(JON, strategy="linear")
    assert isinstance(root, LinearDialoguePersona)
    assert [p.path for p in root.walk()] == [
        "pipeline",
        "pipeline/responder",
        "pipeline/style_rewriter",
        "pipeline/alignment",
    ]
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False))
    leaf = await engine.run_autonomous("Hi")
    model.assert_complete()
    assert leaf.persona == "pipeline" and leaf.content == "Yo bro."
    assert leaf.data["alignment"] == 0.9 and leaf.data["drifting"] is False
    assert leaf.call is None  # the pipeline is code, not an LLM
    # The rewriter saw the sample lines and only the line to rewrite.
    rewriter = model.calls[1]
    assert "more before breakfast" in rewriter.messages[0].content
    assert [m.content for m in rewriter.messages[1:]] == ["Hello."]
    # The alignment checker got the goals and a structured-output schema.
    assert "invest in his fund" in model.calls[2].messages[0].content
    assert model.calls[2].schema is not None


async def test_linear_alignment_looks_at_the_last_five_lines_and_steers_on_drift() -> None:
    model = ScriptedChatModel()
    engine = Engine(
        dialogue_hierarchy(JON, strategy="linear"), MemoryStore(), model, RunConfig(guided=False)
    )
    leaf = None
    for turn in range(1, 7):
        drifting = turn == 6
        linear_turn(
            model,
            f"raw {turn}",
            f"line {turn}",
            verdict(
                0.2 if drifting else 0.8, drifting, "Talk about your fund." if drifting else ""
            ),
        )
        leaf = await engine.run_autonomous(f"user {turn}", parent_id=leaf.id if leaf else None)
    model.assert_complete()

    checks = [c for c in model.calls if c.schema is not None]
    assert len(checks) == 6
    # The sixth check sees lines 2..6: a window of five.
    window = checks[-1].messages[-1].content.splitlines()
    assert window == ["1. line 2", "2. line 3", "3. line 4", "4. line 5", "5. line 6"]
    assert leaf is not None and leaf.data["alignment"] == 0.2 and leaf.data["drifting"] is True

    # The next turn's responder gets the steering hint; the one before did not.
    linear_turn(model, "raw 7", "line 7", verdict(0.9, False))
    await engine.run_autonomous("user 7", parent_id=leaf.id)
    responder_calls = [c for c in model.calls if "Stay in character" in c.messages[0].content]
    assert "Talk about your fund." in responder_calls[-1].messages[-1].content
    assert "Direction" not in responder_calls[-2].messages[-1].content


async def test_nested_hierarchy_has_orchestrator_responder_and_rewriter() -> None:
    root = dialogue_hierarchy(JON, strategy="nested")
    info = root.describe()
    assert info.role_kind == "delegating" and info.display_name == "Jon Johns"
    kids = {c.name: c for c in info.children}
    assert set(kids) == {"responder", "style_rewriter"}
    assert kids["style_rewriter"].stateless and not kids["responder"].stateless


async def test_an_alignment_checker_that_never_answers_validly_fails_visibly() -> None:
    model = ScriptedChatModel()
    model.enqueue("raw", "styled", "nonsense", "more nonsense", "{}")
    engine = Engine(
        dialogue_hierarchy(JON, strategy="linear"), MemoryStore(), model, RunConfig(guided=False)
    )
    leaf = await engine.run_autonomous("hi")
    # The checker failed three times: a visible failed node, not a crash.
    assert leaf.kind is NodeKind.ERROR and leaf.persona == "pipeline/alignment"


def test_a_chosen_profile_keeps_where_a_spoken_line_ends() -> None:
    """A character's own role profile (a bundled sheet sets the responder's and rewriter's
    temperature and length) changes the model's settings, not where a line ends."""
    from personaweb.llm.types import LLMProfile
    from personaweb.personas import dialogue_hierarchy
    from personaweb.personas.dialogue import LINE_PROFILE

    chosen = LLMProfile(temperature=0.5, max_tokens=160)
    own_stop = LLMProfile(temperature=0.5, max_tokens=160, stop=("END",))
    root = dialogue_hierarchy(
        SimpleCharacter("Ann"),
        profiles={"responder": chosen, "style_rewriter": own_stop, "orchestrator": chosen},
    )
    responder = root.find("orchestrator/responder").profile
    assert (responder.temperature, responder.max_tokens) == (0.5, 160)
    assert responder.stop == LINE_PROFILE.stop == ("\n\n",)
    assert root.find("orchestrator/style_rewriter").profile.stop == ("END",)  # named: kept
    assert root.profile.stop == ()  # the orchestrator writes JSON: no stop at blank lines
