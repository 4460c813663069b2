from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from personaweb.llm.config import EndpointConfig
from personaweb.llm.openai_model import OpenAIChatModel
from personaweb.llm.scripted_server import ScriptedOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer(dialect="openai") as server:
        yield server


@pytest.fixture
def llamacpp_server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer(dialect="llamacpp") as server:
        yield server


ModelFactory = Callable[..., OpenAIChatModel]


@pytest.fixture
def model_for() -> ModelFactory:
    """Builds an OpenAIChatModel for a scripted server, configured as a vLLM setup would be.

    Retries default to 0 so that error tests do not sit through the SDK's backoff.
    """

    def build(server: ScriptedOpenAIServer, **options: Any) -> OpenAIChatModel:
        config = EndpointConfig(
            base_url=server.base_url, api_key="sk-test", default_model="test-model", embedded=False
        )
        options.setdefault("max_retries", 0)
        return OpenAIChatModel(config, **options)

    return build
