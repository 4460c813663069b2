"""The ChatModel implementation over the openai SDK (AsyncOpenAI), for any compatible server.

One implementation serves OpenAI, vLLM, Ollama and the embedded llama.cpp server. Where those
servers differ (structured-output dialect, usage while streaming) the difference is handled
here, so callers never know which server they talk to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import httpx2
import openai
from openai import AsyncOpenAI

from personaweb.llm.config import OPENAI_DEFAULT_BASE_URL, EndpointConfig
from personaweb.llm.embedded import read_status
from personaweb.llm.schema import apply_schema
from personaweb.llm.types import (
    ChatRequest,
    Completion,
    LLMContextExceeded,
    LLMCutOff,
    LLMError,
    LLMProfile,
    LLMRateLimited,
    LLMRequestError,
    LLMTimeout,
    LLMUnavailable,
    StreamChunk,
)

__all__ = ["OpenAIChatModel", "StructuredDialect", "map_sdk_error"]

log = logging.getLogger(__name__)

StructuredDialect = Literal["json_schema", "json_object"]
"""How a server is asked for schema-constrained output:
- json_schema: {"type": "json_schema", "json_schema": {...}} (OpenAI, vLLM, Ollama);
- json_object: {"type": "json_object", "schema": {...}} (llama-cpp-python's server)."""

# Servers that reject json_schema say so with one of these words in the error (llama-cpp-python
# 0.3.36: a 500 whose message is a validation error on body.response_format.type).
_FORMAT_REJECTION = re.compile(r"response_format|json_schema", re.IGNORECASE)
_FORMAT_REJECTION_STATUSES = frozenset({400, 422, 500})
# OpenAI requires json_schema.name to match this; other names are rejected with a 400.
_SCHEMA_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_ERROR_MESSAGE = 300
# How servers say a prompt is too long (OpenAI and vLLM: "maximum context length is N tokens";
# llama.cpp: "Requested tokens (N) exceed context window of M").
_CONTEXT_ERROR = re.compile(
    r"context[ _](length|window)|maximum context|exceed[s]? .*context|too many tokens",
    re.IGNORECASE,
)
_WINDOW_NUMBERS = (
    re.compile(r"maximum context length is (\d[\d,]*)", re.IGNORECASE),
    re.compile(r"context window of (\d[\d,]*)", re.IGNORECASE),
    re.compile(r"context (?:length|size|window)[^\d]{0,20}(\d[\d,]*)", re.IGNORECASE),
)
_REQUESTED_NUMBERS = (
    re.compile(r"requested tokens \((\d[\d,]*)\)", re.IGNORECASE),
    re.compile(r"(?:resulted in|requested) (\d[\d,]*) tokens", re.IGNORECASE),
)
# Keys under which OpenAI-compatible servers list a model's context window in /v1/models:
# vLLM's max_model_len, llama.cpp server's meta.n_ctx_train, others' context_length.
_WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "n_ctx")


@dataclass
class _ClientSlot:
    """An SDK client and the event loop it was created on."""

    client: AsyncOpenAI
    """The SDK client (owns an httpx connection pool)."""
    probe: AsyncOpenAI
    """The same client without retries, for the one-off structured-output dialect probe."""
    loop: asyncio.AbstractEventLoop
    """Pooled connections belong to this loop and must not be used from another one."""


class OpenAIChatModel:
    """ChatModel over `openai.AsyncOpenAI`, with one SDK client per endpoint (base URL)."""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        max_retries: int = 0,
        timeout_s: float = 60.0,
        structured_dialect: StructuredDialect | None = None,
    ) -> None:
        """Create the model; no connection is made until the first call.

        max_retries: retries inside the SDK. None by default: each call here is one attempt,
            and llm/calls.py retries transient failures itself, within one deadline per call
            and visibly (the SDK's own retries multiplied its timeout and showed nothing).
        timeout_s: default timeout for calls without a profile (listing models). Chat calls use
            their profile's `timeout_s` (what is left of the call's deadline). Either replaces
            the SDK's default of 600 s. With streaming it bounds the wait for each chunk, not
            the whole reply, which max_tokens bounds instead.
        structured_dialect: force how schemas are sent to every endpoint; None detects it per
            endpoint on the first structured call (the embedded server is known to be llama.cpp).
        """
        self.config = config
        """The default endpoint; a profile's base_url overrides its URL."""
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self._forced_dialect = structured_dialect
        self._dialects: dict[str, StructuredDialect] = {}
        self._clients: dict[str, _ClientSlot] = {}
        self._windows: dict[tuple[str, str], int | None] = {}
        self._tokenizers: dict[str, str | None] = {}
        if config.embedded and config.base_url:
            if structured_dialect is None:
                # The embedded endpoint is llama-cpp-python's server: skip the doomed probe.
                self._dialects[_key(config.base_url)] = "json_object"
            self._tokenizers[_key(config.base_url)] = "llama-cpp-python"

    # -- public helpers ----------------------------------------------------------------------

    def structured_dialect(self, base_url: str | None = None) -> StructuredDialect | None:
        """The dialect used for structured output at an endpoint; None until known."""
        return self._forced_dialect or self._dialects.get(_key(base_url or self.config.base_url))

    async def list_models(self, base_url: str | None = None) -> list[str]:
        """Model ids the endpoint serves (a cheap health check)."""
        url = base_url or self.config.base_url
        try:
            page = await self._slot(url).client.models.list()
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, _display(url)) from exc
        return [model.id for model in page.data]

    async def context_window(self, profile: LLMProfile) -> int | None:
        """The context window of the profile's model: the profile's own setting, the default
        endpoint's configured one, what a server said in a context-length error, or what the
        server lists in /v1/models (asked once per endpoint and model); None when unknown."""
        if profile.context_tokens:
            return profile.context_tokens
        url = self._url_of(profile)
        if _key(url) == _key(self.config.base_url) and self.config.context_tokens:
            return self.config.context_tokens
        key = (_key(url), profile.model or self.config.default_model)
        if key not in self._windows:
            self._windows[key] = await self._listed_window(url, key[1])
        return self._windows[key]

    async def count_tokens(self, texts: list[str], profile: LLMProfile) -> list[int] | None:
        """Token counts by the server's own tokenizer: llama-cpp-python's /extras/tokenize/count
        or vLLM's /tokenize (found once per endpoint); None when the server offers neither."""
        url = self._url_of(profile)
        key = _key(url)
        if not url:
            return None
        kind = self._tokenizers.get(key, "unknown")
        if kind is None:
            return None
        root = re.sub(r"/v1$", "", key)
        model = profile.model or self.config.default_model
        kinds = [kind] if kind != "unknown" else ["llama-cpp-python", "vllm"]
        client = self._slot(url).client
        for candidate in kinds:
            counts: list[int] = []
            try:
                for text in texts:
                    if candidate == "llama-cpp-python":
                        body: dict[str, Any] = {"input": text, "model": model}
                        path = f"{root}/extras/tokenize/count"
                    else:
                        body = {"prompt": text, "model": model, "add_special_tokens": False}
                        path = f"{root}/tokenize"
                    response = await client.post(
                        path, body=body, cast_to=httpx2.Response, options={"timeout": 10.0}
                    )
                    counts.append(int(response.json()["count"]))
            except (openai.OpenAIError, httpx2.HTTPError, ValueError, KeyError, TypeError):
                if kind != "unknown":
                    return None  # a hiccup: estimate this time, ask again next time
                continue
            self._tokenizers[key] = candidate
            return counts
        self._tokenizers[key] = None
        return None

    def learn_window(self, url: str | None, model: str, window: int) -> None:
        """Remember a window the server told us about (in a context-length error)."""
        self._windows[(_key(url), model or self.config.default_model)] = window

    async def aclose(self) -> None:
        """Close the SDK clients' connection pools (those of the running event loop)."""
        loop = asyncio.get_running_loop()
        slots, self._clients = self._clients, {}
        for slot in slots.values():
            if slot.loop is loop:
                await slot.client.close()

    # -- ChatModel ---------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        url = self._url(request)
        response = await self._create(request, url, stream=False)
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        completion = Completion(
            text=(choice.message.content or "") if choice else "",
            model=response.model or self._model(request),
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            finish_reason=choice.finish_reason if choice else None,
            latency_s=time.perf_counter() - started,
            endpoint=_display(url),
        )
        return apply_schema(request, completion)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        started = time.perf_counter()
        url = self._url(request)
        response = await self._create(request, url, stream=True)
        parts: list[str] = []
        content_chunks = 0
        model = ""
        finish_reason: str | None = None
        usage = None

        def so_far() -> Completion:
            return Completion(
                text="".join(parts),
                model=model or self._model(request),
                finish_reason=finish_reason,
                latency_s=time.perf_counter() - started,
                endpoint=_display(url),
                completion_tokens=content_chunks,
                usage_estimated=True,
            )

        try:
            async for chunk in response:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
                delta = choice.delta.content if choice.delta else None
                if delta:
                    content_chunks += 1
                    parts.append(delta)
                    yield StreamChunk(delta=delta)
        except (openai.OpenAIError, httpx2.HTTPError, ValueError) as exc:
            # The transport broke (reset, timeout between chunks), the server sent an error
            # event mid-stream, or an event that is not JSON (the SDK's json.loads error).
            # With text already out, that text is a cut-off reply.
            if parts:
                raise LLMCutOff(
                    f"{_display(url)}: the stream broke off after {content_chunks} chunks "
                    f"({_transport_reason(exc)})",
                    endpoint=_display(url),
                    partial=so_far(),
                ) from exc
            if isinstance(exc, httpx2.HTTPError | ValueError):
                raise LLMUnavailable(
                    f"{_display(url)}: the stream broke off before any text "
                    f"({_transport_reason(exc)})",
                    endpoint=_display(url),
                ) from exc
            raise self._mapped(exc, url, request.timeout_s or request.profile.timeout_s) from exc
        finally:
            # Also runs when the consumer stops early: release the HTTP connection at once.
            await response.close()

        completion = so_far()
        completion.completion_tokens = None
        completion.usage_estimated = False
        if usage is not None:
            completion.prompt_tokens = usage.prompt_tokens
            completion.completion_tokens = usage.completion_tokens
        else:
            # llama-cpp-python's server sends no usage chunk; it streams one token per chunk,
            # so the chunk count is a fair estimate. The prompt size is unknowable here.
            completion.completion_tokens = content_chunks
            completion.usage_estimated = True
        yield StreamChunk(completion=apply_schema(request, completion))

    # -- internals ---------------------------------------------------------------------------

    def _url(self, request: ChatRequest) -> str | None:
        return self._url_of(request.profile)

    def _url_of(self, profile: LLMProfile) -> str | None:
        return (profile.base_url or self.config.base_url or "").rstrip("/") or None

    async def _listed_window(self, url: str | None, model: str) -> int | None:
        try:
            page = await self._slot(url).client.with_options(timeout=10.0).models.list()
        except (openai.OpenAIError, httpx2.HTTPError):
            return None
        for entry in page.data:
            if entry.id != model and len(page.data) > 1:
                continue
            facts = entry.model_dump()
            for place in (facts, facts.get("meta") or {}):
                for name in (*_WINDOW_KEYS, "n_ctx_train"):
                    value = place.get(name) if isinstance(place, dict) else None
                    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                        return value
        return None

    def _model(self, request: ChatRequest) -> str:
        return request.profile.model or self.config.default_model

    def _slot(self, url: str | None) -> _ClientSlot:
        # httpx pools connections per event loop; a client reused from another loop (Django's
        # async_to_sync, pytest's per-test loops) fails with "Event loop is closed". So: one
        # client per endpoint *per loop*, replaced when the loop changes.
        loop = asyncio.get_running_loop()
        key = _key(url)
        slot = self._clients.get(key)
        if slot is None or slot.loop is not loop:
            client = AsyncOpenAI(
                api_key=self.config.api_key,
                base_url=url,
                max_retries=self.max_retries,
                timeout=self.timeout_s,
            )
            slot = _ClientSlot(client, client.with_options(max_retries=0), loop)
            self._clients[key] = slot
        return slot

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params = self._base_params(request)
        if request.profile.stop:
            params["stop"] = list(request.profile.stop)[:4]  # OpenAI takes at most four
        return params

    def _base_params(self, request: ChatRequest) -> dict[str, Any]:
        return {
            "model": self._model(request),
            "messages": cast(Any, list(request.messages)),
            "temperature": request.profile.temperature,
            # max_tokens, not max_completion_tokens: llama.cpp, vLLM and Ollama know only
            # max_tokens, and OpenAI still accepts it for chat models.
            "max_tokens": request.profile.max_tokens,
            "timeout": request.timeout_s or request.profile.timeout_s,
        }

    async def _create(self, request: ChatRequest, url: str | None, *, stream: bool) -> Any:
        """Send the request; for structured output pick (or detect) the endpoint's dialect."""
        slot = self._slot(url)
        params = self._params(request)
        if request.schema is None:
            return await self._send(slot.client, params, url, stream=stream)

        known = self._forced_dialect or self._dialects.get(_key(url))
        if known is not None:
            params["extra_body"] = _response_format(known, request)
            return await self._send(slot.client, params, url, stream=stream)

        # Unknown endpoint: try the standard json_schema once, without SDK retries (a server
        # that rejects it answers 500, which the SDK would otherwise retry with backoff).
        params["extra_body"] = _response_format("json_schema", request)
        try:
            result = await self._send_raw(slot.probe, params, url, stream=stream)
        except openai.OpenAIError as exc:
            if isinstance(exc, openai.APIStatusError) and _rejects_json_schema(exc):
                log.info(
                    "%s rejected response_format json_schema (HTTP %s); using json_object",
                    _display(url),
                    exc.status_code,
                )
                params["extra_body"] = _response_format("json_object", request)
                result = await self._send(slot.client, params, url, stream=stream)
                self._dialects[_key(url)] = "json_object"
                return result
            # Any other failure says nothing about the dialect: the next try probes again.
            # It is the caller's to retry (llm/calls.py, within its deadline and honouring a
            # Retry-After); resending here at once would be a retry nobody sees or paces.
            raise self._mapped(exc, url, params["timeout"]) from exc
        self._dialects[_key(url)] = "json_schema"
        return result

    async def _send(
        self, client: AsyncOpenAI, params: dict[str, Any], url: str | None, *, stream: bool
    ) -> Any:
        try:
            return await self._send_raw(client, params, url, stream=stream)
        except openai.OpenAIError as exc:
            raise self._mapped(exc, url, params["timeout"]) from exc

    def _mapped(self, exc: openai.OpenAIError, url: str | None, timeout_s: float) -> LLMError:
        """The port's error for an SDK error, with what only this model knows: a window the
        server revealed is remembered; an unreachable embedded server says why."""
        error = map_sdk_error(exc, _display(url), timeout_s=timeout_s)
        if isinstance(error, LLMContextExceeded) and error.window:
            self.learn_window(url, "", error.window)
        if isinstance(error, LLMUnavailable) and error.status is None and self._is_embedded(url):
            status = read_status(self.config.status_path)
            if status is not None and status.dead:
                dead = LLMUnavailable(status.sentence(), endpoint=_display(url))
                dead.transient = False  # it will not come back by itself
                return dead
            return LLMUnavailable(
                f"{error} Is the embedded model server running? `make run` starts it, or "
                "`python -m personaweb.llm.embedded` on its own.",
                endpoint=_display(url),
            )
        return error

    def _is_embedded(self, url: str | None) -> bool:
        return self.config.embedded and _key(url) == _key(self.config.base_url)

    @staticmethod
    async def _send_raw(
        client: AsyncOpenAI, params: dict[str, Any], url: str | None, *, stream: bool
    ) -> Any:
        # The messages go in the body as they are (extra_body wins over the SDK's own field):
        # they are already plain wire dicts, and the SDK's type-directed transform of them
        # costs about half a second per thousand messages (2 cores), which made each step of
        # a long session slower than the one before (99% of a step at 10,000 nodes).
        params = dict(params)
        body = {**params.pop("extra_body", {}), "messages": params.pop("messages")}
        try:
            if stream:
                return await client.chat.completions.create(
                    messages=[],
                    extra_body=body,
                    stream=True,
                    stream_options={"include_usage": True},
                    **params,
                )
            return await client.chat.completions.create(messages=[], extra_body=body, **params)
        except ValueError as exc:
            # The SDK parses a JSON answer with json.loads and lets its error out: a body the
            # connection cut short (or a server's garbage) is a failed request, not a bug.
            raise LLMUnavailable(
                f"{_display(url)}: the answer was cut short or is not JSON "
                f"({_transport_reason(exc)})",
                endpoint=_display(url),
            ) from exc


def _key(url: str | None) -> str:
    return (url or "").rstrip("/")


def _display(url: str | None) -> str:
    return url or OPENAI_DEFAULT_BASE_URL


_LENGTH_KEYWORDS = frozenset({"maxLength", "minLength", "maxItems", "minItems"})


def grammar_friendly(schema: Any) -> Any:
    """The schema without length bounds, for servers that compile schemas into grammars.

    llama.cpp turns `maxLength: N` into N nested optional rules; a few thousand of them crash
    its server (the connection just drops). The bounds are still enforced: every answer is
    validated on our side against the full schema."""
    if isinstance(schema, dict):
        return {k: grammar_friendly(v) for k, v in schema.items() if k not in _LENGTH_KEYWORDS}
    if isinstance(schema, list):
        return [grammar_friendly(item) for item in schema]
    return schema


def _response_format(dialect: StructuredDialect, request: ChatRequest) -> dict[str, Any]:
    # Sent through extra_body: the SDK's typed response_format has no place for llama.cpp's
    # "schema" key, and one code path for both dialects keeps them comparable.
    if dialect == "json_object":
        schema = grammar_friendly(request.schema or {})
        return {"response_format": {"type": "json_object", "schema": schema}}
    name = _SCHEMA_NAME_CHARS.sub("_", request.schema_name)[:64] or "response"
    return {
        "response_format": {
            "type": "json_schema",
            # strict=False: OpenAI's strict mode demands every property be required and
            # rejects keywords such as minLength; we validate on our side anyway.
            "json_schema": {"name": name, "schema": request.schema, "strict": False},
        }
    }


def _rejects_json_schema(exc: openai.APIStatusError) -> bool:
    if exc.status_code not in _FORMAT_REJECTION_STATUSES:
        return False
    return bool(_FORMAT_REJECTION.search(f"{exc.message} {_body_text(exc.body)}"))


def _body_text(body: object) -> str:
    try:
        return json.dumps(body)
    except (TypeError, ValueError):
        return str(body)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare from LLM servers and is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


def _first_number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return int(found[1].replace(",", ""))
    return None


def _transport_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    detail = " ".join(str(exc).split())[:_MAX_ERROR_MESSAGE]
    return f"{name}: {detail}" if detail else name


def _error_message(exc: openai.APIError) -> str:
    message = exc.message
    if isinstance(exc.body, dict):
        inner = exc.body.get("error", exc.body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            message = inner["message"]
    message = " ".join(message.split())
    if len(message) > _MAX_ERROR_MESSAGE:
        message = message[: _MAX_ERROR_MESSAGE - 3] + "..."
    return message


def map_sdk_error(
    exc: openai.OpenAIError, endpoint: str, *, timeout_s: float | None = None
) -> LLMError:
    """Translate an openai SDK exception into the port's error classes, with a clear message."""
    if isinstance(exc, openai.APITimeoutError):
        within = f" within {timeout_s:g} s" if timeout_s is not None else ""
        return LLMTimeout(f"{endpoint}: no answer{within} (request timed out)", endpoint=endpoint)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return LLMUnavailable(f"{endpoint}: cannot connect ({cause})", endpoint=endpoint)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        text = f"{endpoint}: HTTP {status}: {message}"
        after = _retry_after(exc.response.headers.get("retry-after"))
        if isinstance(exc, openai.RateLimitError) or status == 429:
            return LLMRateLimited(text, endpoint=endpoint, status=status, retry_after=after)
        if status in (400, 413, 422, 500) and _CONTEXT_ERROR.search(message):
            window = _first_number(_WINDOW_NUMBERS, message)
            requested = _first_number(_REQUESTED_NUMBERS, message)
            numbers = ", ".join(
                part
                for part in (
                    f"{requested:,} tokens requested" if requested else "",
                    f"context window {window:,} tokens" if window else "",
                )
                if part
            )
            return LLMContextExceeded(
                f"{endpoint}: the prompt is too long for the model"
                + (f" ({numbers})" if numbers else "")
                + f": HTTP {status}: {message}",
                endpoint=endpoint,
                status=status,
                window=window,
                requested=requested,
            )
        if status >= 500:
            return LLMUnavailable(text, endpoint=endpoint, status=status, retry_after=after)
        return LLMRequestError(text, endpoint=endpoint, status=status)
    if isinstance(exc, openai.APIError):
        # An error event in the middle of a stream: the server failed while generating.
        return LLMUnavailable(f"{endpoint}: server error: {_error_message(exc)}", endpoint=endpoint)
    # Client-side problems (missing credentials, bad arguments) that never reached a server.
    return LLMRequestError(f"{endpoint}: {exc}", endpoint=endpoint)
