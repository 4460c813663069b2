from __future__ import annotations

import asyncio
from typing import Any

import pytest

from personaweb.llm import (
    ChatMessage,
    ChatModel,
    ChatRequest,
    Completion,
    LLMProfile,
    LLMTimeout,
    ScriptedChatModel,
    StructuredOutputError,
)
from personaweb.llm.scripted import ScriptError, split_for_streaming

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"to": {"type": "string", "enum": ["responder", "style_rewriter"]}},
    "required": ["to"],
}


def ask(
    text: str, system: str = "You are Sara.", schema: dict[str, Any] | None = None
) -> ChatRequest:
    return ChatRequest(
        (ChatMessage("system", system), ChatMessage("user", text)), LLMProfile(), schema=schema
    )


async def collect(model: ScriptedChatModel, request: ChatRequest) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    final: Completion | None = None
    async for chunk in model.stream(request):
        if chunk.completion is not None:
            final = chunk.completion
        else:
            deltas.append(chunk.delta)
    assert final is not None
    return deltas, final


def test_it_implements_the_port() -> None:
    assert isinstance(ScriptedChatModel(), ChatModel)


async def test_replies_come_in_order_and_calls_are_recorded() -> None:
    model = ScriptedChatModel()
    model.enqueue("first", "second")

    assert (await model.complete(ask("a"))).text == "first"
    assert (await model.complete(ask("b"))).text == "second"
    assert [c.messages[-1].content for c in model.calls] == ["a", "b"]
    model.assert_complete()


async def test_assert_complete_fails_when_replies_are_left() -> None:
    model = ScriptedChatModel("used", "never used")
    await model.complete(ask("a"))
    with pytest.raises(AssertionError, match="1 scripted repl"):
        model.assert_complete()


async def test_an_unexpected_call_fails_loudly_with_the_message() -> None:
    # Not an AssertionError nor any Exception: product code's catch-alls must not swallow it.
    with pytest.raises(ScriptError, match=r"unexpected call #1.*'hello'"):
        await ScriptedChatModel().complete(ask("hello"))


async def test_an_exception_reply_is_raised() -> None:
    model = ScriptedChatModel(LLMTimeout("too slow"))
    with pytest.raises(LLMTimeout, match="too slow"):
        await model.complete(ask("a"))
    # Streams fail the same way, on first iteration.
    model.enqueue(LLMTimeout("again"))
    with pytest.raises(LLMTimeout, match="again"):
        await collect(model, ask("b"))


async def test_a_callable_reply_sees_the_request() -> None:
    model = ScriptedChatModel(lambda request: request.messages[-1].content.upper())
    assert (await model.complete(ask("shout"))).text == "SHOUT"


async def test_streaming_splits_the_text_into_several_deltas() -> None:
    model = ScriptedChatModel("I am Sara Wilcox, and you are?")

    deltas, completion = await collect(model, ask("a"))

    assert len(deltas) > 1
    assert "".join(deltas) == completion.text == "I am Sara Wilcox, and you are?"
    assert completion.completion_tokens == len(deltas)
    assert completion.finish_reason == "stop"


@pytest.mark.parametrize("text", ["", "  lead", "trail  ", "a\n\nb", "one"])
def test_split_for_streaming_loses_nothing(text: str) -> None:
    assert "".join(split_for_streaming(text)) == text


async def test_structured_replies_are_validated_like_the_real_model() -> None:
    model = ScriptedChatModel('```json\n{"to": "responder"}\n```', '{"to": "bob"}', "")

    assert (await model.complete(ask("a", schema=SCHEMA))).parsed == {"to": "responder"}
    with pytest.raises(StructuredOutputError, match=r"\$.to: 'bob' is not one of") as caught:
        await collect(model, ask("b", schema=SCHEMA))
    assert caught.value.completion is not None
    assert caught.value.completion.text == '{"to": "bob"}'
    with pytest.raises(StructuredOutputError, match="empty response"):
        await model.complete(ask("c", schema=SCHEMA))


async def test_routes_answer_concurrent_personas_whatever_the_order() -> None:
    model = ScriptedChatModel()
    model.route(ScriptedChatModel.system_contains("rewriter"), "Rewritten.")
    model.route(ScriptedChatModel.system_contains("responder"), "Answer 1.", "Answer 2.")

    results = await asyncio.gather(
        model.complete(ask("x", system="You are the responder.")),
        model.complete(ask("y", system="You are the rewriter.")),
        model.complete(ask("z", system="You are the responder.")),
    )

    assert sorted(r.text for r in results) == ["Answer 1.", "Answer 2.", "Rewritten."]
    model.assert_complete()


async def test_a_used_up_route_falls_through_to_the_queue_then_the_default() -> None:
    model = ScriptedChatModel("from the queue")
    model.route(lambda request: True, "from the route")
    model.default = lambda request: "from the default"

    texts = [(await model.complete(ask(str(i)))).text for i in range(3)]

    assert texts == ["from the route", "from the queue", "from the default"]


async def test_a_repeating_route_never_runs_out() -> None:
    model = ScriptedChatModel()
    model.route(lambda request: True, "again", repeat=True)
    texts = [(await model.complete(ask(str(i)))).text for i in range(3)]
    assert texts == ["again"] * 3
    model.assert_complete()
