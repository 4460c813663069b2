"""The LLM port: one ChatModel protocol, the openai-SDK implementation and test doubles.

Pure Python: nothing in this package imports Django. Keys, model names and base URLs come in
through `EndpointConfig` (see `endpoint_from_env`), never from settings.
"""

from __future__ import annotations

from personaweb.llm.config import EndpointConfig, endpoint_from_env
from personaweb.llm.openai_model import OpenAIChatModel, StructuredDialect, map_sdk_error
from personaweb.llm.schema import SchemaError, apply_schema, parse_structured, validate
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.types import (
    CallRecord,
    ChatMessage,
    ChatModel,
    ChatRequest,
    Completion,
    LLMError,
    LLMProfile,
    LLMRateLimited,
    LLMRequestError,
    LLMTimeout,
    LLMUnavailable,
    StreamChunk,
    StructuredOutputError,
)

__all__ = [
    "CallRecord",
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "Completion",
    "EndpointConfig",
    "LLMError",
    "LLMProfile",
    "LLMRateLimited",
    "LLMRequestError",
    "LLMTimeout",
    "LLMUnavailable",
    "OpenAIChatModel",
    "SchemaError",
    "ScriptedChatModel",
    "StreamChunk",
    "StructuredDialect",
    "StructuredOutputError",
    "apply_schema",
    "build_chat_model",
    "endpoint_from_env",
    "map_sdk_error",
    "parse_structured",
    "validate",
]


def build_chat_model(config: EndpointConfig) -> ChatModel:
    """The production ChatModel for an endpoint configuration."""
    return OpenAIChatModel(config)
