"""The README tests' LLM: the scripted OpenAI-compatible server on loopback, and a person's
shell environment pointing at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer
from tests.readme.shell import user_env
from tests.scripted_replies import dialogue_responder


def answers_schemas(body: dict[str, Any]) -> str:
    """The dialogue hierarchy's replies, and a valid decision for llm_check's structured call."""
    system = body["messages"][0]["content"]
    if system.startswith("You are an orchestrator with two helpers"):
        return json.dumps({"action": "delegate", "to": "responder", "message": "Say hello."})
    return dialogue_responder(body)


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer(dialect="openai", responder=answers_schemas) as server:
        yield server
        server.assert_no_script_errors()


@pytest.fixture
def env(tmp_path: Path, llm: ScriptedOpenAIServer) -> dict[str, str]:
    return user_env(tmp_path, llm.base_url)
