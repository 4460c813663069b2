"""Asking a model for structured output: validate, re-ask with the error, give up visibly."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from personaweb.llm.schema import parse_structured, validate
from personaweb.llm.types import (
    CallRecord,
    ChatMessage,
    ChatModel,
    ChatRequest,
    LLMError,
    LLMProfile,
    StructuredOutputError,
)
from personaweb.personas.persona import BasicPersona, ProposeContext
from personaweb.personas.proposal import ProposalFailed, ProposedResponse
from personaweb.personas.tree import Action

Checker = Callable[[Any], list[str]]


def _empty_record(messages: Sequence[ChatMessage], profile: LLMProfile) -> CallRecord:
    return CallRecord(
        messages=[m.to_dict() for m in messages],
        model=profile.model,
        temperature=profile.temperature,
        max_tokens=profile.max_tokens,
    )


async def ask_structured(
    model: ChatModel,
    messages: Sequence[ChatMessage],
    profile: LLMProfile,
    schema: dict[str, Any],
    *,
    check: Checker | None = None,
    max_attempts: int = 3,
    schema_name: str = "response",
    what: str = "answer",
) -> tuple[Any, CallRecord]:
    """A schema-valid value and the record of the call that produced it.

    Whatever the server claims, the value is validated here (and by `check`, for rules a schema
    cannot say). An invalid answer is shown back to the model with the error, up to
    `max_attempts` calls in all; then ProposalFailed carries every attempt."""
    prompt = list(messages)
    attempts: list[dict[str, Any]] = []
    last: CallRecord | None = None
    for _ in range(max(1, max_attempts)):
        request = ChatRequest(
            messages=tuple(prompt), profile=profile, schema=schema, schema_name=schema_name
        )
        try:
            completion = await model.complete(request)
            last = CallRecord.of(request, completion)
            text = completion.text
            value = completion.parsed
            if value is None:
                value = parse_structured(text, schema)
            errors = validate(value, schema)
            if not errors and check is not None:
                errors = check(value)
        except StructuredOutputError as exc:
            text = exc.text
            errors = [str(exc)]
            if exc.completion is not None:
                last = CallRecord.of(request, exc.completion)
        except LLMError as exc:
            record = last or _empty_record(prompt, profile)
            record.attempts = attempts
            raise ProposalFailed(f"{type(exc).__name__}: {exc}", record, exc.retryable) from exc
        if not errors:
            assert last is not None
            last.attempts = attempts
            return value, last
        attempts.append({"response_text": text, "error": "; ".join(errors)})
        prompt = [
            *prompt,
            ChatMessage("assistant", text or "(empty)"),
            ChatMessage(
                "user",
                f"That answer was not valid: {'; '.join(errors)}. "
                "Answer again with one JSON object only.",
            ),
        ]
    record = last or _empty_record(prompt, profile)
    record.attempts = attempts
    raise ProposalFailed(
        f"no valid {what} after {len(attempts)} attempts; last error: {attempts[-1]['error']}",
        record,
    )


class StructuredPersona(BasicPersona):
    """A basic persona whose reply is a JSON object valid against a schema. The reply's text is
    the compact JSON; the parsed value is kept in the node's data for display."""

    def __init__(
        self,
        name: str,
        *,
        system_prompt: str,
        schema: dict[str, Any],
        description: str = "",
        profile: LLMProfile | None = None,
        stateless: bool = True,
        max_attempts: int = 3,
        display_name: str = "",
    ) -> None:
        super().__init__(
            name,
            system_prompt=system_prompt,
            description=description,
            profile=profile,
            stateless=stateless,
            display_name=display_name,
        )
        self.schema = schema
        self.max_attempts = max_attempts

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        events = ctx.current if self.stateless else ctx.history
        value, call = await ask_structured(
            ctx.model,
            self.build_messages(events),
            self.profile,
            self.schema,
            max_attempts=self.max_attempts,
            schema_name=self.name,
        )
        text = json.dumps(value, ensure_ascii=False)
        return ProposedResponse(ctx.persona, Action.REPLY, text, call=call, data={"value": value})
