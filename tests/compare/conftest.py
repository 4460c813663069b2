"""Fixtures for the comparison tests: a scripted LLM that plays all three strategies (and the
LLM judge), routed by system prompt, and a character with a voice to measure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer, ServerError
from tests.live import live_app, scripted_llm
from tests.scripted_replies import orchestrator_decision

BROKEN_MODEL = "no-such-model"


def _heard(text: str) -> str:
    return re.sub(r"\s+", " ", text)[:40]


def strategy_responder(body: dict[str, Any]) -> str | ServerError:
    """Deterministic answers per persona, so tests can find each strategy's lines.

    A request for BROKEN_MODEL fails the way a server answers an unknown model (404, which
    the client does not retry), so one contender can fail while the others go on."""
    if body.get("model") == BROKEN_MODEL:
        return ServerError(404, headers={"x-should-retry": "false"})
    messages = body["messages"]
    system, last = messages[0]["content"], messages[-1]["content"]
    if system.startswith("You produce"):  # nested: the orchestrator
        return orchestrator_decision(messages)
    if "This is how you talk" in system:  # single: one prompt with the sample lines
        return f"Single says: thou didst say '{_heard(last)}'."
    if "Stay in character" in system:  # nested and linear: the responder
        return f"Responder hears '{_heard(last)}'."
    if system.startswith("You rewrite"):
        return f"Hark, {last}"
    if system.startswith("You judge whether"):  # linear: goal alignment
        return json.dumps({"score": 0.75, "drifting": False, "hint": ""})
    if system.startswith("You rate"):  # the optional LLM judge
        return json.dumps({"score": 0.6, "reason": "Archaic enough."})
    return "ok"


@pytest.fixture
def compare_llm(monkeypatch) -> Iterator[ScriptedOpenAIServer]:
    with scripted_llm(monkeypatch, strategy_responder) as server:
        yield server


SARA = {
    "slug": "sara_wilcox",
    "name": "Sara Wilcox",
    "description": "A proud lady who wants her husband crowned.",
    "personality": "commanding",
    "mood": "impatient",
    "goals": ["see Kevin rise"],
    "sample_lines": [
        "Leave all the rest to me.",
        "Look like the innocent flower, but be the serpent under it.",
        "What's done cannot be undone.",
        "Screw your courage to the sticking-place, and we'll not fail.",
    ],
}


@pytest.fixture
def sara(alice):
    from personaweb.web.models import Character

    return Character.objects.create(owner=alice, name="Sara Wilcox", slug="sara_wilcox", data=SARA)


# --- the browser suite: daphne in a subprocess on the test database ------------------------------


@pytest.fixture(scope="module")
def browser_compare_llm() -> Iterator[ScriptedOpenAIServer]:
    # Slow enough streaming that the test can watch text arrive in the columns.
    with ScriptedOpenAIServer(responder=strategy_responder, chunk_delay_s=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def compare_server(django_db_setup, django_db_blocker, browser_compare_llm, tmp_path_factory):
    with live_app(browser_compare_llm.base_url, tmp_path_factory) as server:
        yield server
