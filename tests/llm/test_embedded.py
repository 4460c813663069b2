"""The real embedded model (SmolLM2-135M under llama.cpp): slow-ish, needs the `local` extra."""

from __future__ import annotations

from typing import Any

import pytest

from personaweb.llm import (
    ChatMessage,
    ChatRequest,
    Completion,
    EndpointConfig,
    LLMProfile,
    OpenAIChatModel,
)
from personaweb.llm.config import EMBEDDED_MODEL
from personaweb.llm.embedded import EmbeddedServer, find_gguf

pytestmark = pytest.mark.embedded

DECISION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["delegate", "reply"]},
        "to": {"type": "string", "enum": ["responder", "style_rewriter"]},
        "message": {"type": "string", "minLength": 1},
    },
    "required": ["action", "to", "message"],
    "additionalProperties": False,
}


def embedded_model(server: EmbeddedServer) -> OpenAIChatModel:
    config = EndpointConfig(
        server.base_url, "sk-local", EMBEDDED_MODEL, embedded=True, embedded_port=server.port
    )
    return OpenAIChatModel(config)


def test_the_model_file_ships_in_the_wheel(embedded_server: EmbeddedServer) -> None:
    assert find_gguf().suffix == ".gguf"


async def test_it_streams_a_short_reply(embedded_server: EmbeddedServer) -> None:
    model = embedded_model(embedded_server)
    request = ChatRequest(
        (ChatMessage("user", "Say hello in a few words."),),
        LLMProfile(max_tokens=16, temperature=0.0),
    )
    deltas: list[str] = []
    final: Completion | None = None
    async for chunk in model.stream(request):
        if chunk.completion is not None:
            final = chunk.completion
        else:
            deltas.append(chunk.delta)
    await model.aclose()

    assert final is not None
    assert final.text.strip()
    assert "".join(deltas) == final.text
    assert final.model == EMBEDDED_MODEL
    # llama.cpp's server sends no usage while streaming: the count is estimated from chunks.
    assert final.usage_estimated
    assert final.completion_tokens == len(deltas)


async def test_it_makes_a_schema_valid_delegation_decision(
    embedded_server: EmbeddedServer,
) -> None:
    model = embedded_model(embedded_server)
    request = ChatRequest(
        (
            ChatMessage(
                "system",
                "You are an orchestrator with helpers `responder` and `style_rewriter`. "
                "Answer only with JSON with keys action, to, message.",
            ),
            ChatMessage("user", "I am Joe. Who are you?"),
        ),
        LLMProfile(max_tokens=128, temperature=0.0),
        schema=DECISION,
    )

    completion = await model.complete(request)
    await model.aclose()

    # The grammar constrains the output; our own validation ran and filled `parsed`.
    assert completion.parsed["action"] in ("delegate", "reply")
    assert completion.parsed["to"] in ("responder", "style_rewriter")
    assert completion.parsed["message"]
    assert model.structured_dialect() == "json_object"


async def test_concurrent_streams_do_not_cut_each_other_off(
    embedded_server: EmbeddedServer,
) -> None:
    # llama.cpp's server interrupts a stream when another request arrives, unless told not to;
    # comparison columns and several sessions stream at once.
    import asyncio

    model = embedded_model(embedded_server)

    async def ask(text: str) -> str:
        request = ChatRequest((ChatMessage("user", text),), LLMProfile(max_tokens=24))
        final = None
        async for chunk in model.stream(request):
            if chunk.completion is not None:
                final = chunk.completion
        assert final is not None
        return final.text

    first, second = await asyncio.gather(ask("Name a colour."), ask("Name an animal."))
    await model.aclose()
    assert first.strip() and second.strip()
