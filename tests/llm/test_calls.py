"""The one place LLM calls are made: budgets, deadlines, retries, cut-offs, validation.

Over real HTTP to the scripted server where the wire matters (cut streams, Retry-After, context
errors); with the in-process double where only the rules do.
"""

from __future__ import annotations

from typing import Any

import pytest

from personaweb.llm import calls
from personaweb.llm.budget import MESSAGE_OVERHEAD, estimate_tokens, fit_messages
from personaweb.llm.calls import RetryPolicy
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.scripted_server import Broken, Delayed, ScriptedOpenAIServer, ServerError
from personaweb.llm.types import ChatMessage, LLMContextExceeded, LLMProfile

PROFILE = LLMProfile(model="test-model", max_tokens=50, timeout_s=30)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 0}},
    "required": ["n"],
    "additionalProperties": False,
}


class FakeTime:
    """Sleeps that only move a clock: retries are checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def policy(self, **kw: Any) -> RetryPolicy:
        return RetryPolicy(sleep=self.sleep, clock=self.clock, **kw)


def talk(turns: int, words: int = 30) -> list[ChatMessage]:
    messages = [ChatMessage("system", "You are Sara. " * 5)]
    for i in range(turns):
        messages.append(ChatMessage("user", f"question {i} " + "word " * words))
        messages.append(ChatMessage("assistant", f"answer {i} " + "word " * words))
    messages.append(ChatMessage("user", "the latest message"))
    return messages


# --- fitting the context window ---------------------------------------------------------------


def test_the_estimate_errs_high_for_english_and_cjk() -> None:
    english = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(english) >= len(english.split())  # at least one per word
    assert estimate_tokens("漢字かな交じり文") >= len("漢字かな交じり文")
    assert estimate_tokens("\ud800 lone surrogate") > 0  # odd Unicode does not raise


async def test_a_prompt_that_fits_is_left_alone() -> None:
    messages = talk(2)
    fit = await fit_messages(messages, window=4096, reply_tokens=256)
    assert fit.messages == messages and fit.left_out == 0 and fit.note() is None


async def test_the_oldest_turns_go_first_and_the_sheet_and_latest_message_stay() -> None:
    messages = talk(30)
    fit = await fit_messages(messages, window=1024, reply_tokens=256)
    assert fit.left_out > 0
    assert fit.messages[0] == messages[0]  # the sheet
    assert fit.messages[-1] == messages[-1]  # the latest message
    kept_users = [m.content for m in fit.messages if m.role == "user"]
    # What remains is the newest turns, in order, and whole (each question with its answer).
    assert kept_users[-2].startswith("question 29")
    assert fit.messages[1].role == "user"
    assert fit.prompt_tokens <= 1024 - 256
    assert fit.note() == {
        "left_out": fit.left_out,
        "budget": 1024,
        "prompt_tokens": fit.prompt_tokens,
        "counted": "estimate",
    }


async def test_the_servers_count_is_used_near_the_limit() -> None:
    messages = talk(30)
    asked: list[int] = []

    async def count(texts: list[str]) -> list[int]:
        asked.append(len(texts))
        return [len(t.split()) for t in texts]  # a tokenizer that is kinder than the estimate

    fit = await fit_messages(messages, window=1024, reply_tokens=256, count=count)
    assert asked == [len(messages)]
    assert fit.counted == "server"
    # One token per word plus the template's overhead: more turns fit than by the estimate.
    by_estimate = await fit_messages(messages, window=1024, reply_tokens=256)
    assert fit.left_out < by_estimate.left_out
    assert fit.prompt_tokens == sum(len(m.content.split()) + MESSAGE_OVERHEAD for m in fit.messages)


async def test_a_latest_message_too_big_for_the_window_is_refused_with_numbers() -> None:
    messages = [ChatMessage("system", "sheet"), ChatMessage("user", "word " * 3000)]
    with pytest.raises(LLMContextExceeded, match=r"context window of 1,024 tokens") as caught:
        await fit_messages(messages, window=1024, reply_tokens=256)
    assert caught.value.window == 1024 and (caught.value.requested or 0) > 1024


async def test_a_call_records_what_was_left_out() -> None:
    model = ScriptedChatModel("Fine.")
    model.window = 1024
    record = await calls.generate(model, talk(30), PROFILE)
    assert isinstance(record, calls.CallRecord)
    assert record.trimmed is not None and record.trimmed["left_out"] > 0
    sent = model.calls[0].messages
    assert len(sent) < len(talk(30)) and sent[-1].content == "the latest message"


# --- cut-off streams: never a finished reply ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "partial"),
    [
        (
            Broken("Thou speak'st of trifles; mine ambition", cut_after=4),
            "Thou speak'st of trifles; ",
        ),
        (
            Broken("Thou speak'st of trifles; mine ambition", cut_after=4, cut="reset"),
            "Thou speak'st of trifles; ",
        ),
        (Broken("Thou speak'st of trifles.", finish=None), "Thou speak'st of trifles."),
    ],
    ids=["closed-before-done", "connection-reset", "no-finish-reason"],
)
async def test_a_cut_stream_is_a_failure_that_keeps_the_partial_text(
    model_for, openai_server: ScriptedOpenAIServer, fault: Broken, partial: str
) -> None:
    openai_server.enqueue(fault)
    result = await calls.generate(model_for(openai_server), [ChatMessage("user", "hi")], PROFILE)
    assert isinstance(result, calls.Failure)
    assert result.kind == "cut_off" and result.retryable
    assert result.record.response_text == partial
    assert result.record.finish_reason is None
    # Text already streamed is never retried behind the person's back.
    assert len(openai_server.requests) == 1


async def test_a_reply_cut_by_max_tokens_comes_back_marked_length(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    openai_server.enqueue(Broken("Half a thought", finish="length"))
    record = await calls.generate(model_for(openai_server), [ChatMessage("user", "hi")], PROFILE)
    assert isinstance(record, calls.CallRecord) and record.finish_reason == "length"


async def test_a_stream_without_usage_still_finishes(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    openai_server.enqueue(Broken("Fine words.", usage=False))
    record = await calls.generate(model_for(openai_server), [ChatMessage("user", "hi")], PROFILE)
    assert isinstance(record, calls.CallRecord)
    assert record.response_text == "Fine words." and record.usage_estimated


# --- retries within one deadline ---------------------------------------------------------------


async def test_a_429_is_retried_after_its_retry_after_and_the_wait_is_announced(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    time = FakeTime()
    notes: list[str] = []

    async def on_status(note: str) -> None:
        notes.append(note)

    openai_server.enqueue(ServerError(429, headers={"Retry-After": "2"}), "At last.")
    record = await calls.generate(
        model_for(openai_server),
        [ChatMessage("user", "hi")],
        PROFILE,
        on_status=on_status,
        policy=time.policy(),
    )
    assert isinstance(record, calls.CallRecord) and record.response_text == "At last."
    assert time.slept == [2.0]
    assert notes == ["retrying (2/3) after HTTP 429, Retry-After 2 s"]
    # The refused request is on the record too: the totals count every request sent.
    assert [a["error"][:40] for a in record.attempts] == [record.attempts[0]["error"][:40]]
    assert "HTTP 429" in record.attempts[0]["error"]


async def test_a_retry_after_beyond_the_deadline_gives_up_at_once(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    time = FakeTime()
    openai_server.enqueue(ServerError(429, headers={"Retry-After": "120"}))
    result = await calls.generate(
        model_for(openai_server), [ChatMessage("user", "hi")], PROFILE, policy=time.policy()
    )
    assert isinstance(result, calls.Failure) and result.kind == "rate_limited"
    assert time.slept == []  # no point waiting past the 30 s deadline


async def test_server_errors_are_retried_at_most_three_times(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    time = FakeTime()
    openai_server.enqueue(ServerError(500), ServerError(502), ServerError(503))
    result = await calls.generate(
        model_for(openai_server), [ChatMessage("user", "hi")], PROFILE, policy=time.policy()
    )
    assert isinstance(result, calls.Failure) and result.kind == "unavailable"
    assert "after 3 tries" in result.reason and "HTTP 503" in result.reason
    assert time.slept == [0.5, 1.0]
    assert len(result.record.attempts) == 2
    openai_server.assert_complete()


async def test_a_slow_first_token_times_out_within_the_deadline(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    profile = LLMProfile(model="test-model", max_tokens=20, timeout_s=1.0)
    openai_server.enqueue(Delayed(5.0, "too late"))
    # The real clock: the timeout used up the deadline, so there is no time left to retry.
    no_wait = RetryPolicy(sleep=FakeTime().sleep)
    result = await calls.generate(
        model_for(openai_server), [ChatMessage("user", "hi")], profile, policy=no_wait
    )
    assert isinstance(result, calls.Failure) and result.kind == "timeout"
    assert len(openai_server.requests) == 1


async def test_a_context_error_teaches_the_window_and_the_prompt_is_fitted_to_it(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    message = (
        "This model's maximum context length is 1024 tokens. However, you requested 3000 tokens."
    )
    openai_server.enqueue(
        ServerError(400, {"error": {"message": message, "type": "invalid_request_error"}}),
        "Short enough now.",
    )
    model = model_for(openai_server)
    record = await calls.generate(model, talk(30), PROFILE, policy=FakeTime().policy())
    assert isinstance(record, calls.CallRecord) and record.response_text == "Short enough now."
    assert record.trimmed is not None and record.trimmed["budget"] == 1024
    assert len(openai_server.requests[1]["messages"]) < len(openai_server.requests[0]["messages"])
    assert await model.context_window(PROFILE) == 1024


async def test_a_context_error_that_cannot_be_fixed_is_a_failure_with_the_numbers(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    message = "Requested tokens (2100) exceed context window of 2048"
    openai_server.enqueue(ServerError(400, {"error": {"message": message, "type": "x"}}))
    result = await calls.generate(
        model_for(openai_server),
        [ChatMessage("user", "hi")],
        PROFILE,
        policy=FakeTime().policy(),
    )
    # The prompt already fits the window the server named: nothing to leave out, no resend.
    assert isinstance(result, calls.Failure) and result.kind == "context"
    assert "2,100 tokens requested" in result.reason and "2,048" in result.reason
    assert len(openai_server.requests) == 1


# --- structured calls ---------------------------------------------------------------------------


async def test_an_invalid_answer_is_re_asked_with_its_error_and_every_attempt_counts() -> None:
    model = ScriptedChatModel('{"n": -1}', "not json", '{"n": 3}')
    result = await calls.structured(model, [ChatMessage("user", "a number")], PROFILE, SCHEMA)
    assert isinstance(result, calls.Valid) and result.value == {"n": 3}
    assert len(result.record.attempts) == 2 and result.record.calls == 3
    assert "$.n: -1 is less than the minimum of 0" in result.record.attempts[0]["error"]
    resent = model.calls[1].messages
    assert resent[-1].content.startswith("That answer was not valid:")


async def test_a_check_beyond_the_schema_is_applied() -> None:
    model = ScriptedChatModel('{"n": 4}', '{"n": 5}')

    def odd(value: Any) -> list[str]:
        return [] if value["n"] % 2 else ["n must be odd"]

    result = await calls.structured(
        model, [ChatMessage("user", "an odd number")], PROFILE, SCHEMA, check=odd
    )
    assert isinstance(result, calls.Valid) and result.value == {"n": 5}


async def test_no_valid_answer_is_a_failure_whose_record_is_the_last_answer() -> None:
    model = ScriptedChatModel("a", "b", "c")
    result = await calls.structured(
        model, [ChatMessage("user", "x")], PROFILE, SCHEMA, what="number"
    )
    assert isinstance(result, calls.Failure) and result.kind == "invalid"
    assert result.reason.startswith("no valid number after 3 attempts")
    assert result.record.response_text == "c"
    assert [a["response_text"] for a in result.record.attempts] == ["a", "b"]
    assert result.record.calls == 3


async def test_invalid_json_from_a_real_server_is_re_asked(
    model_for, openai_server: ScriptedOpenAIServer
) -> None:
    openai_server.enqueue('{"n": ', '{"n": 7}')
    result = await calls.structured(
        model_for(openai_server), [ChatMessage("user", "x")], PROFILE, SCHEMA
    )
    assert isinstance(result, calls.Valid) and result.value == {"n": 7}
    openai_server.assert_complete()
