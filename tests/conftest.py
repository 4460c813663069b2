"""Shared fixtures for the web and browser tests: a cast of users (alice owns, bob does not),
sessions, and a scripted OpenAI-compatible server standing in for the LLM."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer

PASSWORD = "a-long-test-password-42"


def _last(messages: list[dict[str, str]], prefixes: tuple[str, ...]) -> dict[str, str] | None:
    for m in reversed(messages):
        if m["role"] == "user" and m["content"].startswith(prefixes):
            return m
    return None


def dialogue_responder(body: dict[str, Any]) -> str:
    """Plays the dialogue hierarchy's three personas, routed by their system prompts.

    The orchestrator follows its instructions (responder, then rewriter, then reply); the
    responder answers in character and gives a different line after feedback or a rejection;
    the rewriter marks the line as rewritten. Every text is deterministic, so tests can look
    for it in the page.
    """
    messages = body["messages"]
    system = messages[0]["content"]
    last = messages[-1]["content"]
    if system.startswith("You produce"):
        step = _last(messages, ("Message from", "Reply from"))
        text = step["content"] if step else ""
        if text.startswith("Message from"):
            said = text.partition(": ")[2]
            decision = {"action": "delegate", "to": "responder", "message": said}
        elif text.startswith("Reply from responder"):
            line = text.partition(": ")[2]
            decision = {"action": "delegate", "to": "style_rewriter", "message": line}
        else:
            line = text.partition(": ")[2]
            decision = {"action": "reply", "to": "caller", "message": line}
        return json.dumps(decision)
    if "Stay in character" in system:
        takes = sum(1 for m in messages if m["role"] == "assistant")
        if last.startswith("Reviewer feedback"):
            note = last.partition(": ")[2]
            return f"Take {takes + 1}, as you asked ({note}): who asks?"
        if last.startswith("A reviewer rejected"):
            return f"Take {takes + 1}: I will not say that again."
        heard = re.sub(r"\s+", " ", last)[:60]
        return f"Line {takes + 1}: you said '{heard}', and I heed it not."
    if system.startswith("You rewrite"):
        return f"[styled] {last}"
    return "ok"


@pytest.fixture(scope="session")
def scripted_dialogue() -> Callable[[dict[str, Any]], str]:
    return dialogue_responder


@pytest.fixture
def llm_server(monkeypatch) -> Iterator[ScriptedOpenAIServer]:
    """The scripted LLM, and the environment pointing the app at it."""
    with ScriptedOpenAIServer(dialect="openai", responder=dialogue_responder) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("PERSONAWEB_MODEL", "scripted-model")
        yield server


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password=PASSWORD)


@pytest.fixture
def make_session() -> Callable[..., Any]:
    """A dialogue session with a small character, owned by the given user."""
    from personaweb.web.models import Character, ChatSession

    def make(owner, *, mode: str = "review", title: str = "test session", **fields):
        character = Character.objects.create(
            owner=owner,
            name="Sara Wilcox",
            slug=f"sara_{owner.pk}_{Character.objects.count()}",
            data={
                "name": "Sara Wilcox",
                "description": "A proud lady.",
                "personality": "commanding",
                "mood": "impatient",
                "goals": ["rise"],
                "sample_lines": ["Leave all the rest to me."],
            },
        )
        return ChatSession.objects.create(
            owner=owner,
            title=title,
            character=character,
            hierarchy="dialogue",
            mode=mode,
            **fields,
        )

    return make
