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
    if system.startswith("You judge whether"):
        # The linear strategy's goal-alignment check of the last lines.
        return json.dumps({"score": 0.8, "drifting": False, "hint": ""})
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
        server.assert_no_script_errors()


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


_NAMED = (
    re.compile(r"^You are (?P<name>.+?), speaking in a conversation"),
    re.compile(r"^You are the judgement of (?P<name>.+?), a character"),
    re.compile(r"^You track the mood of (?P<name>.+?), a character"),
)


def _character(system: str) -> str:
    for pattern in _NAMED:
        found = pattern.match(system)
        if found:
            return found["name"]
    return ""


def group_responder(body: dict[str, Any]) -> str:
    """Plays every persona of a group chat, routed by system prompt, deterministically.

    A character whose first name is in the latest message wants to answer (pre-pass yes with
    confidence 0.9, no pass); anyone else is lukewarm (pre-pass no at 0.3, passes when it may).
    Single-strategy characters and nested responders say a line that names themselves and
    nobody else, so heat alone (not mentions) decides what follows. The nested orchestrator
    and rewriter are played by `dialogue_responder`.
    """
    messages = body["messages"]
    system = messages[0]["content"]
    last = messages[-1]["content"]
    name = _character(system)
    first = name.split()[0] if name else ""
    addressed = bool(first) and re.search(rf"\b{re.escape(first)}\b", last) is not None
    if system.startswith("You are the judgement of"):
        # The pre-pass sees the recent history; only who the latest message names decides.
        named = re.search(r"^Named in it: (.*)$", last, re.MULTILINE)
        addressed = bool(named) and name in named[1]
        verdict = {
            "should_respond": addressed,
            "reason": "named in the message" if addressed else "not my conversation",
            "confidence": 0.9 if addressed else 0.3,
        }
        return json.dumps(verdict)
    if system.startswith("You track the mood of"):
        return json.dumps({"interest": 0.4, "boredom": 0.3, "wait_seconds": 0})
    if system.startswith("You are ") and "speaking in a conversation" in system:
        if "[pass]" in last and not addressed:
            return "[pass]"
        takes = sum(1 for m in messages if m["role"] == "assistant")
        return f"{name} here, line {takes + 1}."
    return dialogue_responder(body)


@pytest.fixture
def group_llm(monkeypatch) -> Iterator[ScriptedOpenAIServer]:
    """The scripted LLM playing a group chat, and the environment pointing the app at it."""
    with ScriptedOpenAIServer(dialect="openai", responder=group_responder) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("PERSONAWEB_MODEL", "scripted-model")
        yield server
        server.assert_no_script_errors()


@pytest.fixture
def make_cast() -> Callable[..., Any]:
    """Three characters (Ann, Bob, Cara) owned by the given user."""
    from personaweb.web.models import Character

    def make(owner, names=("Ann Archer", "Bob Baker", "Cara Cole")):
        return [
            Character.objects.create(
                owner=owner,
                name=name,
                slug=name.split()[0].lower(),
                data={
                    "name": name,
                    "description": f"{name}, a regular at the inn.",
                    "personality": "plain",
                    "sample_lines": [f"{name.split()[0]} speaking."],
                },
            )
            for name in names
        ]

    return make


# --- the real embedded model ----------------------------------------------------------------


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[Any]:
    """One real embedded server for the whole session: the machine has two cores, and two
    llama.cpp servers at once would slow each other down. Its start() proves a completion."""
    from personaweb.llm.embedded import EmbeddedServer, embedded_available
    from personaweb.llm.scripted_server import free_port

    reason = embedded_available()
    if reason is not None:
        pytest.skip(f"embedded model not available: {reason}")
    with EmbeddedServer(port=free_port()) as server:
        yield server


@pytest.fixture
def embedded_env(monkeypatch, embedded_server) -> Any:
    """The app pointed at the embedded server, as `make run` does with nothing configured."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PERSONAWEB_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERSONAWEB_EMBEDDED_PORT", str(embedded_server.port))
    return embedded_server


# --- a real browser, for every browser suite ------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    from tests.live import chromium_browser

    with chromium_browser() as browser:
        yield browser


@pytest.fixture
def page(chromium, request):
    """A fresh page that fails its test on any script error. A test module may set VIEWPORT
    (width, height), and CHECK_CONSOLE_ERRORS = True to fail on console errors too."""
    from tests.live import collect_page_errors

    width, height = getattr(request.module, "VIEWPORT", (1440, 900))
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = collect_page_errors(
        page, console=getattr(request.module, "CHECK_CONSOLE_ERRORS", False)
    )
    yield page
    context.close()
    # No script errors (a CSP violation or a broken swap would show up here).
    assert not errors, errors
