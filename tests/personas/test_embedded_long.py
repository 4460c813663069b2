"""Long conversations on the embedded model: prompts outgrow its 2,048-token window unless
they are fitted to it. Real model, real server; nothing may fail."""

from __future__ import annotations

import pytest

from personaweb.characters.sheet import load_bundled
from personaweb.llm import EndpointConfig, OpenAIChatModel
from personaweb.llm.config import EMBEDDED_CONTEXT_TOKENS, EMBEDDED_MODEL
from personaweb.personas import (
    Engine,
    GroupSettings,
    MemoryStore,
    NodeStatus,
    RunConfig,
    build_hierarchy,
    group_hierarchy,
)
from personaweb.personas.dialogue import chat_character

# The longest tests of the suite: about 3 minutes each on an idle 2-core machine, and well
# over the suite's 10-minute timeout on a busy or slower one; a hang still fails, later.
pytestmark = [pytest.mark.embedded, pytest.mark.timeout(1800)]

LINES = [
    "Who are you?",
    "What do you want most in the world?",
    "Tell me about the people who live in this house, every one of them, at length.",
    "Why should anyone trust you?",
    "What happened yesterday?",
]


def model_for(server) -> OpenAIChatModel:
    config = EndpointConfig(
        server.base_url,
        "sk-local",
        EMBEDDED_MODEL,
        embedded=True,
        embedded_port=server.port,
        context_tokens=EMBEDDED_CONTEXT_TOKENS,
    )
    return OpenAIChatModel(config)


def sheet(name: str):
    return next(s for s in load_bundled() if s.name == name)


async def test_a_thirty_turn_chat_fits_the_window_and_nothing_fails(embedded_server) -> None:
    model = model_for(embedded_server)
    root = build_hierarchy("dialogue", character=sheet("Jon Johns").to_dict(), strategy="single")
    engine = Engine(root, MemoryStore(), model)
    leaf = None
    for turn in range(30):
        leaf = await engine.run_autonomous(LINES[turn % len(LINES)], leaf.id if leaf else None)
        assert leaf.status is not NodeStatus.FAILED, leaf.content
    await model.aclose()
    assert isinstance(engine.store, MemoryStore)
    nodes = engine.store.all()
    assert not [n for n in nodes if n.status is NodeStatus.FAILED]
    trimmed = [n.call.trimmed for n in nodes if n.call is not None and n.call.trimmed]
    # The history outgrew the window, and earlier turns were left out to fit it.
    assert trimmed and max(t["left_out"] for t in trimmed) >= 5
    assert all(t["budget"] == EMBEDDED_CONTEXT_TOKENS for t in trimmed)


async def test_a_ten_message_group_chat_fits_the_window_and_nothing_fails(embedded_server) -> None:
    model = model_for(embedded_server)
    cast = [
        (s.slug, chat_character(s.to_dict()))
        for s in (sheet("Sara Wilcox"), sheet("Jon Johns"), sheet("Kai Tanaka"))
    ]
    root = group_hierarchy(cast, GroupSettings(turn_cap=2), strategy="single")
    engine = Engine(root, MemoryStore(), model, RunConfig(max_steps=400))
    leaf = None
    for turn in range(10):
        text = f"{LINES[turn % len(LINES)]} Everyone, answer me."
        leaf = await engine.run_autonomous(text, leaf.id if leaf else None)
        assert leaf.status is not NodeStatus.FAILED, leaf.content
    await model.aclose()
    assert isinstance(engine.store, MemoryStore)
    nodes = engine.store.all()
    assert not [n for n in nodes if n.status is NodeStatus.FAILED]
    spoken = [n for n in nodes if n.persona.count("/") == 1 and n.action is not None]
    assert len(spoken) >= 10  # the characters did talk
