"""Which OpenAI-compatible endpoint PersonaWeb talks to, derived from environment variables.

`endpoint_from_env` is a pure function of the mapping it is given (tests pass a dict; the app
passes os.environ), so the core never reads the environment or Django settings behind your back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_EMBEDDED_PORT",
    "DEFAULT_OPENAI_MODEL",
    "EMBEDDED_API_KEY",
    "EMBEDDED_MODEL",
    "OPENAI_DEFAULT_BASE_URL",
    "EndpointConfig",
    "endpoint_from_env",
]

EMBEDDED_MODEL = "smollm2-135m-instruct"
"""The model alias the embedded llama.cpp server answers to."""
EMBEDDED_API_KEY = "sk-local"
"""A placeholder key: the embedded server checks none, but the SDK insists on one."""
DEFAULT_EMBEDDED_PORT = 8765
EMBEDDED_CONTEXT_TOKENS = 2048
"""The embedded server's context window (its n_ctx): prompts are fitted to it."""
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Only for messages: with base_url None the SDK picks its own default."""


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to reach the default LLM endpoint."""

    base_url: str | None
    """OpenAI-compatible base URL ending in /v1; None means the SDK's default (api.openai.com)."""
    api_key: str
    """Bearer key sent to the endpoint (a placeholder for servers that check none)."""
    default_model: str
    """Model used when a persona's profile leaves `model` empty."""
    embedded: bool
    """True when nothing was configured and the bundled local model server is the endpoint."""
    embedded_port: int = DEFAULT_EMBEDDED_PORT
    """Loopback port of the embedded server (used to start it when `embedded`)."""
    context_tokens: int | None = None
    """The default endpoint's context window when known up front (the embedded server's, or
    PERSONAWEB_CONTEXT_TOKENS); None: ask the server, else no limit is applied."""
    status_path: str | None = None
    """Where the launcher reports the embedded server's health (PERSONAWEB_EMBEDDED_STATUS)."""

    @property
    def display_url(self) -> str:
        """The base URL for humans and error messages, never None."""
        return self.base_url or OPENAI_DEFAULT_BASE_URL


def endpoint_from_env(environ: Mapping[str, str]) -> EndpointConfig:
    """Build the endpoint configuration from environment variables.

    - OPENAI_API_KEY and/or OPENAI_BASE_URL set: that endpoint (OpenAI, vLLM, Ollama, ...);
      the model is PERSONAWEB_MODEL, else gpt-4o-mini.
    - neither set: the embedded llama.cpp server on 127.0.0.1:PERSONAWEB_EMBEDDED_PORT (8765)
      serving smollm2-135m-instruct. PERSONAWEB_MODEL is ignored there: that server has exactly
      one model, and any other name would only mislabel the calls.

    PERSONAWEB_CONTEXT_TOKENS sets the default endpoint's context window (the embedded one
    defaults to its own, 2048).

    Raises ValueError for a malformed PERSONAWEB_EMBEDDED_PORT or PERSONAWEB_CONTEXT_TOKENS.
    """
    api_key = environ.get("OPENAI_API_KEY", "").strip()
    base_url = environ.get("OPENAI_BASE_URL", "").strip().rstrip("/") or None
    model = environ.get("PERSONAWEB_MODEL", "").strip()
    port = _port(environ.get("PERSONAWEB_EMBEDDED_PORT", "").strip())
    context = _context(environ.get("PERSONAWEB_CONTEXT_TOKENS", "").strip())
    status = environ.get("PERSONAWEB_EMBEDDED_STATUS", "").strip() or None

    if not api_key and base_url is None:
        return EndpointConfig(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=EMBEDDED_API_KEY,
            default_model=EMBEDDED_MODEL,
            embedded=True,
            embedded_port=port,
            context_tokens=context or EMBEDDED_CONTEXT_TOKENS,
            status_path=status,
        )
    return EndpointConfig(
        base_url=base_url,
        # Self-hosted servers (vLLM, Ollama) often need no key, but the SDK refuses an empty one.
        api_key=api_key or EMBEDDED_API_KEY,
        default_model=model or DEFAULT_OPENAI_MODEL,
        embedded=False,
        embedded_port=port,
        context_tokens=context,
    )


def _context(raw: str) -> int | None:
    if not raw:
        return None
    try:
        tokens = int(raw)
    except ValueError:
        raise ValueError(f"PERSONAWEB_CONTEXT_TOKENS must be an integer, got {raw!r}") from None
    if tokens < 256:
        raise ValueError(f"PERSONAWEB_CONTEXT_TOKENS must be at least 256, got {tokens}")
    return tokens


def _port(raw: str) -> int:
    if not raw:
        return DEFAULT_EMBEDDED_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"PERSONAWEB_EMBEDDED_PORT must be an integer, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"PERSONAWEB_EMBEDDED_PORT must be between 1 and 65535, got {port}")
    return port
