"""A real server for real Chromium: daphne in a subprocess on the test database, with the
scripted OpenAI-compatible server as its LLM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer
from tests.live import live_app


@pytest.fixture(scope="module")
def browser_llm(scripted_dialogue) -> Iterator[ScriptedOpenAIServer]:
    # Slow enough streaming that a person (and the test) can watch the text arrive.
    with ScriptedOpenAIServer(responder=scripted_dialogue, chunk_delay_s=0.04) as server:
        yield server


@pytest.fixture(scope="module")
def live_server_proc(django_db_setup, django_db_blocker, browser_llm, tmp_path_factory):
    with live_app(browser_llm.base_url, tmp_path_factory) as server:
        yield server
