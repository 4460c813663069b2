"""Shared fixtures for the web and browser tests: a cast of users (alice owns, bob does not),
sessions, and a scripted OpenAI-compatible server standing in for the LLM."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer
from tests.live import scripted_llm
from tests.scripted_replies import dialogue_responder, group_responder

PASSWORD = "a-long-test-password-42"


@pytest.fixture(scope="session")
def scripted_dialogue() -> Callable[[dict[str, Any]], str]:
    return dialogue_responder


@pytest.fixture
def llm_server(monkeypatch) -> Iterator[ScriptedOpenAIServer]:
    """The scripted LLM playing the dialogue hierarchy."""
    with scripted_llm(monkeypatch, dialogue_responder) as server:
        yield server


@pytest.fixture
async def clean_runs() -> AsyncIterator[None]:
    """Runs are process-wide: the test starts with none and leaves none behind."""
    from personaweb.web import runs

    runs.reset_for_tests()
    yield
    for session_id in list(runs._tasks):
        await runs.stop(session_id)
    runs.reset_for_tests()


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


@pytest.fixture
def group_llm(monkeypatch) -> Iterator[ScriptedOpenAIServer]:
    """The scripted LLM playing a group chat."""
    with scripted_llm(monkeypatch, group_responder) as server:
        yield server


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


# --- under CI nothing vanishes ---------------------------------------------------------------


def under_ci() -> bool:
    """CI sets CI (to "true"); it has Chromium, the embedded model, PostgreSQL and Redis."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under CI a skipped test fails, saying why it would have skipped: CI has everything the
    suite needs, so a skip there means a part went missing and a feature could vanish while the
    suite stays green. (Deselection, as `make check` does, is not a skip.)"""
    report = yield
    if report.skipped and under_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI={os.environ.get('CI')}, where it must run: {reason}"
    return report
