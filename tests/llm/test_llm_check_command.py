"""`manage.py llm_check` against a scripted endpoint (no embedded model, no database)."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from personaweb.llm.scripted_server import ScriptedOpenAIServer, ServerError


@pytest.fixture
def endpoint(
    monkeypatch: pytest.MonkeyPatch, openai_server: ScriptedOpenAIServer
) -> ScriptedOpenAIServer:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("PERSONAWEB_MODEL", "test-model")
    return openai_server


def answer(body: dict[str, Any]) -> str:
    if "response_format" in body:
        return json.dumps({"action": "delegate", "to": "responder", "message": "Who is Joe?"})
    return "Hello, the colour is blue."


def test_it_passes_when_streaming_and_structured_output_work(
    endpoint: ScriptedOpenAIServer,
) -> None:
    endpoint.responder = answer
    out = StringIO()

    call_command("llm_check", stdout=out)

    text = out.getvalue()
    assert endpoint.base_url in text
    assert "model:    test-model" in text
    assert "tokens/s" in text
    assert "validated (json_schema)" in text
    assert "LLM check passed" in text


def test_it_fails_when_the_structured_output_does_not_validate(
    endpoint: ScriptedOpenAIServer,
) -> None:
    endpoint.enqueue("Hello.", '{"action": "dance"}')

    with pytest.raises(CommandError, match="structured output"):
        call_command("llm_check", stdout=StringIO())


def test_it_fails_when_the_endpoint_errors(endpoint: ScriptedOpenAIServer) -> None:
    # x-should-retry: false keeps the SDK from retrying, so the test stays quick.
    no_retry = {"x-should-retry": "false"}
    endpoint.enqueue(ServerError(401, headers=no_retry), ServerError(401, headers=no_retry))

    with pytest.raises(CommandError, match=r"streaming: .*HTTP 401"):
        call_command("llm_check", stdout=StringIO())
