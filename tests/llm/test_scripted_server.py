"""The scripted server's wire format, checked with plain HTTP (no SDK in between)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from personaweb.llm.scripted_server import Broken, Delayed, ScriptedOpenAIServer, ServerError


def post(server: ScriptedOpenAIServer, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def events(raw: str) -> list[str]:
    return [line.removeprefix("data: ") for line in raw.split("\n\n") if line]


MESSAGES = [{"role": "user", "content": "hi"}]


def test_it_lists_its_model(openai_server: ScriptedOpenAIServer) -> None:
    with urllib.request.urlopen(f"{openai_server.base_url}/models", timeout=5) as response:
        assert json.load(response)["data"][0]["id"] == "scripted-model"


def test_streams_are_server_sent_events_ending_in_done(
    openai_server: ScriptedOpenAIServer,
) -> None:
    openai_server.enqueue("Hello there")
    status, raw = post(
        openai_server,
        {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
    )

    assert status == 200
    *chunks, done = events(raw)
    assert done == "[DONE]"
    parsed = [json.loads(c) for c in chunks]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in parsed if c["choices"])
    assert text == "Hello there"
    assert parsed[-1]["usage"]["completion_tokens"] == 2


def test_the_llamacpp_dialect_never_streams_usage(llamacpp_server: ScriptedOpenAIServer) -> None:
    llamacpp_server.enqueue("Hello there")
    _, raw = post(
        llamacpp_server,
        {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert all("usage" not in json.loads(c) for c in events(raw)[:-1])


def test_the_llamacpp_dialect_rejects_json_schema_without_using_a_reply(
    llamacpp_server: ScriptedOpenAIServer,
) -> None:
    llamacpp_server.enqueue('{"a": 1}')
    schema_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}

    status, raw = post(llamacpp_server, {"messages": MESSAGES, "response_format": schema_format})
    assert status == 500
    assert "response_format" in json.loads(raw)["error"]["message"]

    object_format = {"type": "json_object", "schema": {"type": "object"}}
    status, raw = post(llamacpp_server, {"messages": MESSAGES, "response_format": object_format})
    assert status == 200
    assert json.loads(raw)["choices"][0]["message"]["content"] == '{"a": 1}'
    llamacpp_server.assert_complete()


def test_errors_are_openai_shaped(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.enqueue(ServerError(429))
    status, raw = post(openai_server, {"messages": MESSAGES})
    assert status == 429
    assert json.loads(raw)["error"]["type"] == "rate_limit_exceeded"


def test_a_responder_answers_unscripted_requests(openai_server: ScriptedOpenAIServer) -> None:
    openai_server.responder = lambda body: f"echo {body['messages'][-1]['content']}"
    _, raw = post(openai_server, {"messages": MESSAGES})
    assert json.loads(raw)["choices"][0]["message"]["content"] == "echo hi"


def test_a_responder_may_answer_with_a_delay_or_a_broken_reply(
    openai_server: ScriptedOpenAIServer,
) -> None:
    # A fault suite slows or breaks one persona's calls by answering them from a responder.
    openai_server.responder = lambda body: (
        Delayed(0.01, "late") if body.get("stream") is None else Broken("cut", finish=None)
    )
    _, raw = post(openai_server, {"messages": MESSAGES})
    assert json.loads(raw)["choices"][0]["message"]["content"] == "late"
    _, raw = post(openai_server, {"messages": MESSAGES, "stream": True})
    assert '"finish_reason": null' in raw and "[DONE]" in raw and '"stop"' not in raw
    openai_server.responder = lambda body: lambda again: "nested"  # type: ignore[return-value,arg-type]
    status, _ = post(openai_server, {"messages": MESSAGES})
    assert status == 500 and "got function" in openai_server.script_errors[0]
    openai_server.script_errors.clear()


def test_unscripted_requests_without_a_responder_are_flagged(
    openai_server: ScriptedOpenAIServer,
) -> None:
    status, _ = post(openai_server, {"messages": MESSAGES})
    assert status == 500
    with pytest.raises(AssertionError, match="1 unexpected request"):
        openai_server.assert_complete()
