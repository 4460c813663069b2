"""OpenAIChatModel over real HTTP, against the scripted server in both dialects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from personaweb.llm import (
    ChatMessage,
    ChatModel,
    ChatRequest,
    Completion,
    LLMProfile,
    LLMRateLimited,
    LLMRequestError,
    LLMTimeout,
    LLMUnavailable,
    OpenAIChatModel,
    StreamChunk,
    StructuredOutputError,
)
from personaweb.llm.config import EndpointConfig
from personaweb.llm.scripted_server import Broken, Delayed, ScriptedOpenAIServer, ServerError
from personaweb.llm.types import LLMCutOff

ModelFactory = Callable[..., OpenAIChatModel]

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
GOOD_DECISION = '{"action": "delegate", "to": "responder", "message": "Who is Joe?"}'


def ask(text: str = "I am Joe. Who are you?", **profile: Any) -> ChatRequest:
    return ChatRequest(
        (ChatMessage("system", "You are Sara."), ChatMessage("user", text)),
        LLMProfile(**profile),
    )


def ask_for_decision(**profile: Any) -> ChatRequest:
    return ChatRequest(
        (ChatMessage("system", "Decide."), ChatMessage("user", "I am Joe.")),
        LLMProfile(**profile),
        schema=DECISION,
        schema_name="delegation decision",
    )


async def collect(model: OpenAIChatModel, request: ChatRequest) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    final: list[Completion] = []
    async for chunk in model.stream(request):
        if chunk.completion is not None:
            final.append(chunk.completion)
        else:
            deltas.append(chunk.delta)
    assert len(final) == 1, "exactly one final chunk carries the completion"
    return deltas, final[0]


def test_it_implements_the_port(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    assert isinstance(model_for(openai_server), ChatModel)


async def test_complete_reports_text_usage_and_the_exact_request(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue("I am Sara Wilcox.")
    model = model_for(openai_server)

    completion = await model.complete(ask(temperature=0.3, max_tokens=50))

    assert completion.text == "I am Sara Wilcox."
    assert completion.model == "scripted-model"  # as the server reports it
    assert completion.finish_reason == "stop"
    assert completion.prompt_tokens == 9
    assert completion.completion_tokens == 4
    assert not completion.usage_estimated
    assert completion.latency_s > 0
    assert completion.endpoint == openai_server.base_url
    (sent,) = openai_server.requests
    assert sent["model"] == "test-model"  # empty profile model -> the config's default
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 50
    assert sent["messages"] == [
        {"role": "system", "content": "You are Sara."},
        {"role": "user", "content": "I am Joe. Who are you?"},
    ]
    assert "response_format" not in sent


async def test_a_profile_model_overrides_the_default(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue("ok")
    await model_for(openai_server).complete(ask(model="other-model"))
    assert openai_server.requests[0]["model"] == "other-model"


async def test_a_profile_base_url_overrides_the_configured_endpoint(
    openai_server: ScriptedOpenAIServer, llamacpp_server: ScriptedOpenAIServer
) -> None:
    config = EndpointConfig(openai_server.base_url, "sk-test", "test-model", embedded=False)
    model = OpenAIChatModel(config, max_retries=0)
    llamacpp_server.enqueue("from the other server")

    completion = await model.complete(ask(base_url=llamacpp_server.base_url))

    assert completion.text == "from the other server"
    assert completion.endpoint == llamacpp_server.base_url
    assert openai_server.requests == []


async def test_streaming_yields_deltas_then_usage_from_the_server(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue("I am Sara, and you are late.")

    deltas, completion = await collect(model_for(openai_server), ask())

    assert len(deltas) > 1
    assert "".join(deltas) == completion.text == "I am Sara, and you are late."
    assert completion.completion_tokens == 7
    assert completion.prompt_tokens == 9
    assert not completion.usage_estimated
    assert completion.finish_reason == "stop"
    assert completion.model == "scripted-model"
    assert openai_server.requests[0]["stream_options"] == {"include_usage": True}


async def test_streaming_without_a_usage_chunk_estimates_completion_tokens(
    llamacpp_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    # llama-cpp-python's server sends no usage while streaming.
    llamacpp_server.enqueue("One two three four five.")

    deltas, completion = await collect(model_for(llamacpp_server), ask())

    assert completion.text == "One two three four five."
    assert completion.completion_tokens == len(deltas) == 5
    assert completion.prompt_tokens is None
    assert completion.usage_estimated


async def test_finish_reason_length_is_reported(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue("one two three")
    _, completion = await collect(model_for(openai_server), ask(max_tokens=3))
    assert completion.finish_reason == "length"


async def test_structured_output_uses_json_schema_where_supported(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue(GOOD_DECISION, GOOD_DECISION)
    model = model_for(openai_server)

    completion = await model.complete(ask_for_decision())
    _, streamed = await collect(model, ask_for_decision())

    assert completion.parsed == streamed.parsed == json.loads(GOOD_DECISION)
    assert model.structured_dialect() == "json_schema"
    first, second = openai_server.requests
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "delegation_decision", "schema": DECISION, "strict": False},
    }
    assert second["response_format"] == first["response_format"]


async def test_structured_output_falls_back_to_json_object_on_llamacpp_and_remembers(
    llamacpp_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    llamacpp_server.enqueue(GOOD_DECISION, GOOD_DECISION)
    model = model_for(llamacpp_server)

    completion = await model.complete(ask_for_decision())
    _, streamed = await collect(model, ask_for_decision())

    assert completion.parsed == streamed.parsed == json.loads(GOOD_DECISION)
    assert model.structured_dialect() == "json_object"
    # One rejected probe, then json_object for this call and the next: no second probe.
    formats = [r["response_format"]["type"] for r in llamacpp_server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    # Length bounds are left out of what llama.cpp compiles into a grammar (a large maxLength
    # crashes its server) but are still checked here.
    sent = llamacpp_server.requests[1]["response_format"]["schema"]
    assert "minLength" not in json.dumps(sent)
    assert sent["properties"]["to"] == DECISION["properties"]["to"]


async def test_length_bounds_left_out_of_the_grammar_are_still_enforced(
    llamacpp_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    llamacpp_server.enqueue('{"action": "reply", "to": "responder", "message": ""}')
    model = model_for(llamacpp_server, structured_dialect="json_object")
    with pytest.raises(StructuredOutputError):
        await model.complete(ask_for_decision())


async def test_the_dialect_can_be_forced(
    llamacpp_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    llamacpp_server.enqueue(GOOD_DECISION)
    model = model_for(llamacpp_server, structured_dialect="json_object")

    await model.complete(ask_for_decision())

    assert [r["response_format"]["type"] for r in llamacpp_server.requests] == ["json_object"]


async def test_the_embedded_endpoint_is_known_to_need_json_object(
    llamacpp_server: ScriptedOpenAIServer,
) -> None:
    config = EndpointConfig(llamacpp_server.base_url, "sk-local", "smollm2", embedded=True)
    llamacpp_server.enqueue(GOOD_DECISION)

    await OpenAIChatModel(config, max_retries=0).complete(ask_for_decision())

    assert [r["response_format"]["type"] for r in llamacpp_server.requests] == ["json_object"]


async def test_a_transient_error_during_the_probe_is_not_taken_for_a_dialect(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue(ServerError(503, headers={"Retry-After": "7"}), GOOD_DECISION)
    model = model_for(openai_server)

    # The failure goes to the caller, who retries when the server says (llm/calls.py): no
    # second request behind its back, and no dialect learned from it.
    with pytest.raises(LLMUnavailable) as caught:
        await model.complete(ask_for_decision())
    assert caught.value.transient and caught.value.retry_after == 7
    assert len(openai_server.requests) == 1 and model.structured_dialect() is None

    completion = await model.complete(ask_for_decision())

    assert completion.parsed == json.loads(GOOD_DECISION)
    assert model.structured_dialect() == "json_schema"
    assert [r["response_format"]["type"] for r in openai_server.requests] == ["json_schema"] * 2


@pytest.mark.parametrize("dialect", ["openai", "llamacpp"])
async def test_invalid_structured_output_raises_with_text_and_completion(
    dialect: str, model_for: ModelFactory
) -> None:
    with ScriptedOpenAIServer(dialect=dialect) as server:  # type: ignore[arg-type]
        server.enqueue('{"action": "delegate", "to": "bob"}', "not json at all")
        model = model_for(server)

        with pytest.raises(StructuredOutputError, match=r"\$.to: 'bob' is not one of") as bad:
            await model.complete(ask_for_decision())
        assert bad.value.text == '{"action": "delegate", "to": "bob"}'
        assert bad.value.completion is not None
        assert bad.value.completion.model == "scripted-model"

        with pytest.raises(StructuredOutputError, match="invalid JSON") as streamed:
            await collect(model, ask_for_decision())
        assert streamed.value.text == "not json at all"


async def test_rate_limits_become_llm_rate_limited(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue(ServerError(429))

    with pytest.raises(LLMRateLimited) as caught:
        await model_for(openai_server).complete(ask())

    assert caught.value.status == 429
    assert caught.value.retryable
    assert openai_server.base_url in str(caught.value)
    assert "429" in str(caught.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_server_errors_become_llm_unavailable(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory, stream: bool
) -> None:
    openai_server.enqueue(ServerError(500, {"error": {"message": "CUDA out of memory"}}))

    with pytest.raises(LLMUnavailable, match="HTTP 500: CUDA out of memory") as caught:
        if stream:
            await collect(model_for(openai_server), ask())
        else:
            await model_for(openai_server).complete(ask())

    assert caught.value.endpoint == openai_server.base_url


async def test_the_sdk_retries_a_5xx_before_giving_up(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue(ServerError(502), "second time lucky")

    completion = await model_for(openai_server, max_retries=1).complete(ask())

    assert completion.text == "second time lucky"
    assert len(openai_server.requests) == 2


@pytest.mark.parametrize("cut", ["close", "reset"])
async def test_a_body_cut_short_is_llm_unavailable_not_a_json_error(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory, cut: str
) -> None:
    # Half a JSON body, then the connection ends: the SDK's json.loads error must not escape
    # as if it were a bug (the engine would call it an internal error, with no call record).
    openai_server.enqueue(Broken(GOOD_DECISION, cut_after=1, cut=cut))  # type: ignore[arg-type]

    with pytest.raises(LLMUnavailable) as caught:
        await model_for(openai_server).complete(ask_for_decision())

    assert caught.value.retryable and caught.value.transient
    assert openai_server.base_url in str(caught.value)


@pytest.mark.parametrize(("cut_after", "error"), [(2, LLMCutOff), (0, LLMUnavailable)])
async def test_a_stream_event_that_is_not_json_breaks_the_stream_off(
    openai_server: ScriptedOpenAIServer,
    model_for: ModelFactory,
    cut_after: int,
    error: type[Exception],
) -> None:
    # A mangled event (a proxy, a server bug): the text before it is a cut-off reply, never a
    # JSONDecodeError escaping the port.
    openai_server.enqueue(Broken("One two three four.", cut_after=cut_after, cut="garble"))

    with pytest.raises(error) as caught:
        await collect(model_for(openai_server), ask())

    if isinstance(caught.value, LLMCutOff):
        assert caught.value.partial.text == "One two "
    assert "JSONDecodeError" in str(caught.value)


async def test_client_errors_become_llm_request_error(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue(ServerError(404, {"error": {"message": "model 'x' not found"}}))

    with pytest.raises(LLMRequestError, match="HTTP 404: model 'x' not found") as caught:
        await model_for(openai_server).complete(ask())

    assert not caught.value.retryable


async def test_an_unreachable_server_is_llm_unavailable(model_for: ModelFactory) -> None:
    with ScriptedOpenAIServer() as server:
        model = model_for(server)
    # The server is stopped: its port now refuses connections.
    with pytest.raises(LLMUnavailable, match="cannot connect"):
        await model.complete(ask())


@pytest.mark.parametrize("stream", [False, True])
async def test_a_slow_server_is_llm_timeout(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory, stream: bool
) -> None:
    openai_server.enqueue(Delayed(30, "too late"))
    model = model_for(openai_server)

    with pytest.raises(LLMTimeout, match=r"no answer within 0\.2 s") as caught:
        if stream:
            await collect(model, ask(timeout_s=0.2))
        else:
            await model.complete(ask(timeout_s=0.2))

    assert caught.value.retryable
    assert openai_server.base_url in str(caught.value)


async def test_a_consumer_may_stop_a_stream_early(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    openai_server.enqueue("one two three four five six", "next")
    model = model_for(openai_server)

    stream = model.stream(ask())
    first: StreamChunk = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]

    assert first.delta == "one "
    # The connection was released: the next call works normally.
    assert (await model.complete(ask())).text == "next"


async def test_list_models_reports_the_served_ids(
    openai_server: ScriptedOpenAIServer, model_for: ModelFactory
) -> None:
    assert await model_for(openai_server).list_models() == ["scripted-model"]
