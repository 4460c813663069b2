"""A scripted OpenAI-compatible HTTP server on loopback, for tests that need real HTTP.

It lets `OpenAIChatModel` (and the whole web app in browser tests) run against replies the
test chooses, with the wire format of either OpenAI or llama-cpp-python's server:

    with ScriptedOpenAIServer(dialect="llamacpp") as server:
        server.enqueue("Hello there.", ServerError(status=429), Delayed(2.0, "late"))
        config = EndpointConfig(server.base_url, "sk-test", "scripted-model", embedded=False)
        ...
        assert server.requests[0]["messages"][0]["role"] == "system"

Dialects differ where real servers do:
- "openai": accepts response_format json_schema; streams a usage chunk when asked
  (stream_options.include_usage).
- "llamacpp" (llama-cpp-python 0.3.36): answers 500 to response_format json_schema, accepts
  json_object (with or without a schema), never streams usage.

Unscripted requests go to `responder` (e.g. route by system prompt for concurrent personas);
without one they get a 500 and are counted in `unexpected`.

Thread-based (ThreadingHTTPServer in a daemon thread), so sync and async tests can both use it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

from personaweb.llm.scripted import split_for_streaming

__all__ = [
    "Broken",
    "Delayed",
    "Responder",
    "ScriptedOpenAIServer",
    "ServerError",
    "ServerReply",
]

Dialect = Literal["openai", "llamacpp"]


@dataclass(frozen=True)
class ServerError:
    """Answer with an HTTP error instead of a completion."""

    status: int = 500
    """HTTP status, e.g. 429 or 500."""
    body: dict[str, Any] | str | None = None
    """Response body; None means an OpenAI-style {"error": {...}} for the status."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers, e.g. {"x-should-retry": "false"} to stop the SDK retrying."""


@dataclass(frozen=True)
class Delayed:
    """Wait before answering with `reply` (to provoke client timeouts)."""

    seconds: float
    """How long to wait before the first byte of the response."""
    reply: ServerReply = ""
    """What to answer after the wait."""


@dataclass(frozen=True)
class Broken:
    """A reply that breaks the protocol the way real servers and networks do.

    - `cut_after=N`: after N text chunks the server stops: `cut="close"` ends the response as
      if it were complete (no finish reason, no [DONE]), `cut="reset"` resets the TCP
      connection, `cut="garble"` sends an event that is not JSON, then [DONE] (a proxy or a
      server bug mangling the stream). For a non-streamed request the body is cut in half and
      the connection closed (or reset).
    - `finish=None`: every chunk arrives, then [DONE], but no finish reason ever does.
    - `finish="length"`: the reply says it was cut by max_tokens.
    - `usage=False`: no usage, even when the client asks for it (openai dialect).
    """

    text: str
    """What the server starts to say."""
    finish: str | None = "stop"
    """The finish reason sent (None: none; "": what a real server would say, "length" when
    the text reaches max_tokens)."""
    cut_after: int | None = None
    """Text chunks sent before the cut (None: no cut)."""
    cut: Literal["close", "reset", "garble"] = "close"
    """How the connection ends at the cut."""
    usage: bool = True
    """Whether usage is reported."""


Responder = Callable[[dict[str, Any]], "str | ServerError | Delayed | Broken"]
"""A function of the request JSON that answers it (with text, an error, a delay, a fault)."""
ServerReply = str | ServerError | Delayed | Broken | Responder
"""Text, an error, a delayed reply, a broken reply, or a function of the request JSON."""


class ScriptedOpenAIServer:
    """A scripted OpenAI-compatible chat server on 127.0.0.1 and a free port."""

    def __init__(
        self,
        dialect: Dialect = "openai",
        *,
        model: str = "scripted-model",
        chunk_delay_s: float = 0.0,
        responder: Responder | None = None,
    ) -> None:
        if dialect not in ("openai", "llamacpp"):
            raise ValueError(f"dialect must be 'openai' or 'llamacpp', got {dialect!r}")
        self.dialect: Dialect = dialect
        """Which server's quirks to imitate."""
        self.model = model
        """Model name listed by /v1/models and reported in completions."""
        self.chunk_delay_s = chunk_delay_s
        """Pause between streamed chunks, so browser tests can watch a stream."""
        self.responder = responder
        """Answers requests when the queue is empty (e.g. routed by system prompt)."""
        self.requests: list[dict[str, Any]] = []
        """JSON bodies of every chat-completion request, in arrival order."""
        self.unexpected = 0
        """Chat requests that found neither a scripted reply nor a responder."""
        self.script_errors: list[str] = []
        """Mistakes in the script itself (a responder that returned the wrong type, ...).
        A test must fail on them: `assert_complete` and the test fixtures check."""
        self._queue: deque[ServerReply] = deque()
        self._lock = threading.Lock()
        # Set on stop so that handlers sleeping in a Delayed reply wake up at once.
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> ScriptedOpenAIServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"scripted": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ScriptedOpenAIServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ScriptedOpenAIServer is not running; use start() or `with`")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. http://127.0.0.1:40123/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting --------------------------------------------------------------------------

    def enqueue(self, *replies: ServerReply) -> ScriptedOpenAIServer:
        """Queue replies for the next chat requests, in order."""
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._queue)

    def assert_complete(self) -> None:
        """Fail if scripted replies were left unused or requests came unscripted."""
        self.assert_no_script_errors()
        if self.pending or self.unexpected:
            raise AssertionError(
                f"ScriptedOpenAIServer: {self.pending} scripted repl(ies) unused, "
                f"{self.unexpected} unexpected request(s)"
            )

    def assert_no_script_errors(self) -> None:
        """Fail if the script itself went wrong (its answer was a 500 the product saw as a
        server error: that must not pass for product behaviour)."""
        if self.script_errors:
            raise AssertionError(f"ScriptedOpenAIServer script errors: {self.script_errors}")

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _next_reply(self, body: dict[str, Any]) -> ServerReply:
        with self._lock:
            self.requests.append(body)
            if self._queue:
                return self._queue.popleft()
            if self.responder is not None:
                return self.responder
            self.unexpected += 1
        return ServerError(
            500, _error_body("ScriptedOpenAIServer: no scripted reply left", "server_error")
        )

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops meanwhile. Returns False if it is stopping."""
        return not self._stopping.wait(seconds)


def _error_body(message: str, error_type: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


_DEFAULT_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}

# What llama-cpp-python 0.3.36 answers (as a 500, measured) to a json_schema response_format:
# its request model only knows "text" and "json_object".
_LLAMACPP_JSON_SCHEMA_ERROR = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'),"
    " 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP exchange. `scripted` is bound to the owning server by a subclass."""

    scripted: ScriptedOpenAIServer
    server_version = "ScriptedOpenAI/1.0"
    # HTTP/1.0 closes the connection after each response: an SSE stream then needs no chunked
    # encoding, and a client never reuses a connection whose stream it abandoned.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: test output is not the place for an access log."""

    # -- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = {"id": self.scripted.model, "object": "model", "created": 0, "owned_by": "me"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, _error_body(f"no route GET {self.path}", "not_found_error"))

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, _error_body(f"no route POST {self.path}", "not_found_error"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, json.JSONDecodeError) as exc:
            self._send_json(400, _error_body(f"invalid JSON body: {exc}", "invalid_request_error"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send_json(400, _error_body("'messages' is required", "invalid_request_error"))
            return

        rejection = self._reject_response_format(body)
        if rejection is not None:
            # The real server fails before generating anything, so no scripted reply is used:
            # a test scripts one reply whether or not the client has to fall back.
            self.scripted._record(body)
            self._send_json(500, _error_body(rejection, "internal_server_error"))
            return
        self._answer(body, self.scripted._next_reply(body))

    # -- behaviour --------------------------------------------------------------------------

    def _reject_response_format(self, body: dict[str, Any]) -> str | None:
        response_format = body.get("response_format")
        if not isinstance(response_format, dict):
            return None
        kind = response_format.get("type")
        if self.scripted.dialect == "llamacpp" and kind == "json_schema":
            return _LLAMACPP_JSON_SCHEMA_ERROR
        if kind not in ("text", "json_object", "json_schema"):
            return f"response_format.type {kind!r} is not supported"
        return None

    def _answer(self, body: dict[str, Any], reply: ServerReply) -> None:
        asked = False
        # A delay may wrap a function's answer and a function may answer with a delay (a
        # responder that makes one persona's call slow); a function is asked once.
        while isinstance(reply, Delayed) or (callable(reply) and not asked):
            if isinstance(reply, Delayed):
                if not self.scripted._sleep(reply.seconds):
                    return
                reply = reply.reply
                continue
            asked = True
            try:
                reply = reply(body)
            except Exception as exc:
                self.scripted.script_errors.append(f"responder raised {type(exc).__name__}: {exc}")
                self._send_json(500, _error_body(f"script error: {exc}", "script_error"))
                return
        if isinstance(reply, ServerError):
            self._send_error(reply)
            return
        if isinstance(reply, str):
            reply = Broken(reply, finish="")
        if not isinstance(reply, Broken):
            problem = f"a scripted reply must produce str, got {type(reply).__name__}"
            self.scripted.script_errors.append(problem)
            self._send_json(500, _error_body(f"script error: {problem}", "script_error"))
            return
        try:
            if body.get("stream"):
                self._stream(body, reply)
            else:
                self._whole(body, reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, cancelled stream): nothing left to tell it

    def _send_error(self, error: ServerError) -> None:
        body = error.body
        if body is None:
            try:
                phrase = HTTPStatus(error.status).phrase
            except ValueError:
                phrase = "error"
            body = _error_body(
                f"scripted {error.status} {phrase}",
                _DEFAULT_ERROR_TYPES.get(error.status, "server_error"),
            )
        self._send_json(error.status, body, error.headers)

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion = len(split_for_streaming(text))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _finish_reason(self, body: dict[str, Any], text: str) -> str:
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        pieces = len(split_for_streaming(text))
        return "length" if isinstance(max_tokens, int) and pieces >= max_tokens else "stop"

    def _finish(self, body: dict[str, Any], reply: Broken) -> str | None:
        # "" means: what a real server would say for this text and max_tokens.
        return self._finish_reason(body, reply.text) if reply.finish == "" else reply.finish

    def _whole(self, body: dict[str, Any], reply: Broken) -> None:
        data = self._completion_json(body, reply.text)
        data["choices"][0]["finish_reason"] = self._finish(body, reply)
        if not reply.usage:
            data.pop("usage")
        if reply.cut_after is None:
            self._send_json(200, data)
            return
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self._hang_up(reply.cut)

    def _hang_up(self, how: str) -> None:
        if how == "reset":
            # SO_LINGER 0: close() sends a RST instead of a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _completion_json(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.scripted.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": self._finish_reason(body, text),
                    "logprobs": None,
                }
            ],
            "usage": self._usage(body, text),
        }

    def _stream(self, body: dict[str, Any], reply: Broken) -> None:
        text = reply.text
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def chunk(delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-scripted",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.scripted.model,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
                ],
            }

        self._event(chunk({"role": "assistant", "content": ""}, None))
        for index, piece in enumerate(split_for_streaming(text)):
            if reply.cut_after is not None and index >= reply.cut_after:
                self._break_stream(reply.cut)
                return
            if self.scripted.chunk_delay_s and not self.scripted._sleep(
                self.scripted.chunk_delay_s
            ):
                return
            self._event(chunk({"content": piece}, None))
        if reply.cut_after is not None:
            self._break_stream(reply.cut)
            return
        self._event(chunk({}, self._finish(body, reply)))

        options = body.get("stream_options") or {}
        if self.scripted.dialect == "openai" and options.get("include_usage") and reply.usage:
            usage_chunk = chunk({}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self._usage(body, text)
            self._event(usage_chunk)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _break_stream(self, how: str) -> None:
        if how == "garble":
            self.wfile.write(b'data: {"id": "chatcmpl-scripted", "choi\n\ndata: [DONE]\n\n')
            self.wfile.flush()
            return
        self._hang_up(how)

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _send_json(
        self, status: int, data: dict[str, Any] | str, headers: dict[str, str] | None = None
    ) -> None:
        payload = (json.dumps(data) if isinstance(data, dict) else data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(payload)


def free_port() -> int:
    """A TCP port free on loopback right now (for servers that need one chosen up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
