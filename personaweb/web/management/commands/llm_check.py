"""`python manage.py llm_check`: is the configured LLM endpoint usable for PersonaWeb?

Sends one streamed completion and one structured-output request (a delegation decision, the
kind an orchestrator persona makes) and reports endpoint, model, latency, tokens/s and whether
the structured output validated. Exit code 0 only if both worked.

Reads the endpoint from the environment via `endpoint_from_env`, exactly as the app does; with
no endpoint configured it starts the embedded model for the check (unless one already answers).
"""

from __future__ import annotations

import asyncio
import os
from contextlib import ExitStack
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from personaweb.llm import (
    ChatMessage,
    ChatRequest,
    Completion,
    EndpointConfig,
    LLMError,
    LLMProfile,
    OpenAIChatModel,
    StructuredOutputError,
    endpoint_from_env,
)
from personaweb.personas import decision_schema

# The very decision an orchestrator of the dialogue hierarchy makes, so the check exercises
# the schema the product sends.
DELEGATION_SCHEMA: dict[str, Any] = decision_schema(["responder", "style_rewriter"])

STREAM_PROMPT = (
    ChatMessage("system", "You are a helpful assistant. Answer in one short sentence."),
    ChatMessage("user", "Say hello and name one colour."),
)

DECISION_PROMPT = (
    ChatMessage(
        "system",
        "You are an orchestrator with two helpers: `responder` writes what a character says, "
        "`style_rewriter` rewrites text in the character's voice. Decide the next step. Answer "
        'only with JSON: {"action": "delegate" or "reply", "to": "responder" or '
        '"style_rewriter", "message": "<the text to send>"}.',
    ),
    ChatMessage("user", "I am Joe. Who are you?"),
)


class Command(BaseCommand):
    help = "Check the configured LLM endpoint: one streamed reply and one structured decision."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="", help="model name (default: the endpoint's)")
        parser.add_argument("--max-tokens", type=int, default=64, help="limit per request")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = endpoint_from_env(os.environ)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        profile = LLMProfile(
            model=options["model"],
            temperature=0.2,
            max_tokens=options["max_tokens"],
            timeout_s=options["timeout"],
        )
        with ExitStack() as stack:
            if config.embedded:
                self._ensure_embedded(config, stack)
            kind = "embedded" if config.embedded else "configured"
            self.stdout.write(f"endpoint: {config.display_url} ({kind})")
            self.stdout.write(f"model:    {profile.model or config.default_model}")
            failures = asyncio.run(self._check(config, profile))
        if failures:
            raise CommandError("LLM check failed: " + "; ".join(failures))
        self.stdout.write(self.style.SUCCESS("LLM check passed"))

    def _ensure_embedded(self, config: EndpointConfig, stack: ExitStack) -> None:
        # Imported here: the embedded module is only needed when no endpoint is configured.
        from personaweb.llm.embedded import (
            EmbeddedServer,
            EmbeddedServerError,
            EmbeddedUnavailable,
            server_answers,
        )

        if config.base_url and server_answers(config.base_url):
            self.stdout.write(f"embedded model already answering on port {config.embedded_port}")
            return
        self.stdout.write(f"starting the embedded model on port {config.embedded_port} ...")
        try:
            stack.enter_context(EmbeddedServer.from_config(config))
        except (EmbeddedUnavailable, EmbeddedServerError) as exc:
            raise CommandError(str(exc)) from None

    async def _check(self, config: EndpointConfig, profile: LLMProfile) -> list[str]:
        model = OpenAIChatModel(config)
        failures: list[str] = []
        try:
            await self._check_stream(model, profile, failures)
            await self._check_structured(model, profile, failures)
        finally:
            await model.aclose()
        return failures

    async def _check_stream(
        self, model: OpenAIChatModel, profile: LLMProfile, failures: list[str]
    ) -> None:
        request = ChatRequest(STREAM_PROMPT, profile)
        deltas = 0
        completion: Completion | None = None
        try:
            async for chunk in model.stream(request):
                if chunk.completion is not None:
                    completion = chunk.completion
                elif chunk.delta:
                    deltas += 1
        except LLMError as exc:
            self.stdout.write(self.style.ERROR(f"stream:   FAILED ({type(exc).__name__}) {exc}"))
            failures.append(f"streaming: {exc}")
            return
        if completion is None or not completion.text.strip():
            self.stdout.write(self.style.ERROR("stream:   FAILED (empty reply)"))
            failures.append("streaming: the reply was empty")
            return
        self.stdout.write(f"stream:   ok, {deltas} chunks: {completion.text.strip()[:120]!r}")
        self.stdout.write(f"          {_stats(completion)}")

    async def _check_structured(
        self, model: OpenAIChatModel, profile: LLMProfile, failures: list[str]
    ) -> None:
        # A decision needs room for a message; small limits would truncate the JSON.
        request = ChatRequest(
            DECISION_PROMPT,
            LLMProfile(
                model=profile.model,
                temperature=profile.temperature,
                max_tokens=max(profile.max_tokens, 128),
                timeout_s=profile.timeout_s,
            ),
            schema=DELEGATION_SCHEMA,
            schema_name="delegation_decision",
        )
        try:
            completion = await model.complete(request)
        except StructuredOutputError as exc:
            self.stdout.write(self.style.ERROR(f"schema:   FAILED, did not validate: {exc}"))
            self.stdout.write(f"          raw output: {exc.text[:300]!r}")
            failures.append(f"structured output: {exc}")
            return
        except LLMError as exc:
            self.stdout.write(self.style.ERROR(f"schema:   FAILED ({type(exc).__name__}) {exc}"))
            failures.append(f"structured output: {exc}")
            return
        dialect = model.structured_dialect() or "?"
        self.stdout.write(f"schema:   ok, validated ({dialect}): {completion.parsed}")
        self.stdout.write(f"          {_stats(completion)}")


def _stats(completion: Completion) -> str:
    tokens = completion.completion_tokens
    parts = [f"latency {completion.latency_s:.2f} s"]
    if tokens is not None:
        estimated = " (estimated)" if completion.usage_estimated else ""
        parts.append(f"{tokens} completion tokens{estimated}")
        if completion.latency_s > 0:
            parts.append(f"{tokens / completion.latency_s:.1f} tokens/s")
    if completion.prompt_tokens is not None:
        parts.append(f"{completion.prompt_tokens} prompt tokens")
    parts.append(f"finish {completion.finish_reason}")
    return ", ".join(parts)
