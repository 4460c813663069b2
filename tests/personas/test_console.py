"""Console interactive mode driven with scripted keyboard input and a scripted model."""

from __future__ import annotations

import json
from pathlib import Path

from personaweb.console import ConsoleChat, load_tree
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.personas import Engine, MemoryStore, Mode, RunConfig, SimpleCharacter
from personaweb.personas import dialogue_hierarchy as make

SARA = SimpleCharacter("Sara Wilcox", sample_lines=["What's done is done."])


def decide(action: str, to: str, message: str) -> str:
    return json.dumps({"action": action, "to": to, "message": message})


def make_chat(model: ScriptedChatModel, inputs: list[str], save: Path | None = None):
    feed = iter(inputs)
    out: list[str] = []

    def read(prompt: str) -> str:
        out.append(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    engine = Engine(make(SARA), MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False))
    chat = ConsoleChat(engine, read=read, write=out.append, save_to=save, meta={"character": "x"})
    return chat, out


async def test_review_session_with_feedback_to_a_child_then_autonomous(tmp_path: Path) -> None:
    model = ScriptedChatModel()
    model.enqueue(
        decide("delegate", "responder", "Answer Joe"),
        "Hello Joe, lovely to meet you.",
        "Who asks my name?",
        decide("delegate", "style_rewriter", "Who asks my name?"),
        "Who is it that asks my name?",
        decide("reply", "caller", "Who is it that asks my name?"),
    )
    save = tmp_path / "tree.json"
    chat, out = make_chat(
        model,
        ["I am Joe. Who are you?", "", "be colder", "a"],
        save,
    )
    await chat.chat()
    model.assert_complete()
    text = "".join(out)
    # The proposal shows which persona made it, feedback went to the child, and it re-proposed.
    assert "orchestrator -> delegate to responder: Answer Joe" in text
    assert "orchestrator/responder -> reply: Hello Joe" in text
    assert "orchestrator/responder -> reply: Who asks my name?" in text
    assert "Sara Wilcox: Who is it that asks my name?" in text
    assert "be colder" in model.calls[2].messages[-1].content
    store, meta = load_tree(save)
    assert meta == {"character": "x"}
    assert len(store.all()) >= 9


async def test_replay_from_a_saved_step_with_new_feedback(tmp_path: Path) -> None:
    model = ScriptedChatModel()
    model.enqueue(
        decide("delegate", "responder", "Answer"),
        "I am Sara.",
        decide("delegate", "style_rewriter", "I am Sara."),
        "Sara am I.",
        decide("reply", "caller", "Sara am I."),
    )
    save = tmp_path / "tree.json"
    chat, _ = make_chat(model, ["Who are you?", "", "", "", "", ""], save)
    await chat.chat()
    store, _meta = load_tree(save)
    responder = next(n for n in store.all() if n.persona.endswith("responder") and n.is_proposal)

    model.enqueue(
        "None of your business.",
        decide("delegate", "style_rewriter", "None of your business."),
        "That is no business of thine.",
        decide("reply", "caller", "That is no business of thine."),
    )
    engine = Engine(make(SARA), store, model, RunConfig(guided=False))  # autonomous
    out: list[str] = []
    replay = ConsoleChat(engine, read=lambda _p: "q", write=out.append, save_to=save)
    await replay.replay(f"#{responder.seq}", "be rude")
    model.assert_complete()
    assert "Sara Wilcox: That is no business of thine." in "".join(out)
    reloaded, _ = load_tree(save)
    # Both branches are in the saved tree.
    finals = [n.content for n in reloaded.all() if n.persona == "orchestrator" and n.action]
    assert "Sara am I." in finals and "That is no business of thine." in finals
